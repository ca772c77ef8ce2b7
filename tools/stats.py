"""Statistics for A/B decisions on paired, interleaved benchmark samples. Pure functions, no I/O.

The statistic is the per-pair ratio r_i ("times better" of B over A, >1 = improvement). Noise on
timings is multiplicative, so we work on log r_i: the CI of the mean log ratio, exponentiated, is
the CI of the geometric-mean speedup.

Sequential rule. The data is only examined at the planned pair counts `looks` (e.g. 5, 10, 20, 40).
Alpha is split evenly across the K looks (Bonferroni): each look uses a two-sided 1 - alpha/K
interval, so the intervals of *all* looks cover the true speedup together with probability >= 1 - alpha
(family-wise 1 - alpha: 99% at the spec's default alpha of 1%). A wrong verdict needs a look whose interval misses the truth, hence:
  P(false "better") <= alpha/2 even for a true speedup of exactly 1 + min_effect, and less at 1.00;
  P(any wrong verdict: better/worse/same) <= alpha.
Bonferroni was chosen over O'Brien-Fleming spending because it is exact-to-state and the early looks
are cheap anyway: benchmarks/simulate.py shows +10% at CV 5% is detected in ~20 pairs.

Robustness. Benchmark noise has a heavy right tail (a run that lost the core). `TRIM` = 0.1 uses
Yuen's trimmed-mean t-interval on the log ratios (10% cut from each end, variance from the
winsorised sample; at 5 pairs nothing is cut). From benchmarks/simulate.py, 2000 decisions per cell,
true +10% with 2% noise plus 5% outliers: plain t detects 87% using 17.0 pairs on average, trim 0.1
detects 100% in 10.2 pairs; trim 0.2 also 100% but in 11.5 pairs. Under clean log-normal CV 5% trim 0.1
costs 20.7 vs 18.9 pairs. At a true ratio of exactly 1 + min_effect, false "better" stayed <= 0.5%
(the alpha/2 bound) for plain t and trim 0.1, while trim 0.2 reached 0.95%, so 0.1 it is.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["better", "worse", "same", "inconclusive"]
Better = Literal["higher", "lower"]

TRIM = 0.1  # fraction trimmed from each end of the log ratios (0 = plain t-interval)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    speedup: float  # (trimmed) geometric mean of the per-pair ratios, >1 = B better
    ci: tuple[float, float]  # two-sided, level 1 - alpha/len(looks) (Bonferroni; family-wise 1 - alpha)
    pairs: int
    looks: int  # how many looks were taken, this one included


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


def decide(
    ratios: list[float], *, min_effect: float, alpha: float, looks: list[int], trim: float | None = None
) -> Decision | None:
    """The decision at this pair count, or None to keep measuring (not a look, or not clear yet).

    At or after the last look a Decision is always returned ("inconclusive" if nothing is clear).
    """
    n = len(ratios)
    schedule = sorted(set(looks))
    last = n >= schedule[-1]
    if n not in schedule and not last:
        return None
    if n < 2:
        return Decision("inconclusive", ratios[0] if ratios else 1.0, (0.0, math.inf), n, 1) if last else None
    level = 1 - alpha / len(schedule)
    point, lo, hi = geomean_interval(ratios, level, trim)
    up, down = 1 + min_effect, 1 / (1 + min_effect)
    if lo > up:
        verdict: Verdict = "better"
    elif hi < down:
        verdict = "worse"
    elif down <= lo and hi <= up:
        verdict = "same"
    elif last:
        verdict = "inconclusive"
    else:
        return None
    return Decision(verdict, point, (lo, hi), n, sum(1 for k in schedule if k <= n))


def noise_floor(ratios: list[float], level: float = 0.95) -> float:
    """Half-width of the geometric mean's CI as a fraction (0.03 = ±3%), from A/A calibration pairs."""
    _, lo, hi = geomean_interval(ratios, level)
    return max(hi - 1, 1 - lo, (hi - lo) / 2)


def interleaved(
    run_a: Callable[[int], float],
    run_b: Callable[[int], float],
    *,
    better: Better,
    min_effect: float,
    alpha: float,
    looks: list[int],
    order: Literal["abba", "random"] = "abba",
    seed: int = 0,
    on_pair: Callable[[int, float, float], None] | None = None,
) -> tuple[Decision, list[tuple[float, float]]]:
    """Measure A and B in alternating rounds until `decide` gives an answer; returns it and the pairs.

    ABBA alternates which arm goes first each round, so a linear drift and any "second run is
    warmer" effect hit both arms equally over two rounds.
    """
    rng = random.Random(seed)
    pairs: list[tuple[float, float]] = []
    for i in range(max(looks)):
        a_first = (i % 2 == 0) if order == "abba" else rng.random() < 0.5
        if a_first:
            a = run_a(i)
            b = run_b(i)
        else:
            b = run_b(i)
            a = run_a(i)
        pairs.append((a, b))
        if on_pair:
            on_pair(i, a, b)
        ratios = speedups([p[0] for p in pairs], [p[1] for p in pairs], better)
        decision = decide(ratios, min_effect=min_effect, alpha=alpha, looks=looks)
        if decision:
            return decision, pairs
    raise AssertionError("decide() returns a Decision at the last look")  # pragma: no cover


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
