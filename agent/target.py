"""Build, test and benchmark one checkout of the target, always inside the sandbox.

Build and tests may write the worktree and the toolchains' caches; benchmarks see everything
read-only (a private /tmp only), so a candidate cannot carry results from one run to the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from agent.config import TargetSpec
from tools import sh

# Toolchain caches builds need to write (Maven's repository, Zig's global cache, pip/npm).
CACHES = (Path.home() / ".m2", Path.home() / ".cache")
BENCH_SANDBOX = sh.Sandbox(readonly=True)


@dataclass
class Target:
    spec: TargetSpec
    worktree: Path

    def build(self) -> sh.Result | None:
        if self.spec.build is None:
            return None
        return self._run(self.spec.build.cmd, self.spec.build.timeout, readonly=False)

    def test(self, seed: int | None = None) -> sh.Result:
        seed = random.SystemRandom().randrange(1, 2**31) if seed is None else seed
        cmd = self.spec.test.cmd.replace("{seed}", str(seed))
        return self._run(cmd, self.spec.test.timeout, readonly=False)

    def bench(self) -> sh.Result:
        return self._run(self.spec.bench.cmd, self.spec.bench.timeout, readonly=True)

    def _run(self, cmd: str, timeout: float, readonly: bool) -> sh.Result:
        sandbox = BENCH_SANDBOX if readonly else sh.Sandbox(writable=CACHES)
        return sh.run(cmd, self.worktree, timeout, sandbox=sandbox)


def failure(result: sh.Result, failed_reason: str) -> tuple[str, str] | None:
    """(reason code, detail) for a failed step, or None when it passed."""
    if result.timed_out:
        return "timeout", f"timed out after {result.wall_s:.0f}s"
    if result.signal:
        return "crashed", f"killed by signal {result.signal}"
    if result.returncode != 0:
        return failed_reason, f"exit code {result.returncode}"
    return None
