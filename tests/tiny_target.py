"""A tiny real target for loop tests: a git repo with a slow function, its tests and a benchmark."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.transcript import Transcript

SLOW = '''def sum_of_squares(n: int) -> int:
    total = 0
    for i in range(n):
        total = total + i * i
    return total
'''
FAST = '''def sum_of_squares(n: int) -> int:
    return (n - 1) * n * (2 * n - 1) // 6
'''
WRONG = '''def sum_of_squares(n: int) -> int:
    return n * n * n // 3
'''
BENCH = '''import time
from work import sum_of_squares

start = time.perf_counter()
result = sum_of_squares(1_500_000)
elapsed = time.perf_counter() - start
print(f"result: {result}")
print(f"rate: {1.5 / max(elapsed, 1e-6):.3f} Mops/s")
'''
TEST = '''from work import sum_of_squares


def test_small() -> None:
    assert [sum_of_squares(n) for n in range(6)] == [0, 0, 1, 5, 14, 30]


def test_large() -> None:
    assert sum_of_squares(1000) == sum(i * i for i in range(1000))
'''
SPEC = '''name = "tiny"
[test]
cmd = "python -m pytest -q -p no:cacheprovider test_work.py"
timeout = "60s"
[bench]
cmd = "python bench.py"
timeout = "60s"
metric = { regex = 'rate: ([0-9.]+) Mops/s', unit = "Mops/s", better = "higher" }
same_output = ['^result: ']
[guard]
protected = ["test_work.py", "bench.py", "optimize.toml"]
[decide]
min_effect = "5%"
looks = [4, 8]
calibration_pairs = 4
noise_multiple = 1.0
confirm_pairs = 4
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, spec: str = SPEC, work: str = SLOW, bench: str = BENCH, test: str = TEST) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "work.py").write_text(work)
    (root / "bench.py").write_text(bench)
    (root / "test_work.py").write_text(test)
    (root / "optimize.toml").write_text(spec)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "initial")
    return root


def transcript(path: Path) -> Path:
    """Three attempts: a real win, a wrong formula (tests fail), an edit of the frozen benchmark."""
    t = Transcript(note="test transcript")
    t.plan([{"title": "Closed-form sum of squares", "files": ["work.py"]},
            {"title": "Cheaper approximate formula", "files": ["work.py"]},
            {"title": "Smaller benchmark input", "files": ["bench.py"]}])
    t.attempt([("read", [("read_file", {"path": "work.py"})]),
               ("rewrite", [("write_file", {"path": "work.py", "content": FAST}), ("run_tests", {})]),
               ("done", [("finish", {"summary": "closed form"})])])
    t.attempt([("rewrite", [("write_file", {"path": "work.py", "content": WRONG})]),
               ("done", [("finish", {"summary": "approximation"})])])
    t.attempt([("shrink", [("edit_file", {"path": "bench.py", "old": "1_500_000", "new": "1_000"})]),
               ("done", [("finish", {"summary": "smaller input"})])])
    t.write(path)
    return path
