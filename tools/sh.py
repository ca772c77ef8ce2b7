"""Run one command on a target: own process group, timeout, capped output, clean env, limits.

Everything the model can trigger goes through `run`, so every limit lives here. When bubblewrap
works on this machine, the command sees the filesystem read-only except the paths it may write,
a private size-capped /tmp, no network, and its own pid namespace (so even processes that left the
process group die with it). Without bubblewrap only the plain limits apply; `sandbox_mode` says which.
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
RUNAWAY_BYTES = 64 << 20  # stdout+stderr beyond this kills the command: it would only fill the disk
TMP_SIZE = 1 << 30  # the private /tmp is RAM-backed; cap it so a disk bomb cannot eat the machine's memory
POLL_S = 0.1
SPENT = {"seconds": 0.0, "runs": 0}  # time inside target commands, for the harness-overhead accounting
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def _default_memory_mb() -> int:
    """Address-space limit per process: NIGHTSHIFT_MEMORY_MB, else half the RAM, at most 16 GiB
    (generous because JVMs reserve a lot of address space up front)."""
    if os.environ.get("NIGHTSHIFT_MEMORY_MB", "").isdigit():
        return int(os.environ["NIGHTSHIFT_MEMORY_MB"])
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    return max(1024, min(16_384, ram_mb // 2))


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = field(default_factory=_default_memory_mb)
    max_procs: int | None = None  # RLIMIT_NPROC is ignored for root; the pid namespace cleans up instead


@dataclass(frozen=True)
class Sandbox:
    """Where a command may write. `readonly` freezes the worktree too (benchmarks cannot cache)."""

    writable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()  # replaced by empty folders (e.g. caches a candidate could have filled)
    frozen: tuple[Path, ...] = ()  # read-only even inside a writable folder (a worktree's .git file)
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
    runaway: bool = False  # killed for writing more than RUNAWAY_BYTES of output
    notes: list[str] = field(default_factory=list)
    vcsw: int = 0  # voluntary context switches of the process tree (it blocked: I/O, sleep, locks)
    ivcsw: int = 0  # involuntary ones (preempted: another task wanted the core)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.runaway

    @property
    def signal(self) -> int | None:
        """The signal that killed the command; shells and bwrap report a killed child as exit 128+N."""
        if self.returncode < 0:
            return -self.returncode
        return self.returncode - 128 if 128 < self.returncode < 160 else None

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
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot be used here (not installed, no user namespaces), or None when it works."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bwrap is not installed"
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--unshare-net", "--unshare-pid", "--die-with-parent", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap failed to start ({e})"
    return None if done.returncode == 0 else f"bwrap is not permitted here: {done.stderr.strip()[:200]}"


def bwrap_available() -> bool:
    return bwrap_problem() is None


def sandbox_mode() -> str:
    """One line for run.json: which containment this run gets."""
    if (problem := bwrap_problem()) is None:
        return "bwrap: read-only outside the worktree, private /tmp, no network, own pid namespace"
    return f"limits-only ({problem}): timeout, process group, output cap, memory limit, clean environment"


def _bwrap_prefix(cwd: Path, sandbox: Sandbox) -> list[str]:
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(TMP_SIZE), "--tmpfs", "/tmp"]
    for path in sandbox.hidden:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
    # Bound after the private /tmp so a worktree under /tmp stays visible.
    args += ["--ro-bind" if sandbox.readonly else "--bind", str(cwd), str(cwd)]
    for path in sandbox.writable:
        if path.exists() and path not in sandbox.hidden:
            args += ["--bind", str(path), str(path)]
    for path in sandbox.frozen:
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    if not sandbox.network:
        args.append("--unshare-net")
    # A pid namespace: when bwrap dies, everything inside dies too, even daemons that called setsid().
    # --as-pid-1: the command itself is init, so its end kills every process left inside, and wait4 still
    # sees its CPU time and peak RSS (with an extra bwrap init in between, both would be lost).
    return args + ["--unshare-pid", "--as-pid-1", "--new-session", "--die-with-parent", "--chdir", str(cwd), "--"]


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
        status, usage, why = _wait(proc, timeout, (out, err))
        wall = time.perf_counter() - start
        SPENT["seconds"] += wall
        SPENT["runs"] += 1
        stdout, t1 = _read_capped(out, cap)
        stderr, t2 = _read_capped(err, cap)
    code = os.waitstatus_to_exitcode(status)
    notes = []
    if why == "runaway":
        notes.append(f"killed by nightshift: more than {RUNAWAY_BYTES >> 20} MiB of output")
    elif why == "timeout":
        notes.append(f"killed by nightshift: still running after {timeout:g}s")
    return Result(
        shown, code, stdout, stderr, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
        timed_out=why == "timeout", truncated=t1 or t2, sandboxed=sandboxed, runaway=why == "runaway", notes=notes,
        vcsw=usage.ru_nvcsw, ivcsw=usage.ru_nivcsw,
    )


def _wait(proc: subprocess.Popen, timeout: float, outputs: tuple) -> tuple[int, resource.struct_rusage, str | None]:
    """Block in wait4 (exit status and the child's rusage in one call, no polling delay in the
    wall time); a watchdog thread kills the whole group at the deadline or on runaway output.
    Returns the status, the rusage, and why it was killed ("timeout", "runaway" or None)."""
    why: list[str] = []
    done = threading.Event()
    deadline = time.monotonic() + timeout

    def watch() -> None:
        while not done.wait(POLL_S):
            if time.monotonic() >= deadline:
                why.append("timeout")
            elif sum(os.fstat(f.fileno()).st_size for f in outputs) > RUNAWAY_BYTES:
                why.append("runaway")
            else:
                continue
            _kill_group(proc.pid)
            return

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        done.set()
        watchdog.join()
    _kill_group(proc.pid)  # stray grandchildren die with their leader
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, usage, why[0] if why else None


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
