"""Replay the showcase edits on copies of the target; build, test and A/B-measure every step.

Usage: python verify.py [PAIRS]   (default 3 interleaved pairs per accepted step; 0 = no measurement)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from make_transcript import ACCEPTED, ATTEMPTS

TARGET = Path(__file__).resolve().parents[1]
BENCH = ("java -Xms1g -Xmx2g -cp 'target/classes:target/lib/*' "
         "dev.nightshift.exchange.bench.ThroughputBenchmark medium")


def sh(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=900)


def apply(tree: Path, steps: list) -> None:
    for _, calls in steps:
        for name, args in calls:
            if name == "write_file":
                (tree / args["path"]).write_text(args["content"])
            elif name == "edit_file":
                path = tree / args["path"]
                body = path.read_text()
                assert body.count(args["old"]) == 1, f"{args['path']}: old text matches {body.count(args['old'])}x"
                path.write_text(body.replace(args["old"], args["new"]))


def bench(tree: Path) -> tuple[float, str]:
    out = sh(BENCH, tree).stdout
    return float(re.findall(r"Average: ([0-9.]+) MT/s", out)[-1]), re.findall(r"checksum: .*", out)[-1]


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    work = Path(tempfile.mkdtemp(prefix="me-showcase-"))
    best = work / "base"
    shutil.copytree(TARGET, best, ignore=shutil.ignore_patterns("showcase", "showcase.jsonl", "target"))
    assert sh("mvn -B -q -o -DskipTests package", best).returncode == 0
    baseline = best
    for n, (steps, accept) in enumerate(zip(ATTEMPTS, ACCEPTED, strict=True), 1):
        cand = work / f"attempt-{n}"
        shutil.copytree(best, cand, ignore=shutil.ignore_patterns("target"))
        apply(cand, steps)
        built = sh("mvn -B -q -o -DskipTests package", cand).returncode == 0
        tested = built and sh("mvn -B -q -o test", cand).returncode == 0
        line = f"attempt {n}: build {'ok' if built else 'FAILED'}, tests {'ok' if tested else 'FAILED'}"
        if tested and pairs:
            ratios = []
            for _ in range(pairs):
                a, ca = bench(best)
                b, cb = bench(cand)
                assert ca == cb, f"checksum changed: {ca} -> {cb}"
                ratios.append(b / a)
                line += f" [{a:.3f} -> {b:.3f}]"
            line += f" mean ratio {sum(ratios) / len(ratios):.2f}"
        print(line, "(expected: accept)" if accept else "(expected: reject)", flush=True)
        if accept:
            assert tested, f"attempt {n} should be accepted but does not build/test"
            best = cand
        else:
            assert not tested, f"attempt {n} should be rejected but passes the tests"
    if pairs:
        ratios = []
        for _ in range(pairs):
            a, _ = bench(baseline)
            b, _ = bench(best)
            ratios.append(b / a)
            print(f"baseline {a:.3f} vs best {b:.3f}", flush=True)
        print(f"best vs baseline: mean ratio {sum(ratios) / len(ratios):.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
