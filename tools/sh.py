"""Run one command on a target: own process group, timeout, capped output, clean env, limits.

Everything candidate code can run goes through `run` with a `Sandbox`, so every limit lives here. When
bubblewrap works on this machine the command sees the filesystem read-only, with private empty /tmp,
/var/tmp, /run and $HOME (the user's home: only toolchains and dependency caches come back, read-only;
caches a build must write come as a private copy), writes only where its Sandbox allows, has no network,
its own pid and IPC namespaces (its /proc shows its own processes only, never the harness's environment)
and an environment without credentials. Without bubblewrap only the plain limits apply; `sandbox_mode`
says which, and what the sandbox lets a command see.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
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
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL", "AUTH", "PRIVATE", "COOKIE", "SESSION")
# Sockets and agents of the user's session: never handed to candidate code.
SESSION_VARS = ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")
_SECRETS: set[str] = set()  # values the harness holds (the API key): never in a child's env, redacted from output

# What the sandbox shows of the user's home (everything else there is hidden behind an empty private home):
# toolchains and dependency caches, read-only. Caches that a build must write come as a private copy per
# command, thrown away after it, so nothing a candidate writes reaches the user or another command.
HOME_READ = (".m2", ".gradle", ".cargo", ".rustup", ".pyenv", ".local/bin", ".local/lib", ".sdkman", ".jdks",
             ".nvm", ".volta", ".asdf", "go", ".conda", "miniconda3", "anaconda3", ".ivy2", ".sbt", ".elan",
             ".ghcup", ".cache/pip", ".cache/uv", ".cache/pypoetry", ".cache/go-build", ".cache/coursier")
HOME_COPY = (".cache/zig",)  # Zig locks and writes its global cache even when every artifact is there
HOME_MASKED = (".cargo/credentials", ".cargo/credentials.toml", ".m2/settings-security.xml",
               ".gradle/gradle.properties")
COPY_LIMIT = 2 << 30  # a cache bigger than this is not copied: the build starts with an empty one
# Environment variables naming toolchains that may live in a hidden place (under $HOME or /tmp).
TOOLCHAIN_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "JAVA_HOME", "GOROOT", "GOPATH", "CARGO_HOME", "RUSTUP_HOME",
                  "PYENV_ROOT", "SDKMAN_DIR", "NVM_DIR", "M2_HOME", "MAVEN_HOME", "GRADLE_HOME")
EXTRA_READ_VAR = "NIGHTSHIFT_SANDBOX_READ"  # more folders to show read-only, separated by ':'
SYSTEM_HIDDEN = ("/var/tmp", "/run", "/home", "/etc/ssh")  # private empty folders inside the sandbox
SYSTEM_MASKED = ("/etc/shadow", "/etc/gshadow")  # root-readable secrets: an empty file inside
SMALL_TMPFS = 64 << 20


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
    readable: tuple[Path, ...] = ()  # shown read-only even where the default view hides them (a git dir under /tmp)
    network: bool = False
    readonly: bool = False
    caches: bool = False  # private writable copies of HOME_COPY (builds and tests; benchmarks need none)
    throwaway: Path | None = None  # a copy of the worktree, shown at the worktree's path: writes go to the copy


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


def register_secret(value: str | None) -> None:
    """A value the harness holds (the API key): dropped from every child environment, redacted from output."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that looks like a credential or a session socket."""
    env = dict(os.environ)
    env.update(extra or {})
    return _scrub(env)


def _scrub(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items()
            if not any(m in k.upper() for m in SECRET_MARKERS) and k not in SESSION_VARS
            and not any(secret in v for secret in _SECRETS)}


def _redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "[secret removed by nightshift]")
    return text


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot be used here (not installed, no user namespaces), or None when it works."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bwrap is not installed"
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap failed to start ({e})"
    return None if done.returncode == 0 else f"bwrap is not permitted here: {done.stderr.strip()[:200]}"


def bwrap_available() -> bool:
    return bwrap_problem() is None


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def hidden_roots() -> list[Path]:
    """Folders whose content the sandbox replaces by an empty private one."""
    return [Path("/tmp"), *(Path(p) for p in SYSTEM_HIDDEN if Path(p).is_dir()), _home()]


def _hidden(path: Path) -> bool:
    return any(path == root or root in path.parents for root in hidden_roots())


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def home_view() -> tuple[list[Path], list[Path]]:
    """(read-only, private copy): what the sandbox shows again of the hidden folders by default. Toolchain
    folders named by the environment (a virtualenv, JAVA_HOME, PATH entries) are shown wherever they are."""
    home = _home()
    named = [os.environ.get(var, "") for var in TOOLCHAIN_VARS]
    named += os.environ.get(EXTRA_READ_VAR, "").split(os.pathsep)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(entry)
        if entry and p.is_absolute():  # a virtualenv's bin needs the virtualenv around it
            named.append(str(p.parent if p.name == "bin" and p.parent not in (home, Path("/")) else p))
    shown = [home / rel for rel in HOME_READ] + [Path(n) for n in named if n and Path(n).is_absolute()]
    readable: list[Path] = []
    for p in sorted(dict.fromkeys(shown), key=lambda p: len(p.parts)):  # a folder once, not again inside it
        if p != home and _hidden(p) and not _under(p, readable) and p.exists():
            readable.append(p)
    copies = [home / rel for rel in HOME_COPY if (home / rel).is_dir()]
    return readable, copies


def sandbox_mode() -> str:
    """One line for run.json: which containment this run gets, and what candidate code can see."""
    if (problem := bwrap_problem()) is None:
        readable, copies = home_view()
        home = str(_home())
        shown = ", ".join(str(p).replace(home, "~", 1) for p in readable) or "nothing"
        copied = ", ".join(str(p).replace(home, "~", 1) for p in copies) or "none"
        return ("bwrap: the filesystem read-only; writable only the worktree (build, tests; benchmarks and "
                "profiles see it read-only) and private empty /tmp, /var/tmp, /run and $HOME; of the user's home, "
                f"read-only: {shown}; private copies: {copied}; hidden: /etc/shadow, /etc/gshadow, /etc/ssh; "
                "own pid and IPC namespaces (no /proc of the harness), no network, no credentials in the environment")
    return f"limits-only ({problem}): timeout, process group, output cap, memory limit, clean environment"


def _bwrap_prefix(cwd: Path, sandbox: Sandbox, copies: dict[Path, Path]) -> list[str]:
    """bwrap arguments; later mounts win, so: system view, hidden folders, what comes back, the worktree."""
    home = _home()
    args = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(TMP_SIZE), "--tmpfs", "/tmp"]
    for hidden in SYSTEM_HIDDEN:
        if Path(hidden).is_dir():
            args += ["--size", str(SMALL_TMPFS), "--tmpfs", hidden]
    args += ["--size", str(TMP_SIZE), "--tmpfs", str(home)]
    args += [a for masked in SYSTEM_MASKED if Path(masked).is_file() for a in ("--ro-bind", "/dev/null", masked)]
    for path in sandbox.hidden:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
    readable, _ = home_view()
    for path in dict.fromkeys(readable + [p for p in sandbox.readable if _hidden(p) and p.exists()]):
        if path not in sandbox.hidden:
            args += ["--ro-bind", str(path), str(path)]
    args += [a for rel in HOME_MASKED if (home / rel).is_file() for a in ("--ro-bind", "/dev/null", str(home / rel))]
    for dest, copy in copies.items():
        if dest != cwd:
            args += ["--bind", str(copy), str(dest)]
    # Bound after the hidden folders so a worktree under /tmp or $HOME stays visible.
    if cwd in copies:
        args += ["--bind", str(copies[cwd]), str(cwd)]
    else:
        args += ["--ro-bind" if sandbox.readonly else "--bind", str(cwd), str(cwd)]
    for path in sandbox.writable:
        if path.exists() and path not in sandbox.hidden:
            args += ["--bind", str(path), str(path)]
    for path in sandbox.frozen:
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    if not sandbox.network:
        args.append("--unshare-net")
    # A pid namespace: when bwrap dies, everything inside dies too, even daemons that called setsid(), and
    # /proc inside shows only these processes. --as-pid-1: the command itself is init, so its end kills every
    # process left inside, and wait4 still sees its CPU time and peak RSS (with an extra bwrap init in
    # between, both would be lost). --new-session: no TIOCSTI into the harness's terminal.
    return args + ["--unshare-pid", "--unshare-ipc", "--as-pid-1", "--new-session", "--die-with-parent",
                   "--chdir", str(cwd), "--"]


def confine(argv: list[str], cwd: Path, sandbox: Sandbox) -> list[str]:
    """`argv` wrapped in the sandbox, for a caller that streams the output itself (no copies, no limits);
    unchanged where bubblewrap cannot run. Pass it `clean_env()` as its environment."""
    return _bwrap_prefix(Path(cwd).resolve(), sandbox, {}) + argv if bwrap_available() else argv


def _private_copies(scratch: Path) -> dict[Path, Path]:
    """A fresh copy of each cache in HOME_COPY under `scratch`, to be mounted in its place."""
    copies = {}
    for i, src in enumerate(home_view()[1]):
        dest = scratch / f"cache-{i}"
        if _size(src) <= COPY_LIMIT:
            with contextlib.suppress(OSError, shutil.Error):
                shutil.copytree(src, dest, symlinks=True)
        dest.mkdir(exist_ok=True)
        copies[src] = dest
    return copies


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
        if total > COPY_LIMIT:
            break
    return total


_PATH = re.compile(r"(?<![\w.~-])(/[\w.@+~-]+(?:/[\w.@+~-]+)*)")
_MISSING = re.compile(r"No such file|not found|cannot access|can't open|cannot open|does not exist|"
                      r"FileNotFound|NoSuchFile|Permission denied|Read-only file system", re.IGNORECASE)


def sandbox_hint(output: str, cwd: Path, sandbox: Sandbox) -> str | None:
    """When a sandboxed command failed on a path the sandbox hides or freezes, one line that says so."""
    home = str(_home())
    readable, copies = home_view()
    shown = [cwd, *readable, *copies, *sandbox.readable, *sandbox.writable]
    for line in output.splitlines()[-200:]:
        if not _MISSING.search(line):
            continue
        for m in _PATH.finditer(line):
            path = Path(m.group(1))
            if _hidden(path) and not _under(path, shown):
                listed = ", ".join(str(p).replace(home, "~", 1) for p in readable[:8]) or "nothing"
                return (f"sandbox: {path} is outside the worktree; the sandbox hides /tmp, /var/tmp, /run and "
                        f"$HOME ({home}) except the worktree and, read-only, {listed}. Put what the command needs "
                        f"in the repository, or list its folder in {EXTRA_READ_VAR}")
        if "Read-only file system" in line:
            paths = [Path(m.group(1)) for m in _PATH.finditer(line)]
            if sandbox.readonly and any(_under(p, [cwd]) for p in paths):
                return f"sandbox: a write was refused ({line.strip()[:160]}): benchmarks and profiles see the " \
                       "worktree read-only, so nothing can be carried from one run to the next"
            return f"sandbox: a write was refused ({line.strip()[:160]}): outside the worktree everything is " \
                   "read-only (the user's files, toolchains and dependency caches); only private /tmp and $HOME " \
                   "(emptied after each command) are writable"
    return None


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
    env = _scrub(env if env is not None else dict(os.environ))
    with contextlib.ExitStack() as stack:
        if sandboxed:
            assert sandbox is not None
            copies: dict[Path, Path] = {}
            if sandbox.caches and home_view()[1]:
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nightshift-cache-")))
                copies = _private_copies(scratch)
            if sandbox.throwaway is not None:
                copies[Path(cwd).resolve()] = sandbox.throwaway
            argv = _bwrap_prefix(Path(cwd).resolve(), sandbox, copies) + argv
            env = {**env, "TMPDIR": "/tmp"}
        return _run(argv, shown, Path(cwd), timeout, env, sandbox if sandboxed else None, limits, cap)


def _run(argv: list[str], shown: str, cwd: Path, timeout: float, env: dict[str, str], sandbox: Sandbox | None,
         limits: Limits, cap: int) -> Result:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
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
    stdout, stderr = _redact(stdout), _redact(stderr)
    if sandbox is not None and code != 0 and why is None and (hint := sandbox_hint(stdout + "\n" + stderr, cwd, sandbox)):
        notes.append(hint)
        stderr = f"{stderr.rstrip()}\n[nightshift] {hint}\n"
    return Result(
        shown, code, stdout, stderr, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
        timed_out=why == "timeout", truncated=t1 or t2, sandboxed=sandbox is not None, runaway=why == "runaway",
        notes=notes, vcsw=usage.ru_nvcsw, ivcsw=usage.ru_nivcsw,
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
