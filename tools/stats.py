"""Statistics for A/B decisions on paired, interleaved benchmark samples. Pure functions, no I/O.

The statistic is the per-pair ratio r_i ("times better" of B over A, >1 = improvement). Noise on
timings is multiplicative, so we work on log r_i: the CI of the mean log ratio, exponentiated, is
the CI of the geometric-mean speedup.

The rule. `better` only when the whole interval lies above 1 + min_effect, where min_effect is the
smallest win the user wants kept (2% by default). The machine's noise is accounted for once, in the
width of the interval; it is not added to the threshold as well (that made the verifier deaf to real
5-12% wins on a busy machine: issue 17). What the A/A calibration at baseline still tells is in
`calibrate`: a bias between identical arms, the pairs a win needs here, and the smallest win that can
be verified within the pair budget.

Sequential looks, screen then confirm. The data is only examined at planned pair counts: the screen
looks (`looks`, e.g. 5, 10, 20, 40) for every candidate, then the confirmation looks (`extra`, e.g.
80, 120) only for a promising one: its interval still straddles 1 + min_effect and its point estimate
is above it. Alpha is split evenly (Bonferroni) over *all* K = screen + confirmation looks, whether or
not they are taken: each look uses a two-sided 1 - alpha/K interval, so all the intervals cover the
true speedup together with probability >= 1 - alpha (99% at the default alpha 0.01). Hence, with the
family of looks counted once for both stages:
  P(false "better") <= alpha/2 for any true speedup <= 1 + min_effect (less the further below);
  P(any wrong verdict: better/worse/same) <= alpha.
Stopping after the screen for unpromising candidates only drops looks, which cannot add errors.

Robustness. Benchmark noise has a heavy right tail (a run that lost the core). `TRIM` = 0.1 uses
Yuen's trimmed-mean t-interval on the log ratios (10% cut from each end, variance from the
winsorised sample; at 5 pairs nothing is cut). From benchmarks/simulate.py, 2000 decisions per cell,
true +10% with 2% noise plus 5% outliers: plain t detects 87% using 17.0 pairs on average, trim 0.1
detects 100% in 10.2 pairs; trim 0.2 also 100% but in 11.5 pairs. Under clean log-normal CV 5% trim 0.1
costs 20.7 vs 18.9 pairs. At a true ratio of exactly 1 + min_effect, false "better" stayed <= 0.5%
(the alpha/2 bound) for plain t and trim 0.1, while trim 0.2 reached 0.95%, so 0.1 it is.
Real processes under real load: benchmarks/ab_evidence.py, table in the README.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

Verdict = Literal["better", "worse", "same", "inconclusive"]
Better = Literal["higher", "lower"]
T = TypeVar("T")

TRIM = 0.1  # fraction trimmed from each end of the log ratios (0 = plain t-interval)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    speedup: float  # (trimmed) geometric mean of the per-pair ratios, >1 = B better
    ci: tuple[float, float]  # two-sided, level 1 - alpha/K over all K looks (Bonferroni; family-wise 1 - alpha)
    pairs: int
    looks: int  # how many looks were taken, this one included
    statistic: str = "value"  # what decided: "metric", "wall" or "cpu" time (set by the caller's judge)


def speedups(a: list[float], b: list[float], better: Better) -> list[float]:
    """Per-pair "times better" of B over A: a/b for lower-is-better metrics (time), b/a otherwise."""
    if len(a) != len(b):
        raise ValueError(f"unpaired samples: {len(a)} A values, {len(b)} B values")
    if any(v <= 0 for v in (*a, *b)):
        raise ValueError("ratios need positive values")
    return [x / y for x, y in zip(a, b, strict=True)] if better == "lower" else [
        y / x for x, y in zip(a, b, strict=True)
    ]


def geomean_interval(ratios: list[float], level: float, trim: float | None = None) -> tuple[float, float, float]:
    """(point, lo, hi) of the (trimmed) geometric mean ratio at a two-sided confidence `level`."""
    trim = TRIM if trim is None else trim
    logs = sorted(math.log(r) for r in ratios)
    n = len(logs)
    if n < 2:
        raise ValueError("need at least 2 pairs")
    g = int(trim * n)
    if n - 2 * g < 2:
        g = (n - 2) // 2
    kept = logs[g : n - g]
    h = len(kept)
    mean = sum(kept) / h
    # Yuen: the winsorised variance stands in for the variance of the trimmed mean (g = 0: plain t).
    wins = [kept[0]] * g + kept + [kept[-1]] * g
    wmean = sum(wins) / n
    var = sum((x - wmean) ** 2 for x in wins) / (n - 1)
    se = math.sqrt(var) / ((h / n) * math.sqrt(n))
    half = t_quantile(1 - (1 - level) / 2, h - 1) * se
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def family(looks: Sequence[int], extra: Sequence[int] = ()) -> list[int]:
    """Every look the rule may take, in order: the screen's, then the confirmation's beyond it."""
    screen = sorted(set(looks))
    return screen + sorted({n for n in extra if n > screen[-1]})


def default_extra(looks: Sequence[int], cap: int = 120) -> list[int]:
    """Confirmation looks when the spec names none: 2x and 3x the screen's last look, at most `cap`."""
    last = max(looks)
    return sorted({min(n, cap) for n in (2 * last, 3 * last)} - set(range(last + 1)))


def level(alpha: float, looks: Sequence[int], extra: Sequence[int] = ()) -> float:
    """Two-sided confidence level of each look's interval (Bonferroni over the whole family)."""
    return 1 - alpha / len(family(looks, extra))


def decide(
    ratios: list[float], *, min_effect: float, alpha: float, looks: Sequence[int], extra: Sequence[int] = (),
    trim: float | None = None,
) -> Decision | None:
    """The decision at this pair count, or None to keep measuring (not a look, or not clear yet).

    After the screen's last look only a promising candidate goes on (interval straddling 1 + min_effect,
    point estimate above it); at or after the family's last look a Decision is always returned.
    """
    n = len(ratios)
    schedule = family(looks, extra)
    screen_end, last = max(looks), schedule[-1]
    if n not in schedule and n < last:
        return None
    taken = sum(1 for k in schedule if k <= n)
    if n < 2:
        return Decision("inconclusive", ratios[0] if ratios else 1.0, (0.0, math.inf), n, taken) if n >= last else None
    point, lo, hi = geomean_interval(ratios, level(alpha, looks, extra), trim)
    up, down = 1 + min_effect, 1 / (1 + min_effect)
    if lo > up:
        verdict: Verdict = "better"
    elif hi < down:
        verdict = "worse"
    elif down <= lo and hi <= up:
        verdict = "same"
    elif n < screen_end:
        return None
    elif n < last and lo <= up < hi and point > up:
        return None  # promising: confirmation looks
    else:
        verdict = "inconclusive"
    return Decision(verdict, point, (lo, hi), n, taken)


@dataclass(frozen=True)
class Calibration:
    """What an A/A run (the baseline against itself) says about this machine and benchmark."""

    speedup: float  # should be 1: identical builds
    ci: tuple[float, float]  # at level 1 - alpha
    sd: float  # standard deviation of the per-pair log ratio
    pairs: int
    biased: bool  # the interval excludes 1: the arms differ systematically (order, warm-up, a cache)
    pairs_needed: int  # pairs a win of twice min_effect needs here, on average (capped at the budget + 1)
    smallest_win: float  # the smallest true win that is usually "better" within the budget (0.05 = +5%)
    noise_floor: float  # half-width of the interval, scaled to the full budget (as a fraction)


def calibrate(ratios: list[float], *, min_effect: float, alpha: float, looks: Sequence[int],
              extra: Sequence[int] = ()) -> Calibration:
    """Bias check, pair budget and the machine's verifiable effect, from A/A per-pair ratios."""
    point, lo, hi = geomean_interval(ratios, 1 - alpha)
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(1, len(logs) - 1))
    schedule = family(looks, extra)
    budget = schedule[-1]
    z = t_quantile(1 - (1 - level(alpha, looks, extra)) / 2, max(1, budget - 1))
    margin = math.log(1 + 2 * min_effect) - math.log(1 + min_effect)
    need = next((n for n in schedule if z * sd / math.sqrt(n) < margin), budget + 1)
    smallest = math.exp(math.log(1 + min_effect) + z * sd / math.sqrt(budget)) - 1
    half = max(hi - 1, 1 - lo, (hi - lo) / 2) * math.sqrt(len(ratios) / budget)
    return Calibration(point, (lo, hi), sd, len(ratios), not lo <= 1 <= hi, need, smallest, half)


def noise_floor(ratios: list[float], level: float = 0.95) -> float:
    """Half-width of the geometric mean's CI as a fraction (0.03 = ±3%), from A/A calibration pairs."""
    _, lo, hi = geomean_interval(ratios, level)
    return max(hi - 1, 1 - lo, (hi - lo) / 2)


@dataclass(frozen=True)
class Redo(Generic[T]):
    """A pair measured but not used: why, and what it measured."""

    attempt: int
    reason: str
    a: T
    b: T


def interleaved(
    run_a: Callable[[int], T],
    run_b: Callable[[int], T],
    *,
    better: Better,
    min_effect: float,
    alpha: float,
    looks: Sequence[int],
    extra: Sequence[int] = (),
    order: Literal["abba", "random"] = "abba",
    seed: int = 0,
    on_pair: Callable[[int, T, T], None] | None = None,
    judge: Callable[[list[tuple[T, T]]], Decision | None] | None = None,
    contended: Callable[[T, T], str | None] | None = None,
    max_redo: int = 0,
    on_redo: Callable[[Redo[T]], None] | None = None,
) -> tuple[Decision, list[tuple[T, T]]]:
    """Measure A and B in alternating rounds until a decision; returns it and the pairs it used.

    ABBA alternates which arm goes first each round, so a linear drift and any "second run is
    warmer" effect hit both arms equally over two rounds. `judge` decides from the pairs (default:
    `decide` on the values, which must then be floats). A pair that `contended` names a reason for is
    measured again instead of being averaged in, at most `max_redo` times per decision (a host that
    stays contended is then measured as it is); the reason goes to `on_redo`.
    """
    rng = random.Random(seed)
    pairs: list[tuple[T, T]] = []
    redo, attempt = 0, 0
    last = family(looks, extra)[-1]

    def default_judge(ps: list[tuple[T, T]]) -> Decision | None:
        ratios = speedups([p[0] for p in ps], [p[1] for p in ps], better)  # type: ignore[misc]
        return decide(ratios, min_effect=min_effect, alpha=alpha, looks=looks, extra=extra)

    while len(pairs) < last:
        a_first = (attempt % 2 == 0) if order == "abba" else rng.random() < 0.5
        if a_first:
            a = run_a(attempt)
            b = run_b(attempt)
        else:
            b = run_b(attempt)
            a = run_a(attempt)
        attempt += 1
        if contended is not None and redo < max_redo and (why := contended(a, b)):
            redo += 1
            if on_redo:
                on_redo(Redo(attempt - 1, why, a, b))
            continue
        pairs.append((a, b))
        if on_pair:
            on_pair(len(pairs) - 1, a, b)
        decision = (judge or default_judge)(pairs)
        if decision:
            return decision, pairs
    raise AssertionError("the judge returns a Decision at the last look")  # pragma: no cover


# --- deciding on process time: CPU time where it is honest, wall time otherwise -------------------


class Timed(Protocol):
    """What the harness measured of one benchmark process (tools.bench.Sample has all of it)."""

    wall_s: float
    cpu_s: float
    vcsw: int
    ivcsw: int
    load1: float  # the host's 1-minute load average when it started (0: unknown)


CPU_BOUND_SHARE = 0.7  # CPU over wall time from which a process counts as CPU-bound when it ran unhindered
FAIR_SHARE = 0.8  # ... or, on a busy host, this much of the core share the load average leaves it
PARALLEL_SHARE = 1.1  # more CPU than wall time than this: it uses several cores; the user waits on wall time


def cpu_bound(samples: Sequence[Timed], ncpu: int | None = None, fair: bool = True) -> bool:
    """A single-threaded process that computes rather than waits. Either one of its runs got the core
    for CPU_BOUND_SHARE of its wall time (a process that sleeps or waits on I/O never does, however quiet
    the host), or, on a host too busy for that, its runs typically got FAIR_SHARE of what a computing
    process gets there: ncpu / load average of the core (a sleeper gets far less). Not when it uses
    several cores. The fair-share test can take a short sleeper whose start-up a loaded host stretches
    for a computing process (`fair=False` leaves it out); the callers keep wall time as a guard.
    (Context switches were tried as the tie-breaker and dropped: under load a sleeper's start-up is
    preempted as often as a computing process is.)"""
    if not samples:
        return False
    ncpu = ncpu or os.cpu_count() or 1
    shares = sorted(s.cpu_s / max(s.wall_s, 1e-9) for s in samples)
    if shares[len(shares) // 2] > PARALLEL_SHARE:
        return False
    typical = sorted(s.cpu_s / max(s.wall_s, 1e-9) / min(1.0, ncpu / max(getattr(s, "load1", 0.0), 1.0))
                     for s in samples)
    return shares[-1] >= CPU_BOUND_SHARE or (fair and typical[len(typical) // 2] >= FAIR_SHARE)


def process_judge(*, min_effect: float, alpha: float, looks: Sequence[int], extra: Sequence[int] = (),
                  use_cpu: bool = True) -> Callable[[list[tuple[Timed, Timed]]], Decision | None]:
    """A judge for `interleaved` when the benchmark's result is its process time (lower is better).

    For single-threaded CPU-bound arms the decision is on CPU time of the process tree, which other
    load on the host disturbs far less than wall time (README: the evidence); wall time stays a guard:
    CPU time may only say "better" while the wall-time interval still reaches 1 + min_effect (a change
    that trades computing for waiting is not a win)."""
    kw = {"min_effect": min_effect, "alpha": alpha, "looks": looks, "extra": extra}
    last = family(looks, extra)[-1]

    schedule = family(looks, extra)

    def judge(pairs: list[tuple[Timed, Timed]]) -> Decision | None:
        if len(pairs) not in schedule and len(pairs) < last:
            return None
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        wall = speedups([s.wall_s for s in a], [s.wall_s for s in b], "lower")
        if not (use_cpu and cpu_bound(a) and cpu_bound(b)):
            d = decide(wall, **kw)  # type: ignore[arg-type]
            return d and Decision(d.verdict, d.speedup, d.ci, d.pairs, d.looks, "wall")
        cpu = speedups([max(s.cpu_s, 1e-6) for s in a], [max(s.cpu_s, 1e-6) for s in b], "lower")
        d = decide(cpu, **kw)  # type: ignore[arg-type]
        if d is None:
            return None
        if d.verdict == "better" and geomean_interval(wall, level(alpha, looks, extra))[2] < 1 + min_effect:
            if len(pairs) < last:
                return None  # wall time disagrees: measure on
            return Decision("inconclusive", d.speedup, d.ci, d.pairs, d.looks, "cpu")
        return Decision(d.verdict, d.speedup, d.ci, d.pairs, d.looks, "cpu")

    return judge


# --- Student's t distribution (no scipy dependency) --------------------------------------------


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p, by bisection on t_cdf (cached: few distinct (p, df) occur)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), continued fraction evaluated with Lentz's method."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1 - _betainc(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(ln_front) * f / a
