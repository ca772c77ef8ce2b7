"""Build, test and benchmark one checkout of the target, always inside the sandbox (tools/sh.py).

Builds and tests may write the worktree (the dependency caches are read-only, a build's writable cache is
a private copy); benchmarks see everything read-only, so a candidate cannot carry results from one run
into the next. A worktree that has been measured (the base, the best) is frozen: a digest taken at its
first measurement must still hold at every later one, and its tests run on a throwaway copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent import lease
from agent.config import TargetSpec
from tools import gitops, sh, testreport
from tools.bench import SampleError

BENCH_SANDBOX = sh.Sandbox(readonly=True)

# Frozen in every repo whatever optimize.toml says. Everything else that configures the evaluator is
# derived from the runner: the files the test runner and build tool read as configuration (named by
# the commands, or seen in a run's reports, including pytest plugins and conftest files loaded from
# the tree), so no configuration file can select, skip or add tests. See tools/testreport.py.
EVALUATOR_FILES = ["optimize.toml"]


def runner_config(spec: TargetSpec, report: testreport.Report | None = None) -> list[str]:
    """Configuration globs of the spec's runners (and of a run's report), minus `guard.editable_config`."""
    commands = [spec.test.cmd] + ([spec.build.cmd] if spec.build else [])
    editable = spec.guard.editable_config
    return [g for g in testreport.runner_config(commands, report)
            if not (editable and (gitops.matches(g, editable) or gitops.matches(g.removeprefix("**/"), editable)))]


def protected_globs(spec: TargetSpec, report: testreport.Report | None = None) -> list[str]:
    return list(dict.fromkeys([*spec.guard.protected, *EVALUATOR_FILES, *runner_config(spec, report)]))


SEEDS = threading.local()  # .rng: a comparison gives every arm's k-th attempt the same seed stream


def new_seed() -> int:
    """A seed the model never saw: drawn fresh for every verification."""
    return (getattr(SEEDS, "rng", None) or random.SystemRandom()).randrange(1, 2**31)


def with_seed(cmd: str, seed: int) -> str:
    return cmd.replace("{seed}", str(seed))


@dataclass
class Target:
    spec: TargetSpec
    worktree: Path
    _copy: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)

    def build(self) -> sh.Result | None:
        if self.spec.build is None:
            return None
        return self._run(self.spec.build.cmd, self.spec.build.timeout, "build")

    def test(self, seed: int | None = None) -> sh.Result:
        return self.test_run(seed)[0]

    def test_run(self, seed: int | None = None) -> tuple[sh.Result, testreport.Report]:
        """The tests, and what they ran by test identity (tools/testreport.py). The pytest probe writes
        into a fresh folder outside the worktree; JUnit XML left from earlier runs is removed first."""
        cmd = with_seed(self.spec.test.cmd, new_seed() if seed is None else seed)
        root = self.writable_root()  # a frozen worktree's tests write into a throwaway copy
        testreport.clear_junit(root)
        with tempfile.TemporaryDirectory(prefix="nightshift-tests-") as folder:
            reports = Path(folder)
            env = sh.clean_env(testreport.environment(reports, dict(os.environ)))
            result = self._run(cmd, self.spec.test.timeout, "test", env=env, writable=(reports,))
            return result, testreport.collect(root, reports, result.output, seen_as=self.worktree)

    def bench(self, seed: int = 1) -> sh.Result:
        return self._run(with_seed(self.spec.bench.cmd, seed), self.spec.bench.timeout, "bench")

    def holdout(self, seed: int) -> sh.Result:
        """The benchmark on an input the model never saw (`[bench] holdout`), sandboxed like the benchmark."""
        cmd = self.spec.bench.holdout.command(self.spec.bench.cmd)
        return self._run(with_seed(cmd, seed), self.spec.bench.timeout, "bench")

    def _run(self, cmd: str, timeout: float, step: str, env: dict[str, str] | None = None,
             writable: tuple[Path, ...] = ()) -> sh.Result:
        sandbox = BENCH_SANDBOX if step == "bench" else self.sandbox(writable, self.writable_root(), step == "build")
        with lease.exclusive() if step == "bench" else lease.shared():
            return sh.run(cmd, self.worktree, timeout, sandbox=sandbox, env=env)

    def sandbox(self, writable: tuple[Path, ...] = (), root: Path | None = None, caches: bool = False) -> sh.Sandbox:
        """For builds and tests: the worktree writable (or `root`, a copy shown in its place), its .git file
        read-only (repointing it could make our own git calls run hooks), the repository's git folder readable
        (builds that run `git describe`); for builds, a private copy of the caches a build writes (copying
        them costs seconds, so tests that compile start from an empty private cache)."""
        return sh.Sandbox(writable=writable, frozen=(self.worktree / ".git",), readable=gitops.git_dirs(self.worktree),
                          caches=caches, throwaway=root if root != self.worktree else None)

    def writable_root(self) -> Path:
        """Where builds and tests of this worktree write: the worktree itself, or for a frozen (measured) one a
        copy that the sandbox shows at the worktree's path, removed with this Target."""
        if not frozen(self.worktree):
            return self.worktree
        if self._copy is None or not (Path(self._copy.name) / "worktree").is_dir():
            self._copy = tempfile.TemporaryDirectory(prefix="nightshift-frozen-")
            shutil.copytree(self.worktree, Path(self._copy.name) / "worktree", symlinks=True)
        return Path(self._copy.name) / "worktree"


# --- frozen worktrees: a measured checkout must not change under later measurements -----------------------

_FROZEN: dict[Path, tuple[str, str]] = {}  # worktree -> (tree hash, digest of every file's metadata)
_FROZEN_LOCK = threading.Lock()


class WorktreeChanged(SampleError):
    """A measured worktree changed since its first measurement: the measurement is refused."""

    def __init__(self, message: str) -> None:
        super().__init__("crashed", message)


def digest(worktree: Path) -> str:
    """Every path under the worktree with its type, size, mode, mtime and ctime (which no process can set
    back), build outputs and ignored files included: any write shows, without hashing gigabytes."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(worktree):
        dirs.sort()
        for name in sorted(files) + dirs:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                h.update(f"{os.path.relpath(path, worktree)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0"
                         f"{st.st_ctime_ns}\n".encode(errors="surrogateescape"))
    return h.hexdigest()


def _tree(worktree: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=worktree, capture_output=True, text=True)
    return done.stdout.strip()


def frozen(worktree: Path) -> bool:
    """Whether this worktree, at its current commit's tree, has been measured."""
    key = worktree.resolve()
    with _FROZEN_LOCK:
        entry = _FROZEN.get(key)
    return entry is not None and entry[0] == _tree(worktree)


def check_measured(worktree: Path) -> None:
    """Before a measurement: freeze a worktree measured for the first time (at this tree), or check that it
    is exactly as when it was first measured; WorktreeChanged otherwise."""
    key, tree = worktree.resolve(), _tree(worktree)
    now = digest(worktree)
    with _FROZEN_LOCK:
        entry = _FROZEN.get(key)
        if entry is None or entry[0] != tree:
            _FROZEN[key] = (tree, now)
            return
    if entry[1] != now:
        raise WorktreeChanged(f"the worktree {worktree.name} changed since it was first measured (files written "
                              "into a measured checkout): measurement refused")


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
        hint = next((n for n in result.notes if n.startswith("sandbox: ")), None)
        return failed_reason, f"exit code {result.returncode}" + (f" ({hint})" if hint else "")
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
