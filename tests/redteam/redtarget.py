"""A small, fast Python target for the red-team suite, written into a tmp dir as a git repo.

`fastlib.core.count_inversions` is deliberately quadratic, so genuine wins exist (a merge sort is
tens of times faster); the benchmark takes ~0.2 s and a `{seed}`, the tests compare against a
reference on inputs from a seed the harness picks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = '''"""Inversion counting: how far a sequence is from sorted."""


def count_inversions(values: list[int]) -> int:
    """Pairs i < j with values[i] > values[j]. Deliberately quadratic."""
    total = 0
    n = len(values)
    for i in range(n):
        v = values[i]
        for j in range(i + 1, n):
            if v > values[j]:
                total += 1
    return total
'''

DATA = '''import random


def make_values(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1_000_000) for _ in range(n)]
'''

BENCH = '''import argparse
import time

from fastlib.core import count_inversions
from fastlib.data import make_values

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--n", type=int, default=BENCH_N)
args = parser.parse_args()
values = make_values(args.seed, args.n)
start = time.perf_counter()
result = count_inversions(values)
elapsed = time.perf_counter() - start
print(f"checksum: {result}")
print(f"throughput: {args.n / elapsed:.1f} items/s")
'''

CONFTEST = '''import pytest


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=7)


@pytest.fixture
def seed(request):
    return request.config.getoption("--seed")
'''

TESTS = '''from fastlib.core import count_inversions
from fastlib.data import make_values


def reference(values):
    return sum(1 for i in range(len(values)) for j in range(i + 1, len(values)) if values[i] > values[j])


def test_small_cases():
    assert count_inversions([]) == 0
    assert count_inversions([1]) == 0
    assert count_inversions([2, 1]) == 1
    assert count_inversions([3, 2, 1]) == 3
    assert count_inversions([1, 1, 1]) == 0


def test_random_inputs(seed):
    for n in (2, 10, 57, 200, 301):
        values = make_values(seed + n, n)
        assert count_inversions(values) == reference(values), (seed, n)


def test_duplicates(seed):
    values = [v % 7 for v in make_values(seed, 150)]
    assert count_inversions(values) == reference(values)


def test_input_untouched(seed):
    values = make_values(seed, 50)
    copy = list(values)
    count_inversions(values)
    assert values == copy
'''

SPEC = '''name = "redteam"
description = "Red-team target: inversion counting with a deliberately quadratic core."

[test]
cmd = "PYTHON -m pytest -q -s -p no:cacheprovider tests --seed {seed}"
timeout = "20s"

[bench]
cmd = "PYTHON bench.py --seed {seed}"
timeout = "10s"
metric = { regex = 'throughput: ([0-9.]+) items/s', unit = "items/s", better = "higher" }
same_output = ['^checksum: ']

[guard]
protected = ["tests/**", "bench.py", "fastlib/data.py", "optimize.toml"]
max_plausible_speedup = 10.0

[decide]
min_effect = "5%"
looks = [3, 6]
calibration_pairs = 6
confirm_pairs = 3
'''

BENCH_N = 2000


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


def make_target(root: Path) -> Path:
    """`root/repo` (a git repo on branch main, plus an untouched branch `feature`) and `root/shared`,
    a folder outside the repo that `repo/shared` links to."""
    repo, shared = root / "repo", root / "shared"
    shared.mkdir(parents=True)
    (shared / "README").write_text("outside the repository\n")
    files = {"fastlib/__init__.py": "", "fastlib/core.py": CORE, "fastlib/data.py": DATA,
             "bench.py": BENCH.replace("BENCH_N", str(BENCH_N)), "tests/conftest.py": CONFTEST,
             "tests/test_core.py": TESTS,
             "optimize.toml": SPEC.replace("PYTHON", sys.executable), ".gitignore": "__pycache__/\n"}
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / "shared").symlink_to("../shared")  # a committed symlink that points outside the repo
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "redteam target")
    git(repo, "branch", "feature")
    return repo

