"""Run a profiler with a deadline that still lets it write its data.

`tools.sh.run` kills the whole group with SIGKILL at its timeout, which loses py-spy's output, a
JVM's dump-on-exit recording and perf's data header. So coreutils `timeout` first sends SIGINT to
the group (profilers treat it as "stop and write"), and `run`'s SIGKILL is only the backstop.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.sh import run

GRACE_S = 15  # after SIGINT, how long the profiler gets to write before SIGKILL


def run_profiler(argv: list[str], cwd: Path, timeout: float, env: dict[str, str], *, what: str) -> list[str]:
    """Run to completion or deadline; every problem comes back as a warning, never an exception."""
    stopper = shutil.which("timeout")
    if stopper:
        argv = [stopper, "-s", "INT", "-k", str(GRACE_S), f"{timeout:g}", *argv]
    res = run(argv, cwd, timeout + GRACE_S + 15, env=env)
    if res.returncode == 124 or res.timed_out:
        return [f"{what}: stopped after the {timeout:g}s timeout; the profile covers only that part"]
    if res.returncode != 0:
        tail = res.tail(6).replace("\n", " | ")
        return [f"{what}: exited with code {res.returncode}; the profile may be partial. Output ends: {tail}"]
    return []
