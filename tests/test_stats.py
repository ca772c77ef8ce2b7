"""The decision statistics: t distribution, interval properties, verdicts and the interleaving driver."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools import stats

LOOKS = [5, 10, 20, 40]
times = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
paired = st.integers(min_value=3, max_value=40).flatmap(
    lambda n: st.tuples(st.lists(times, min_size=n, max_size=n), st.lists(times, min_size=n, max_size=n))
)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 9, 2.2622), (0.995, 4, 4.6041), (0.95, 30, 1.6973)],
)
def test_t_quantile_matches_published_tables(p: float, df: int, expected: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert stats.t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-4)


def test_speedups_point_the_same_way_for_both_metric_directions() -> None:
    assert stats.speedups([2.0], [1.0], "lower") == [2.0]  # B takes half the time: 2x better
    assert stats.speedups([100.0], [150.0], "higher") == [1.5]  # B has 1.5x the throughput
    with pytest.raises(ValueError):
        stats.speedups([1.0, 2.0], [1.0], "lower")
    with pytest.raises(ValueError):
        stats.speedups([0.0], [1.0], "lower")


@given(paired)
def test_swapping_a_and_b_inverts_the_speedup_and_interval(ab: tuple[list[float], list[float]]) -> None:
    a, b = ab
    point, lo, hi = stats.geomean_interval(stats.speedups(a, b, "lower"), 0.95)
    point2, lo2, hi2 = stats.geomean_interval(stats.speedups(b, a, "lower"), 0.95)
    assert point * point2 == pytest.approx(1, rel=1e-9)
    assert lo * hi2 == pytest.approx(1, rel=1e-9)
    assert hi * lo2 == pytest.approx(1, rel=1e-9)


@given(paired, st.floats(min_value=1e-3, max_value=1e3))
def test_scaling_both_arms_changes_nothing(ab: tuple[list[float], list[float]], k: float) -> None:
    a, b = ab
    base = stats.geomean_interval(stats.speedups(a, b, "lower"), 0.95)
    scaled = stats.geomean_interval(stats.speedups([x * k for x in a], [x * k for x in b], "lower"), 0.95)
    assert scaled == pytest.approx(base, rel=1e-9)


@given(paired, st.floats(min_value=0.5, max_value=0.99))
def test_interval_contains_point_and_widens_with_confidence(ab: tuple[list[float], list[float]], level: float) -> None:
    ratios = stats.speedups(*ab, "lower")
    point, lo, hi = stats.geomean_interval(ratios, level)
    assert lo <= point <= hi
    _, lo99, hi99 = stats.geomean_interval(ratios, 0.999)
    assert lo99 <= lo + 1e-12 and hi <= hi99 + 1e-12


@given(st.lists(times, min_size=5, max_size=40))
def test_identical_samples_are_never_better_or_worse(a: list[float]) -> None:
    ratios = stats.speedups(a, list(a), "lower")
    d = stats.decide(ratios, min_effect=0.0, alpha=0.01, looks=[len(a)])
    assert d is not None and d.verdict == "same" and d.speedup == pytest.approx(1)


def test_plain_t_interval_matches_hand_computation() -> None:
    ratios = [1.1, 1.2, 1.05, 1.15, 1.12]
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 4)
    half = 2.7764451 * sd / math.sqrt(5)  # t(0.975, 4)
    point, lo, hi = stats.geomean_interval(ratios, 0.95, trim=0.0)
    assert (point, lo, hi) == pytest.approx((math.exp(mean), math.exp(mean - half), math.exp(mean + half)))


def test_trimming_resists_one_wild_pair() -> None:
    rng = random.Random(3)
    ratios = [1.2 * math.exp(rng.gauss(0, 0.02)) for _ in range(20)]
    ratios[7] = 0.2  # one run of B was descheduled for a long time
    _, lo_plain, _ = stats.geomean_interval(ratios, 0.99, trim=0.0)
    _, lo_trim, _ = stats.geomean_interval(ratios, 0.99, trim=0.1)
    assert lo_plain < 1.0 < 1.15 < lo_trim


def test_verdicts() -> None:
    kw = {"min_effect": 0.02, "alpha": 0.01, "looks": LOOKS}
    jitter = [math.exp(0.01 * ((i * 7) % 5 - 2)) for i in range(20)]
    assert stats.decide([1.3 * j for j in jitter], **kw).verdict == "better"  # type: ignore[union-attr]
    assert stats.decide([0.7 * j for j in jitter], **kw).verdict == "worse"  # type: ignore[union-attr]
    assert stats.decide([math.exp(0.001 * ((i * 7) % 5 - 2)) for i in range(20)], **kw).verdict == "same"  # type: ignore[union-attr]


def test_decide_only_answers_at_looks_and_always_at_the_last() -> None:
    kw = {"min_effect": 0.02, "alpha": 0.01, "looks": LOOKS}
    clear = [1.5, 1.52, 1.49, 1.51, 1.5, 1.5, 1.51]
    assert stats.decide(clear[:4], **kw) is None  # not a look
    d = stats.decide(clear[:5], **kw)
    assert d is not None and d.verdict == "better" and d.pairs == 5 and d.looks == 1
    assert stats.decide(clear[:6], **kw) is None
    noisy = [1.0 + (0.3 if i % 2 else -0.25) for i in range(40)]
    assert stats.decide(noisy[:20], **kw) is None  # unclear and not the last look: keep going
    last = stats.decide(noisy, **kw)
    assert last is not None and last.verdict == "inconclusive" and last.looks == 4 and last.pairs == 40


def test_noise_floor_shrinks_with_quieter_calibration() -> None:
    rng = random.Random(1)
    loud = [math.exp(rng.gauss(0, 0.05)) for _ in range(10)]
    quiet = [math.exp(rng.gauss(0, 0.01)) for _ in range(10)]
    assert 0 < stats.noise_floor(quiet) < stats.noise_floor(loud) < 0.2


def test_interleaved_order_and_early_stop() -> None:
    calls: list[str] = []
    seen: list[tuple[int, float, float]] = []

    def run(arm: str, value: float):
        def f(i: int) -> float:
            calls.append(f"{arm}{i}")
            return value * (1 + 0.001 * (i % 3))

        return f

    d, pairs = stats.interleaved(run("a", 2.0), run("b", 1.0), better="lower", min_effect=0.02, alpha=0.01,
                                 looks=LOOKS, on_pair=lambda i, a, b: seen.append((i, a, b)))
    assert d.verdict == "better" and d.speedup == pytest.approx(2, rel=0.01) and d.pairs == 5 == len(pairs)
    assert calls[:8] == ["a0", "b0", "b1", "a1", "a2", "b2", "b3", "a3"]  # ABBA
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4] and seen[0][1:] == pairs[0]


def test_interleaved_random_order_is_seeded_and_errors_propagate() -> None:
    def orders(seed: int) -> list[str]:
        calls: list[str] = []
        stats.interleaved(lambda i: calls.append("a") or 1.0, lambda i: calls.append("b") or 1.0,
                          better="lower", min_effect=0.02, alpha=0.01, looks=[10], order="random", seed=seed)
        return calls

    assert orders(5) == orders(5) and orders(5) != orders(6)

    def boom(i: int) -> float:
        raise RuntimeError("crashed")

    with pytest.raises(RuntimeError):
        stats.interleaved(lambda i: 1.0, boom, better="lower", min_effect=0.02, alpha=0.01, looks=LOOKS)


@settings(deadline=None, max_examples=30)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_aa_with_lognormal_noise_is_never_better(seed: int) -> None:
    rng = random.Random(seed)
    d, _ = stats.interleaved(lambda i: math.exp(rng.gauss(0, 0.05)), lambda i: math.exp(rng.gauss(0, 0.05)),
                             better="lower", min_effect=0.05, alpha=0.01, looks=LOOKS)
    assert d.verdict != "better"


# --- the rule of issue 17: threshold = min_effect, screen then confirmation looks ----------------------

SCREEN, EXTRA = [5, 10, 20, 40], [80, 120]


def rate_bound(p: float, n: int) -> int:
    """Most hits out of n that a true rate p explains (mean + 4 sd + 1): beyond it, the bound is broken."""
    return int(n * p + 4 * math.sqrt(n * p * (1 - p)) + 1)


@dataclass
class FakeProcess:
    """A benchmark process on a fake clock: `work` CPU seconds inflated by multiplicative noise, plus
    time spent waiting for the core on a busy host; wall and CPU time as the harness would see them."""

    wall_s: float
    cpu_s: float
    vcsw: int = 6
    ivcsw: int = 20
    load1: float = 0.0  # unknown: the host counts as idle


class FakeHost:
    def __init__(self, seed: int, cpu_sd: float, wait_sd: float, outliers: float) -> None:
        self.rng = random.Random(seed)
        self.cpu_sd, self.wait_sd, self.outliers = cpu_sd, wait_sd, outliers
        self.clock = 0.0

    def run(self, work: float) -> FakeProcess:
        cpu = work * math.exp(self.rng.gauss(0, self.cpu_sd))
        wait = cpu * abs(self.rng.gauss(0, self.wait_sd))
        if self.rng.random() < self.outliers:
            wait += cpu * self.rng.expovariate(1 / 0.5)  # lost the core for a while
        self.clock += cpu + wait
        return FakeProcess(cpu + wait, cpu)


noise = st.fixed_dictionaries({
    "cpu_sd": st.floats(min_value=0.002, max_value=0.15),
    "wait_sd": st.floats(min_value=0.0, max_value=0.5),
    "outliers": st.floats(min_value=0.0, max_value=0.1),
})


def decisions(host: FakeHost, ratio: float, n: int, use_cpu: bool = True) -> list[stats.Decision]:
    judge = stats.process_judge(min_effect=0.02, alpha=0.01, looks=SCREEN, extra=EXTRA, use_cpu=use_cpu)
    out = []
    for _ in range(n):
        d, _ = stats.interleaved(lambda i: host.run(1.0), lambda i: host.run(1.0 / ratio), better="lower",
                                 min_effect=0.02, alpha=0.01, looks=SCREEN, extra=EXTRA, judge=judge)
        out.append(d)
    return out


@settings(deadline=None, max_examples=8)
@given(noise, st.integers(min_value=0, max_value=2**32 - 1), st.booleans())
def test_false_better_stays_within_alpha_half_at_the_threshold(params: dict, seed: int, use_cpu: bool) -> None:
    """A true speedup of exactly 1 + min_effect, the hardest case for a false "better": at most alpha/2."""
    got = decisions(FakeHost(seed, **params), 1.02, 200, use_cpu)
    assert sum(d.verdict == "better" for d in got) <= rate_bound(0.005, 200)


@settings(deadline=None, max_examples=8)
@given(noise, st.integers(min_value=0, max_value=2**32 - 1))
def test_aa_is_almost_never_better_and_never_worse_than_alpha(params: dict, seed: int) -> None:
    got = decisions(FakeHost(seed, **params), 1.0, 200)
    assert sum(d.verdict == "better" for d in got) <= rate_bound(0.005, 200)
    assert sum(d.verdict in ("better", "worse") for d in got) <= rate_bound(0.01, 200)


@settings(deadline=None, max_examples=8)
@given(st.floats(min_value=0.002, max_value=0.05), st.floats(min_value=0.0, max_value=1.0),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_cpu_time_finds_a_ten_percent_win_however_busy_the_host(cpu_sd: float, wait_sd: float, seed: int) -> None:
    """CPU time is what a busy host disturbs least: with its noise at most 5%, a true +10% is found in
    at least 99% of decisions within 120 pairs, whatever the waits for the core do to wall time."""
    got = decisions(FakeHost(seed, cpu_sd, wait_sd, 0.05), 1.10, 200)
    assert sum(d.verdict == "better" for d in got) >= 200 - rate_bound(0.01, 200)
    assert all(d.pairs <= 120 for d in got)
    assert sum(d.statistic == "cpu" for d in got) >= 150  # wall time only while no run had a core to itself


@given(st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=2, max_size=130))
def test_confirmation_looks_only_for_a_promising_candidate(ratios: list[float]) -> None:
    d = stats.decide(ratios, min_effect=0.02, alpha=0.01, looks=SCREEN, extra=EXTRA)
    n = len(ratios)
    if d is None and n >= 40:  # going on past the screen: straddling 1 + min_effect, point above it
        point, lo, hi = stats.geomean_interval(ratios, stats.level(0.01, SCREEN, EXTRA))
        assert n < 120 and lo <= 1.02 < hi and point > 1.02
    if n >= 120:
        assert d is not None
    if d is not None and d.verdict == "better":  # the threshold is min_effect itself, nothing added
        assert d.ci[0] > 1.02


def test_each_look_splits_alpha_over_the_whole_family() -> None:
    assert stats.family(SCREEN, EXTRA) == [5, 10, 20, 40, 80, 120]
    assert stats.level(0.01, SCREEN, EXTRA) == pytest.approx(1 - 0.01 / 6)
    assert stats.default_extra([5, 10, 20, 40]) == [80, 120] and stats.default_extra([3, 6]) == [12, 18]
    assert stats.default_extra([100]) == [120] and stats.default_extra([120]) == []


def test_wall_time_guards_a_cpu_time_win() -> None:
    """B burns less CPU but waits (sleeps, I/O) longer: CPU time alone would call it better."""
    def proc(wall: float, cpu: float) -> FakeProcess:
        return FakeProcess(wall, cpu, vcsw=6, ivcsw=30)

    judge = stats.process_judge(min_effect=0.02, alpha=0.01, looks=[10, 20], extra=[])
    rng = random.Random(2)
    pairs = [(proc(1.0 * rng.uniform(0.99, 1.01), 0.9), proc(1.3 * rng.uniform(0.99, 1.01), 0.6)) for _ in range(20)]
    d = judge(pairs[:10])  # B never computes unhindered: not CPU-bound, wall time decides
    assert d is not None and d.verdict == "worse" and d.statistic == "wall"
    pairs[0] = (pairs[0][0], proc(0.8, 0.6))  # one run of B had the core: CPU time decides, wall guards it
    assert judge(pairs[:10]) is None  # CPU says better, wall disagrees: measure on
    d = judge(pairs)
    assert d is not None and d.verdict == "inconclusive" and d.statistic == "cpu"


def test_cpu_bound_is_recognised_on_a_busy_host_and_parallel_or_waiting_is_not() -> None:
    crowded = [FakeProcess(0.30, 0.10, vcsw=6, ivcsw=25)] * 4  # a third of a core, preempted all the time
    once_alone = crowded + [FakeProcess(0.11, 0.10, vcsw=6, ivcsw=2)]  # ... but one run had the core
    sleeper = [FakeProcess(0.30, 0.02, vcsw=8, ivcsw=30)] * 5  # preempted while starting, then it sleeps
    threads = [FakeProcess(0.30, 0.58, vcsw=6, ivcsw=40)] * 5
    assert stats.cpu_bound(once_alone)
    assert not stats.cpu_bound(crowded)  # never seen computing unhindered on an idle host: wall time decides
    assert not stats.cpu_bound(sleeper) and not stats.cpu_bound(threads)
    # on a host at load 6 (2 cores), a third of a core is the fair share of a computing process
    busy = [FakeProcess(0.30, 0.09, vcsw=6, ivcsw=25, load1=6.0)] * 5
    napping = [FakeProcess(0.30, 0.02, vcsw=8, ivcsw=30, load1=6.0)] * 5
    assert stats.cpu_bound(busy, ncpu=2) and not stats.cpu_bound(napping, ncpu=2)


@settings(deadline=None, max_examples=30)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.floats(min_value=0.0, max_value=0.6),
       st.integers(min_value=0, max_value=30))
def test_contended_pairs_are_measured_again_up_to_the_cap(seed: int, p_bad: float, cap: int) -> None:
    rng = random.Random(seed)
    redone: list[stats.Redo[float]] = []

    def run(i: int) -> float:
        return -1.0 if rng.random() < p_bad else math.exp(rng.gauss(0, 0.01))

    d, pairs = stats.interleaved(run, run, better="lower", min_effect=0.02, alpha=0.01, looks=[5, 10, 20],
                                 judge=lambda ps: stats.decide([b / a if a > 0 and b > 0 else 1.0 for a, b in ps],
                                                               min_effect=0.02, alpha=0.01, looks=[5, 10, 20]),
                                 contended=lambda a, b: "lost the core" if min(a, b) < 0 else None,
                                 max_redo=cap, on_redo=redone.append)
    assert len(redone) <= cap and all(r.reason == "lost the core" and min(r.a, r.b) < 0 for r in redone)
    if len(redone) < cap:  # below the cap, no contended pair was averaged in
        assert all(min(p) > 0 for p in pairs)


@settings(deadline=None, max_examples=40)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.floats(min_value=0.005, max_value=0.2))
def test_calibration_flags_a_bias_and_plans_the_budget(seed: int, sd: float) -> None:
    rng = random.Random(seed)
    fair = [math.exp(rng.gauss(0, sd)) for _ in range(10)]
    cal = stats.calibrate(fair, min_effect=0.02, alpha=0.01, looks=SCREEN, extra=EXTRA)
    assert cal.smallest_win > 0.02 and cal.pairs == 10 and cal.sd >= 0
    assert cal.pairs_needed in [5, 10, 20, 40, 80, 120, 121]
    assert (cal.pairs_needed <= 120) == (cal.smallest_win <= 0.04)  # a +4% win fits the budget iff...
    biased = stats.calibrate([r * math.exp(8 * sd) for r in fair], min_effect=0.02, alpha=0.01, looks=SCREEN,
                             extra=EXTRA)
    assert biased.biased and biased.speedup > 1
    noisier = stats.calibrate([r ** 2 for r in fair], min_effect=0.02, alpha=0.01, looks=SCREEN, extra=EXTRA)
    assert noisier.smallest_win >= cal.smallest_win and noisier.pairs_needed >= cal.pairs_needed
