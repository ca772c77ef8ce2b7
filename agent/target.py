"""Build, test and benchmark one checkout of the target, always inside the sandbox.

Builds may write the worktree and the toolchains' caches; tests only the worktree (whatever they
leave there is removed before benchmarking); benchmarks see everything read-only (a private /tmp
only) with the caches hidden, so a candidate cannot carry results from one run into the next.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from agent import lease
from agent.config import TargetSpec
from tools import sh

# Toolchain caches builds need to write (Maven's repository, Zig's global cache, pip/npm).
CACHES = (Path.home() / ".m2", Path.home() / ".cache")
BENCH_SANDBOX = sh.Sandbox(readonly=True, hidden=CACHES)

# Files that configure the evaluator in any repo (test collection, test options): always frozen,
# whatever optimize.toml says, so a root conftest.py cannot skip the suite.
EVALUATOR_FILES = ["optimize.toml", "conftest.py", "**/conftest.py", "pytest.ini", "tox.ini", "setup.cfg",
                   "pyproject.toml", "sitecustomize.py", "usercustomize.py"]


def protected_globs(spec: TargetSpec) -> list[str]:
    return list(dict.fromkeys([*spec.guard.protected, *EVALUATOR_FILES]))


def new_seed() -> int:
    """A seed the model never saw: drawn fresh for every verification."""
    return random.SystemRandom().randrange(1, 2**31)


def with_seed(cmd: str, seed: int) -> str:
    return cmd.replace("{seed}", str(seed))


@dataclass
class Target:
    spec: TargetSpec
    worktree: Path

    def build(self) -> sh.Result | None:
        if self.spec.build is None:
            return None
        return self._run(self.spec.build.cmd, self.spec.build.timeout, "build")

    def test(self, seed: int | None = None) -> sh.Result:
        cmd = with_seed(self.spec.test.cmd, new_seed() if seed is None else seed)
        return self._run(cmd, self.spec.test.timeout, "test")

    def bench(self, seed: int = 1) -> sh.Result:
        return self._run(with_seed(self.spec.bench.cmd, seed), self.spec.bench.timeout, "bench")

    def _run(self, cmd: str, timeout: float, step: str) -> sh.Result:
        # The worktree's .git file stays read-only: repointing it could make our own git calls run hooks.
        git_file = (self.worktree / ".git",)
        sandbox = {"build": sh.Sandbox(writable=CACHES, frozen=git_file), "test": sh.Sandbox(frozen=git_file),
                   "bench": BENCH_SANDBOX}[step]
        with lease.exclusive() if step == "bench" else lease.shared():
            return sh.run(cmd, self.worktree, timeout, sandbox=sandbox)


def failure(result: sh.Result, failed_reason: str) -> tuple[str, str] | None:
    """(reason code, detail) for a failed step, or None when it passed."""
    if result.runaway:
        return "runaway-output", f"killed after more than {sh.RUNAWAY_BYTES >> 20} MiB of output"
    if result.timed_out:
        return "timeout", f"timed out after {result.wall_s:.0f}s"
    if result.signal:
        return "crashed", f"killed by signal {result.signal}"
    if result.returncode != 0:
        if re.search(r"\bMemoryError\b|OutOfMemoryError|std::bad_alloc|out of memory", result.tail(80)):
            return failed_reason, f"exit code {result.returncode}: ran out of memory (limit {sh.Limits().memory_mb} MiB)"
        return failed_reason, f"exit code {result.returncode}"
    return None


_PYTEST = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)\b")
_SUREFIRE = re.compile(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)")


def passed_tests(output: str) -> int | None:
    """How many tests passed, from pytest's or Maven Surefire's summary; None when neither is found."""
    if runs := _SUREFIRE.findall(output):
        run, failures, errors, skipped = (int(x) for x in runs[-1])  # the last line is the total
        return run - failures - errors - skipped
    lines = [ln for ln in output.splitlines() if _PYTEST.search(ln)]
    if not lines:
        return None
    counts = {kind: int(n) for n, kind in _PYTEST.findall(lines[-1])}
    return counts.get("passed", 0) + counts.get("xpassed", 0)
