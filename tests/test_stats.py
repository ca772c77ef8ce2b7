"""The decision statistics: t distribution, interval properties, verdicts and the interleaving driver."""

from __future__ import annotations

import math
import random

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
