"""Check the transcript: replay each attempt's file edits on a copy of the target, build and test.

Accepted attempts stack; attempts listed in EXPECT_REJECTED are applied to a throwaway copy.
    python targets/zig-infer/showcase/replay.py /tmp/replay   # prints per-attempt build/test results
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent
EXPECT_REJECTED = {"attempt-004"}
COPY = ["build.zig", "src", "tests", "bench.py", "reference.py", "prompt.py", "make_weights.py", "pytest.ini", "weights"]


def apply(root: Path, calls: list[dict]) -> None:
    for call in calls:
        args = json.loads(call["arguments"])
        if call["name"] == "write_file":
            (root / args["path"]).write_text(args["content"])
        elif call["name"] == "edit_file":
            text = (root / args["path"]).read_text()
            assert text.count(args["old"]) == 1, f"edit_file old does not match once in {args['path']}"
            (root / args["path"]).write_text(text.replace(args["old"], args["new"]))


def check(root: Path) -> tuple[bool, bool]:
    build = subprocess.run([sys.executable, "-m", "ziglang", "build", "-Doptimize=ReleaseFast"], cwd=root)
    if build.returncode:
        return False, False
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                          capture_output=True)
    return True, test.returncode == 0


def main() -> None:
    out = Path(sys.argv[1])
    shutil.rmtree(out, ignore_errors=True)
    best = out / "best"
    best.mkdir(parents=True)
    for name in COPY:
        src = TARGET / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, best / name)
    attempts: dict[str, list[dict]] = {}
    for line in (TARGET / "showcase.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("tag", "").startswith("attempt-"):
            attempts.setdefault(rec["tag"], []).extend(rec["response"]["tool_calls"])
    for tag, calls in attempts.items():
        work = out / tag
        shutil.copytree(best, work, ignore=shutil.ignore_patterns("zig-out", ".zig-cache"))
        apply(work, calls)
        built, passed = check(work)
        print(f"{tag}: built={built} tests_passed={passed} expected={'reject' if tag in EXPECT_REJECTED else 'accept'}")
        if tag not in EXPECT_REJECTED and built and passed:
            shutil.rmtree(best)
            work.rename(best)
            shutil.copytree(best, work)  # keep each accepted state for side-by-side benchmarks


if __name__ == "__main__":
    main()
