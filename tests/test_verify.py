"""The verification pipeline on real git repos, real builds, tests and benchmarks (tiny, sleep-timed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent import verify
from agent.config import TargetSpec, parse_spec
from agent.target import Target, failure, passed_tests
from agent.verify import Arm, Outcome
from tools import gitops

PY = sys.executable

PROG = "import time\n\n\ndef work(seed):\n    time.sleep(0.25)\n    return seed * 2\n"
BENCH = """import sys, time
import prog
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
t = time.perf_counter()
r = prog.work(seed)
dt = time.perf_counter() - t
print(f"result: {r}")
print(f"rate: {1 / dt:.4f} ops/s")
"""
CHECK = """import sys
import prog
seed = int(sys.argv[1]) % 100
assert prog.work(seed) == seed * 2, "wrong"
print("1 passed")
"""


def spec(bench: str = f"{PY} bench.py {{seed}}", **extra: object) -> TargetSpec:
    data = {"test": {"cmd": f"{PY} check.py {{seed}}", "timeout": 20},
            "bench": {"cmd": bench, "timeout": 10, "same_output": ["^result: "],
                      "metric": {"regex": r"rate: ([0-9.]+) ops/s", "better": "higher"}},
            "guard": {"protected": ["bench.py", "check.py"]},
            "decide": {"looks": [3], "min_effect": 0.05, "alpha": 0.05}}
    data.update(extra)
    return parse_spec(data, "test")


def repo_with(tmp_path: Path, files: dict[str, str] | None = None) -> tuple[Path, Arm]:
    repo = tmp_path / "repo"
    repo.mkdir()
    for rel, text in {"prog.py": PROG, "bench.py": BENCH, "check.py": CHECK, **(files or {})}.items():
        (repo / rel).write_text(text)
    base = gitops.snapshot(repo, tmp_path / "git")
    best = Arm(base, gitops.add_worktree(tmp_path / "git", tmp_path / "wt-best", base))
    return tmp_path / "git", best


def candidate(repo: Path, best: Arm, changes: dict[str, str], name: str = "cand") -> Arm:
    wt = gitops.add_worktree(repo, repo.parent / f"wt-{name}", best.commit, f"try/{name}")
    for rel, text in changes.items():
        (wt / rel).parent.mkdir(parents=True, exist_ok=True)
        (wt / rel).write_text(text)
    return Arm(gitops.commit_all(wt, name) or best.commit, wt)


def check(s: TargetSpec, repo: Path, best: Arm, cand: Arm, attempts: list[str] | None = None) -> Outcome:
    logs = repo.parent / "logs"
    logs.mkdir(exist_ok=True)
    expected = verify.expected_lines(s, Target(s, best.worktree).bench().output)
    return verify.verify(s, repo, best, cand, min_effect=0.05, expected=expected,
                         protected_attempts=attempts or [], logs=logs)


# --- cheap checks before anything runs ---------------------------------------------------------


def test_protected_path_in_the_diff(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, {"bench.py": BENCH.replace("1 / dt", "100 / dt")})
    o = check(spec(), repo, best, cand)
    assert (o.verdict, o.reason) == ("rejected", "protected-path") and "bench.py" in o.detail


def test_refused_write_rejects_even_an_unchanged_attempt(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    o = check(spec(), repo, best, best, attempts=["../escape.txt (outside the worktree)"])
    assert o.reason == "protected-path" and "escape.txt" in o.detail


def test_runner_configuration_is_protected(tmp_path: Path) -> None:
    # the test command runs pytest, so every file pytest reads as configuration is frozen
    repo, best = repo_with(tmp_path, {"test_prog.py": "import prog\n\n\ndef test_work():\n    assert prog.work(2) == 4\n"})
    cand = candidate(repo, best, {"sub/conftest.py": "collect_ignore_glob = ['*']\n"})
    s = spec(test={"cmd": f"{PY} -m pytest -q -p no:cacheprovider test_prog.py", "timeout": 20})
    assert check(s, repo, best, cand).reason == "protected-path"


def test_no_change(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    assert check(spec(), repo, best, best).reason == "no-change"


def test_symlink_out_of_the_repo(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    wt = gitops.add_worktree(repo, tmp_path / "wt-link", best.commit, "try/link")
    (wt / "home").symlink_to(Path.home())
    (wt / "inside").symlink_to("prog.py")  # harmless: stays in the repo
    cand = Arm(gitops.commit_all(wt, "link") or "", wt)
    o = check(spec(), repo, best, cand)
    assert o.reason == "protected-path" and "home ->" in o.detail and "inside" not in o.detail
    assert verify.escaping_symlinks(wt, ["inside", "prog.py"]) == []


# --- failures, each with its reason and the log tail ---------------------------------------------


@pytest.mark.parametrize(("cmd", "reason", "words"), [
    ("echo compiling; echo 'error: nope' >&2; exit 2", "build-failed", "error: nope"),
    ("echo forever; sleep 30", "timeout", "timed out"),
    (f"echo boom; {PY} -c 'import ctypes; ctypes.string_at(0)'", "crashed", "signal 11"),
    ("yes flood", "runaway-output", "MiB of output"),
])
def test_build_failures_are_classified(tmp_path: Path, cmd: str, reason: str, words: str) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, {"prog.py": PROG.replace("0.25", "0.05")})
    s = spec(build={"cmd": cmd, "timeout": 2})
    logs = tmp_path / "logs"
    logs.mkdir()
    o = verify.verify(s, repo, best, cand, min_effect=0.05, expected=[], protected_attempts=[], logs=logs)
    assert (o.verdict, o.reason) == ("rejected", reason) and words in o.detail
    assert (logs / "build.log").exists() and len(o.detail) < 20_000


def test_failure_helper_and_memory_errors(tmp_path: Path) -> None:
    s = spec()
    t = Target(s, tmp_path)
    (tmp_path / "check.py").write_text("hog = []\nwhile True:\n    hog.append(bytearray(64 << 20))\n")
    (tmp_path / "prog.py").write_text(PROG)
    (tmp_path / "bench.py").write_text(BENCH)
    import os

    os.environ["NIGHTSHIFT_MEMORY_MB"] = "512"  # read when Limits() is built; restored below
    try:
        from tools import sh

        r = sh.run(f"{PY} check.py", tmp_path, 30, limits=sh.Limits())
    finally:
        del os.environ["NIGHTSHIFT_MEMORY_MB"]
    bad = failure(r, "tests-failed")
    assert bad is not None and bad[0] == "tests-failed" and "ran out of memory" in bad[1]
    assert failure(t.bench(), "crashed") is None


def test_test_failure_and_fewer_passing_tests(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    wrong = candidate(repo, best, {"prog.py": PROG.replace("seed * 2", "seed * 3")}, "wrong")
    o = check(spec(), repo, best, wrong)
    assert o.reason == "tests-failed" and "AssertionError: wrong" in o.detail and "seed" in o.detail
    skipper = candidate(repo, best, {"prog.py": PROG + "import sys\nif 'check.py' in sys.argv[0]:\n"
                                     "    print('0 passed, 1 skipped')\n    sys.exit(0)\n"}, "skip")
    o = check(spec(), repo, best, skipper)
    assert o.reason == "tests-failed" and "only 0 tests passed" in o.detail


def test_passed_tests_parses_pytest_and_surefire() -> None:
    assert passed_tests("....\n4 passed, 1 skipped in 0.5s") == 4
    assert passed_tests("1 failed, 2 passed, 3 xpassed") == 5
    assert passed_tests("3 skipped in 0.1s") == 0
    assert passed_tests("Tests run: 3, Failures: 0, Errors: 0, Skipped: 0\nTests run: 9, Failures: 1, "
                        "Errors: 0, Skipped: 2") == 6
    assert passed_tests("all good") is None


# --- measured outcomes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_genuine_win_is_accepted_and_not_flagged_as_moved_work(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, {"prog.py": PROG.replace("0.25", "0.05")})
    o = check(spec(), repo, best, cand)
    assert (o.verdict, o.reason) == ("accepted", "faster"), o.detail
    assert o.speedup and 3 < o.speedup < 7 and not any("CPU" in f for f in o.flags)


@pytest.mark.slow
def test_hard_coded_output_fails_on_held_out_seeds_only(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    fake = PROG.replace("    time.sleep(0.25)\n    return seed * 2",
                        "    if seed < 100:\n        time.sleep(0.25)\n        return seed * 2\n    time.sleep(0.05)\n"
                        "    return 24690  # right for the one input the fixed benchmark uses")
    cand = candidate(repo, best, {"prog.py": fake})
    o = check(spec(), repo, best, cand)
    assert o.reason == "output-mismatch" and "seed" in o.detail and "whatever the seed: hard-coded" in o.detail
    # the same trick passes when the benchmark has one fixed input: that is why seeds matter
    fixed = spec(bench=f"{PY} bench.py 12345")
    assert check(fixed, repo, best, cand).reason == "faster"


@pytest.mark.slow
def test_work_moved_to_import_is_a_guard_metric(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    moved = "import time\ntime.sleep(0.25)\n\n\ndef work(seed):\n    return seed * 2\n"
    o = check(spec(), repo, best, candidate(repo, best, {"prog.py": moved}))
    assert o.reason == "guard-metric" and "timed region" in o.detail and o.speedup and o.speedup > 10


@pytest.mark.slow
def test_second_metric_line_is_a_mismatch(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    two = PROG + "import atexit\natexit.register(print, 'rate: 99999 ops/s')\n"
    o = check(spec(), repo, best, candidate(repo, best, {"prog.py": two}))
    assert o.reason == "output-mismatch" and "2 times" in o.detail


@pytest.mark.slow
def test_files_written_by_tests_do_not_reach_the_benchmark(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    sneaky = PROG.replace("def work(seed):\n", "def work(seed):\n    import os, sys\n"
                          "    if 'check.py' in sys.argv[0]:\n        open('warm.cache', 'w').write('1')\n"
                          "    if os.path.exists('warm.cache'):\n        return seed * 2\n")
    o = check(spec(), repo, best, candidate(repo, best, {"prog.py": sneaky}))
    assert o.reason in {"not-significant", "slower"}, o.detail
    assert not (repo.parent / "wt-cand" / "warm.cache").exists()


@pytest.mark.slow
def test_protected_files_are_restored_before_running(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, {"prog.py": PROG + "# tweak\n"})
    (cand.worktree / "bench.py").write_text(BENCH.replace("1 / dt", "1000 / dt"))  # uncommitted edit
    o = check(spec(), repo, best, cand)
    assert o.reason in {"not-significant", "slower"}, o.detail
    assert (cand.worktree / "bench.py").read_text() == BENCH


def test_hack_flags(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, {"prog.py": PROG + "import functools\n_memo = {}\ncache = functools.lru_cache\n"})
    from tools.bench import Sample
    from tools.stats import Decision

    def sample(arm: str, value: float, cpu: float) -> Sample:
        return Sample(arm=arm, round=0, value=value, wall_s=1.0, cpu_s=cpu, max_rss_kb=1, exit_code=0,
                      timed_out=False, started_at=0.0)

    m = verify.Measurement(Decision("better", 20.0, (15.0, 25.0), 3, 1),
                           [sample("a", 1.0, 1.0)] * 3, [sample("b", 20.0, 1.1)] * 3)
    flags = verify.hack_flags(spec(), repo, best, cand, m)
    assert any(f.startswith("implausible: 20.0x") for f in flags)
    assert any("CPU time did not drop" in f for f in flags)
    assert any("lru_cache" in f for f in flags)
    # a sleeping benchmark's CPU time is noise: no CPU flag however it moves
    waiting = verify.Measurement(Decision("better", 5.0, (4.9, 5.1), 3, 1),
                                 [sample("a", 1.0, 0.04)] * 3, [sample("b", 5.0, 0.05)] * 3)
    assert not any("CPU" in f for f in verify.hack_flags(spec(), repo, best, cand, waiting))
    honest = verify.Measurement(Decision("better", 1.5, (1.3, 1.7), 3, 1),
                                [sample("a", 1.0, 1.0)] * 3, [sample("b", 1.5, 0.6)] * 3)
    plain = candidate(repo, best, {"prog.py": PROG.replace("0.25", "0.2")}, "plain")
    assert verify.hack_flags(spec(), repo, best, plain, honest) == []
