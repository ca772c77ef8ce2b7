"""Run a profiler, confined, with a deadline that still lets it write its data.

The profiled command is candidate code, so the profiler runs inside the sandbox with it (tools/sh.py):
the worktree read-only, only the profile's own `raw/` folder writable, no /proc of the harness. Whatever
the command left in `raw/` is untrusted: `scrub` removes every symlink, FIFO or device before the harness
reads a byte (the sandbox's processes are all dead by then, so nothing can put them back).

`tools.sh.run` kills the whole group with SIGKILL at its timeout, which loses py-spy's output, a
JVM's dump-on-exit recording and perf's data header. So coreutils `timeout` first sends SIGINT to
the group (profilers treat it as "stop and write"), and `run`'s SIGKILL is only the backstop.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from tools import sh

GRACE_S = 15  # after SIGINT, how long the profiler gets to write before SIGKILL


def sandbox(raw: Path, readable: tuple[Path, ...] = ()) -> sh.Sandbox:
    """The worktree read-only (it is the best's, frozen), `raw` the only writable folder."""
    return sh.Sandbox(readonly=True, writable=(raw,), readable=readable)


def run_profiler(argv: list[str], cwd: Path, timeout: float, env: dict[str, str], *, what: str, raw: Path,
                 readable: tuple[Path, ...] = ()) -> list[str]:
    """Run to completion or deadline; every problem comes back as a warning, never an exception."""
    exe = Path(argv[0])
    readable = (*readable, exe.resolve().parent) if exe.is_absolute() else readable
    stopper = shutil.which("timeout")
    if stopper:
        argv = [stopper, "-s", "INT", "-k", str(GRACE_S), f"{timeout:g}", *argv]
    res = sh.run(argv, cwd, timeout + GRACE_S + 15, env=env, sandbox=sandbox(raw, readable))
    scrub(raw)
    if res.returncode == 124 or res.timed_out:
        return [f"{what}: stopped after the {timeout:g}s timeout; the profile covers only that part"]
    if res.returncode != 0:
        tail = res.tail(6).replace("\n", " | ")
        return [f"{what}: exited with code {res.returncode}; the profile may be partial. Output ends: {tail}"]
    return []


def fresh(folder: Path) -> Path:
    """An empty folder (whatever an earlier run left there removed, without following links)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def scrub(raw: Path) -> None:
    """Leave only plain folders and regular files under `raw`, so reading them cannot follow a link planted by
    the profiled code (to /proc/self/environ of the harness, say) or block on a FIFO."""
    for root, dirs, files in os.walk(raw):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                os.unlink(path)
