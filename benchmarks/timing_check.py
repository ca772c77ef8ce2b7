"""Direct timing (tools.bench.run_sample) vs `hyperfine -N --runs 1` on the same process, interleaved.

    python benchmarks/timing_check.py [--rounds 20]

Supports the claim in tools/bench.py that timing the process ourselves is as exact as hyperfine:
the per-round difference should be about the `/bin/sh -c` start-up (~1 ms) and within the noise.
Skips with a message when hyperfine is not installed (it is optional everywhere).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.bench import run_sample  # noqa: E402


def hyperfine_once(cmd: str, out: Path) -> float:
    subprocess.run(["hyperfine", "-N", "--runs", "1", "--style", "none", "--export-json", str(out), cmd],
                   check=True, capture_output=True, cwd=ROOT)
    return float(json.loads(out.read_text())["results"][0]["times"][0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--work", type=int, default=1_000_000)
    args = ap.parse_args()
    if not shutil.which("hyperfine"):
        print("hyperfine not installed; nothing to compare")
        return
    cmd = f"{sys.executable} -S benchmarks/workload.py {args.work}"
    direct, hyper = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "h.json"
        for i in range(args.rounds):
            first_direct = i % 2 == 0  # ABBA between the two timers
            for which in ("direct", "hyper") if first_direct else ("hyper", "direct"):
                if which == "direct":
                    direct.append(run_sample(cmd, ROOT, metric=None, timeout=60, arm="a", round=i)[0].wall_s)
                else:
                    hyper.append(hyperfine_once(cmd, out))
    diffs = [d - h for d, h in zip(direct, hyper, strict=True)]
    print(f"{'timer':22} {'median s':>9} {'min s':>8} {'stdev s':>8}")
    for name, xs in (("direct (sh.run/wait4)", direct), ("hyperfine -N --runs 1", hyper)):
        print(f"{name:22} {statistics.median(xs):9.4f} {min(xs):8.4f} {statistics.stdev(xs):8.4f}")
    print(f"median per-round difference direct - hyperfine: {statistics.median(diffs) * 1000:+.1f} ms "
          f"over {args.rounds} rounds")


if __name__ == "__main__":
    main()
