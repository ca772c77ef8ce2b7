"""Replay the showcase edits on copies of the target; build and test every state and A/B-measure each
accepted step with the harness's own engine (`optimize ab`: interleaved pairs, early stopping).

Usage: python verify.py [MAX_PAIRS] [WORKDIR]   (default 10 pairs per step; 0 = build and test only)

WORKDIR defaults to a fresh folder under /var/tmp: the benchmark sandbox hides the real /tmp.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from make_transcript import ACCEPTED, ATTEMPTS

TARGET = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TARGET.parents[1]))

from agent.ab import compare  # noqa: E402

BENCH = ("java -Xms1g -Xmx2g -cp 'target/classes:target/lib/*' "
         "dev.nightshift.exchange.bench.ThroughputBenchmark medium")
METRIC = r"Average: ([0-9.]+) MT/s"


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


def ab(a: Path, b: Path, pairs: int) -> dict:
    return compare(f"cd {a} && {BENCH}", f"cd {b} && {BENCH}", metric=METRIC, better="higher",
                   min_effect=0.03, max_pairs=pairs)


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="me-showcase-", dir="/var/tmp"))
    base = work / "base"
    shutil.copytree(TARGET, base, ignore=shutil.ignore_patterns("showcase", "showcase.jsonl", "target"))
    assert sh("mvn -B -q -o -DskipTests package", base).returncode == 0
    best = base
    for n, (steps, accept) in enumerate(zip(ATTEMPTS, ACCEPTED, strict=True), 1):
        cand = work / f"attempt-{n}"
        shutil.copytree(best, cand, ignore=shutil.ignore_patterns("target"))
        apply(cand, steps)
        built = sh("mvn -B -q -o -DskipTests package", cand).returncode == 0
        tested = built and sh("mvn -B -q -o test", cand).returncode == 0
        row: dict = {"attempt": n, "built": built, "tested": tested, "expected": "accept" if accept else "reject"}
        if accept:
            assert tested, f"attempt {n} should be accepted but does not build/test"
            if pairs:
                row["vs_best"] = ab(best, cand, pairs)
            best = cand
        else:
            assert not tested, f"attempt {n} should be rejected but passes the tests"
        print(json.dumps(row), flush=True)
    if pairs:
        print(json.dumps({"best_vs_baseline": ab(base, best, pairs)}), flush=True)
    print(f"states kept in {work}")


if __name__ == "__main__":
    main()
