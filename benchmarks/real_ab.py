"""Evidence on real processes: the A/B rule on this machine, end to end through run_sample.

    python benchmarks/real_ab.py [--aa 20] [--ab 10] [--pin 1 | --pin -1]

A = benchmarks/workload.py doing N units of CPU work (~0.13 s per process), timed as wall time.
1. A/A calibration (10 pairs) -> noise floor, printed for information. min_effect is fixed (default 5%,
   `--min-effect`) rather than 2 x floor: other jobs on this shared box push the load to 8 at times,
   the floor then reads ±25% and 2 x floor would call a real 30% win "same" (seen in a first run).
2. `--aa` A/A decisions (A against itself): expect same/inconclusive, at most one other verdict.
3. `--ab` decisions of A against B doing 25% less work (a genuinely ~25% faster process): expect all better.
Each decision: interleaved ABBA pairs, looks 5/10/20/40, alpha 1%, every sample a fresh process pinned
to one core (the other core is left to the OS and everything else).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import stats  # noqa: E402
from tools.bench import run_sample  # noqa: E402
from tools.fingerprint import fingerprint  # noqa: E402

WORK = 2_500_000
LOOKS = [5, 10, 20, 40]
ALPHA = 0.01


def command(work: int) -> str:
    return f"{sys.executable} -S {ROOT / 'benchmarks' / 'workload.py'} {work}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aa", type=int, default=20)
    ap.add_argument("--ab", type=int, default=10)
    ap.add_argument("--min-effect", type=float, default=0.05)
    ap.add_argument("--pin", type=int, default=1, help="core to pin samples to; -1 for no pinning")
    args = ap.parse_args()
    pin = None if args.pin < 0 else args.pin
    fp = fingerprint()
    print(f"machine: {fp['cpu_model']}, {fp['cores']} cores, kernel {fp['kernel']}, load {fp['loadavg']}")
    start = time.perf_counter()

    def arm(work: int, name: str):
        cmd = command(work)
        return lambda i: run_sample(cmd, ROOT, metric=None, timeout=60, arm=name, round=i, pin_cpu=pin)[0].value

    a, b = arm(WORK, "a"), arm(int(WORK * 0.75), "b")
    calib = [a(i) / a(i) for i in range(10)]  # left-to-right: two fresh processes per pair
    floor = stats.noise_floor(calib)
    min_effect = args.min_effect
    print(f"A/A calibration: 10 pairs, noise floor ±{floor:.2%} (2 x floor = {2 * floor:.2%}); "
          f"min_effect {min_effect:.2%}; pinned to core {pin}\n")

    print(f"{'#':>3} {'kind':5} {'verdict':13} {'speedup':>8} {'CI':>17} {'pairs':>5} {'A median s':>10}")
    results: dict[str, list[str]] = {"A/A": [], "A/B": []}
    plan = [("A/A", a, arm(WORK, "b"))] * args.aa + [("A/B", a, b)] * args.ab
    for k, (kind, run_a, run_b) in enumerate(plan):
        d, pairs = stats.interleaved(run_a, run_b, better="lower", min_effect=min_effect, alpha=ALPHA,
                                     looks=LOOKS, seed=k)
        results[kind].append(d.verdict)
        med = sorted(p[0] for p in pairs)[len(pairs) // 2]
        print(f"{k:3} {kind:5} {d.verdict:13} {d.speedup:8.3f} [{d.ci[0]:6.3f}, {d.ci[1]:6.3f}] "
              f"{d.pairs:5} {med:10.3f}", flush=True)

    aa_bad = sum(v not in ("same", "inconclusive") for v in results["A/A"])
    ab_good = sum(v == "better" for v in results["A/B"])
    print()
    for kind, verdicts in results.items():
        counts = {v: verdicts.count(v) for v in ("better", "worse", "same", "inconclusive")}
        print(f"{kind}: {len(verdicts)} decisions: " + ", ".join(f"{v} {c}" for v, c in counts.items()))
    print(f"A/A not same/inconclusive: {aa_bad} (must be <= 1)  {'OK' if aa_bad <= 1 else 'FAIL'}")
    print(f"A/B better: {ab_good}/{len(results['A/B'])} (must be all)  "
          f"{'OK' if ab_good == len(results['A/B']) else 'FAIL'}")
    print(f"elapsed {time.perf_counter() - start:.0f} s, load now {fingerprint()['loadavg']}")


if __name__ == "__main__":
    main()
