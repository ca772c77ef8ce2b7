"""Run one command on a target: own process group, timeout, capped output, clean env, limits.

Everything the model can trigger goes through `run`, so every limit lives here. When bubblewrap
works on this machine, the command sees the filesystem read-only except the paths it may write,
a private /tmp, and no network.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

OUTPUT_CAP = 200_000  # bytes kept of each stream; the rest is dropped with a visible marker
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = 16_384  # address space; generous because JVMs reserve a lot up front
    max_procs: int | None = None  # RLIMIT_NPROC is ignored for root, so off by default


@dataclass(frozen=True)
class Sandbox:
    """Where a command may write. `readonly` freezes the worktree too (benchmarks cannot cache)."""

    writable: tuple[Path, ...] = ()
    network: bool = False
    readonly: bool = False


@dataclass(frozen=True)
class Result:
    cmd: str
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    max_rss_kb: int
    timed_out: bool = False
    truncated: bool = False
    sandboxed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    @property
    def output(self) -> str:
        return self.stdout + ("\n" + self.stderr if self.stderr else "")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that looks like a credential."""
    env = {k: v for k, v in os.environ.items() if not any(m in k.upper() for m in SECRET_MARKERS)}
    env.update(extra or {})
    return env


@functools.cache
def bwrap_available() -> bool:
    """bubblewrap installed and permitted (user namespaces) on this machine."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def sandbox_mode() -> str:
    return "bwrap" if bwrap_available() else "limits-only"


def _bwrap_prefix(cwd: Path, sandbox: Sandbox) -> list[str]:
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # Bound after the private /tmp so a worktree under /tmp stays visible.
    args += ["--ro-bind" if sandbox.readonly else "--bind", str(cwd), str(cwd)]
    for path in sandbox.writable:
        if path.exists():
            args += ["--bind", str(path), str(path)]
    if not sandbox.network:
        args.append("--unshare-net")
    return args + ["--die-with-parent", "--chdir", str(cwd), "--"]


def _limit(limits: Limits):
    def apply() -> None:
        if limits.memory_mb:
            size = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if limits.max_procs:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_procs, limits.max_procs))

    return apply


def run(
    cmd: str | list[str],
    cwd: Path,
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
    limits: Limits = Limits(),
    cap: int = OUTPUT_CAP,
) -> Result:
    """Run `cmd` (a shell string or argv) to completion or timeout; never raises for the command's failures."""
    argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    sandboxed = sandbox is not None and bwrap_available()
    if sandboxed:
        argv = _bwrap_prefix(Path(cwd).resolve(), sandbox) + argv
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=env if env is not None else clean_env(), start_new_session=True,
                preexec_fn=_limit(limits),
            )
        except OSError as e:
            return Result(shown, 127, "", f"cannot start: {e}", 0.0, 0.0, 0)
        status, usage, timed_out = _wait(proc, timeout)
        wall = time.perf_counter() - start
        stdout, t1 = _read_capped(out, cap)
        stderr, t2 = _read_capped(err, cap)
    code = os.waitstatus_to_exitcode(status)
    return Result(
        shown, code, stdout, stderr, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
        timed_out=timed_out, truncated=t1 or t2, sandboxed=sandboxed,
    )


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, resource.struct_rusage, bool]:
    """Block in wait4 (exit status and the child's rusage in one call, no polling delay in the
    wall time); a timer kills the whole group at the deadline."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        _kill_group(proc.pid)

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    _kill_group(proc.pid)  # stray grandchildren die with their leader
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, usage, fired.is_set()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_capped(f, cap: int) -> tuple[str, bool]:
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    if size <= cap:
        return f.read().decode(errors="replace"), False
    head = f.read(cap // 2).decode(errors="replace")
    f.seek(size - cap // 2)
    tail = f.read().decode(errors="replace")
    return f"{head}\n[... {size - cap} bytes of output cut by nightshift ...]\n{tail}", True
