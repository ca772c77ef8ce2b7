"""Error rates and cost of the sequential A/B rule (tools.stats.interleaved) vs a fixed-N Welch test.

    python benchmarks/simulate.py [--decisions 2000] [--seed 1]

Every decision drives the real `interleaved()` loop; run_a/run_b read simulated timings from a
noise sequence in time order (one value per process run, so drift between the A and B of a round
is modelled). A true ratio R means B's time is A's / R. min_effect = 2% (the spec default),
alpha = 1%, looks 5/10/20/40.

The fixed-N scheme is what hyperfine users do: 10 runs of A, then 10 of B (not interleaved), Welch's
t-test on the raw times; "better" if significant and B's mean is lower. It is shown at alpha 0.05
(hyperfine's welch_ttest.py) and at 0.02 two-sided, i.e. the same nominal 1% false "better" as ours.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from noise import Noise  # noqa: E402

from tools import stats  # noqa: E402

LOOKS = [5, 10, 20, 40]
MIN_EFFECT = 0.02
ALPHA = 0.01

# Parameters fitted by `python benchmarks/noise.py` on this 2-core box (see noise.py for how).
MODELS = [
    Noise("log-normal CV 5%", white=0.05),
    Noise("measured quiet (pinned)", white=0.0224, drift=0.0334, phi=0.95, outlier_p=0.0133, outlier_mean=0.1696),
    Noise("measured busy (2 burners)", white=0.1403, drift=0.1425, phi=0.915, outlier_p=0.0067, outlier_mean=0.6367),
    Noise("heavy tail: 2% + 5% outliers", white=0.02, outlier_p=0.05, outlier_mean=0.3),
    Noise("slow drift: 1% + AR(1) 10%", white=0.01, drift=0.10, phi=0.99),
]
RATIOS = [1.00, 1.02, 1.10]


def sequential(model: Noise, ratio: float, n: int, seed: int, trim: float) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    counts = {"better": 0, "worse": 0, "same": 0, "inconclusive": 0}
    pairs = 0
    original = stats.TRIM
    stats.TRIM = trim  # decide() reads the module default; the simulation flips it for the comparison
    try:
        for _ in range(n):
            noise = np.exp(model.sample(rng, 2 * max(LOOKS)))
            clock = iter(range(len(noise)))

            def run_a(_: int, noise: np.ndarray = noise, clock=clock) -> float:
                return float(noise[next(clock)])

            def run_b(_: int, noise: np.ndarray = noise, clock=clock) -> float:
                return float(noise[next(clock)]) / ratio

            d, got = stats.interleaved(run_a, run_b, better="lower", min_effect=MIN_EFFECT, alpha=ALPHA, looks=LOOKS)
            counts[d.verdict] += 1
            pairs += len(got)
    finally:
        stats.TRIM = original
    return {**{k: v / n for k, v in counts.items()}, "pairs": pairs / n}


def welch(model: Noise, ratio: float, n: int, seed: int, alpha: float, runs: int = 10) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    counts = {"better": 0, "worse": 0, "same": 0, "inconclusive": 0}
    for _ in range(n):
        t = np.exp(model.sample(rng, 2 * runs))
        a, b = t[:runs], t[runs:] / ratio
        va, vb = a.var(ddof=1) / runs, b.var(ddof=1) / runs
        tstat = (a.mean() - b.mean()) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (runs - 1) + vb**2 / (runs - 1))
        p = 2 * (1 - stats.t_cdf(abs(tstat), df))
        counts["same" if p >= alpha else ("better" if tstat > 0 else "worse")] += 1
    return {**{k: v / n for k, v in counts.items()}, "pairs": float(runs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    start = time.perf_counter()
    print(f"{args.decisions} decisions per row; min_effect {MIN_EFFECT:.0%}, alpha {ALPHA:.0%}, looks {LOOKS}")
    print("'same' for Welch means not significant. pairs = A/B pairs (runs per arm) used per decision.\n")
    header = f"{'noise model':30} {'true':>5} {'scheme':22} {'better':>7} {'worse':>7} {'same':>7} {'incon':>7} {'pairs':>6}"
    print(header)
    print("-" * len(header))
    worst_false_better, detect_cv5 = 0.0, 1.0
    for mi, model in enumerate(MODELS):
        for ri, ratio in enumerate(RATIOS):
            seed = args.seed * 1000 + mi * 10 + ri
            rows = [
                (f"sequential trim {stats.TRIM:g}", sequential(model, ratio, args.decisions, seed, stats.TRIM)),
                ("sequential plain t", sequential(model, ratio, args.decisions, seed, 0.0)),
                ("sequential trim 0.2", sequential(model, ratio, args.decisions, seed, 0.2)),
                ("fixed 10+10 Welch .05", welch(model, ratio, args.decisions, seed, 0.05)),
                ("fixed 10+10 Welch .02", welch(model, ratio, args.decisions, seed, 0.02)),
            ]
            for name, r in rows:
                print(f"{model.name:30} {ratio:5.2f} {name:22} {r['better']:7.2%} {r['worse']:7.2%} "
                      f"{r['same']:7.2%} {r['inconclusive']:7.2%} {r['pairs']:6.1f}")
            if ratio == 1.00:
                worst_false_better = max(worst_false_better, rows[0][1]["better"])
            if model.name.startswith("log-normal CV 5%") and ratio == 1.10:
                detect_cv5 = rows[0][1]["better"]
        print()
    print(f"worst false 'better' at 1.00 (default rule): {worst_false_better:.2%} (must be <= 1%)")
    print(f"detection of +10% at CV 5% (default rule): {detect_cv5:.2%} (must be >= 95%)")
    print(f"elapsed {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
