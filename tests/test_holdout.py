"""Hold-out inputs for fixed-input benchmarks: the spec's `[bench] holdout`, and the check on real runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent import verify
from agent.config import SpecError, parse_spec
from agent.verify import Arm
from tools import gitops

PY = sys.executable

# The input is a seed; the "work" sleeps, so wins are clear even on a busy machine.
PROG = "import time\n\n\ndef work(seed):\n    time.sleep(0.3)\n    return seed * 7 % 1000\n"
BENCH = """import argparse, time
import prog
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=1)
seed = p.parse_args().seed
t = time.perf_counter()
r = prog.work(seed)
print(f"result: {r}")
print(f"rate: {1 / (time.perf_counter() - t):.4f} ops/s")
"""
GENUINE = PROG.replace("0.3", "0.06")
BY_SIZE = "def work(seed):\n    return 7\n"  # right for the fixed input (seed 1) only
EXACT = "import time\n\n\ndef work(seed):\n    if seed == 1:\n        return 7\n    time.sleep(0.3)\n    return seed * 7 % 1000\n"


def spec(**holdout: object):
    return parse_spec({"test": {"cmd": "true"},
                       "bench": {"cmd": f"{PY} bench.py", "same_output": ["^result: "],
                                 "metric": {"regex": r"rate: ([0-9.]+) ops/s", "better": "higher"},
                                 "holdout": holdout or {"args": "--seed {seed}"}}}, "test")


@pytest.fixture
def arms(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "prog.py").write_text(PROG)
    (src / "bench.py").write_text(BENCH)
    base = gitops.snapshot(src, tmp_path / "git")
    reference = Arm(base, gitops.add_worktree(tmp_path / "git", tmp_path / "wt-base", base))

    def candidate(prog: str) -> Arm:
        wt = gitops.add_worktree(tmp_path / "git", tmp_path / f"wt-{abs(hash(prog))}", base, f"c{abs(hash(prog))}")
        (wt / "prog.py").write_text(prog)
        return Arm(gitops.commit_all(wt, "candidate"), wt)

    return reference, candidate


@pytest.mark.parametrize("bad, message", [
    ({"cmd": f"{PY} bench.py --seed 3"}, "must contain {seed}"),
    ({"cmd": "x {seed}", "args": "--seed {seed}"}, "either cmd or args"),
    ({"runs": 0, "args": "--seed {seed}"}, "runs"),
])
def test_holdout_spec_is_validated(bad: dict, message: str) -> None:
    with pytest.raises(SpecError, match=r"\[bench\.holdout") as e:
        spec(**bad)
    assert message in str(e.value)


def test_holdout_needs_checked_lines() -> None:
    with pytest.raises(SpecError, match="holdout needs same_output"):
        parse_spec({"test": {"cmd": "t"}, "bench": {"cmd": "b", "holdout": {"args": "--seed {seed}"}}}, "t")


def test_answer_keyed_on_the_fixed_input_size_is_an_output_mismatch(arms) -> None:
    reference, candidate = arms
    o = verify.holdout_check(spec(), reference, candidate(BY_SIZE))
    assert (o.verdict, o.reason) == ("rejected", "output-mismatch")
    assert "hold-out input the model never saw" in o.detail and "expected 'result: " in o.detail


def test_answer_keyed_exactly_is_caught_by_the_speedup_that_does_not_carry_over(arms) -> None:
    reference, candidate = arms
    o = verify.holdout_check(spec(), reference, candidate(EXACT))
    assert (o.verdict, o.reason) == ("rejected", "guard-metric"), o
    assert "on 2 inputs the model never saw" in o.detail


def test_genuine_win_passes_the_holdout(arms) -> None:
    reference, candidate = arms
    assert verify.holdout_check(spec(cmd=f"{PY} bench.py --seed {{seed}}", runs=3), reference, candidate(GENUINE)) is None


def test_holdout_at_baseline_must_run_and_vary_with_the_seed(arms) -> None:
    reference, _ = arms
    assert verify.holdout_baseline(spec(), reference) == (None, None)
    error, _ = verify.holdout_baseline(spec(cmd="false {seed}"), reference)
    assert error and "fails on the unmodified code" in error
    _, warning = verify.holdout_baseline(spec(cmd=f"{PY} bench.py --seed 5 # {{seed}}"), reference)
    assert warning and "same checked lines for two seeds" in warning
