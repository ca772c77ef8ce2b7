"""Python targets: CPU with py-spy, allocations with tracemalloc, in two separate runs.

py-spy samples from outside the process, launching the command as its child (no root, no attach),
with --subprocesses because the command always goes through a shell. Allocations come from a
stdlib-only sitecustomize (pysite/) rather than memray: it needs nothing installed in the target's
interpreter or virtualenv and follows shell wrappers and subprocesses, where `memray run` can only
wrap a single Python script. tracemalloc slows Python several-fold, so it gets its own run and
never distorts the CPU profile. Its weights are bytes live near the peak of traced memory.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import stat
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tools.profile.stacks import Capture, Stacks, write_collapsed
from tools.profile.timed import fresh, run_profiler

PYSITE = Path(__file__).parent / "pysite"
RATE_HZ = 200
MAX_SOURCE = 8 << 20  # larger "source files" named in an allocation dump are not read
_PROCESS = re.compile(r'^process \d+:"[^"]*"$')
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def profile_python(cmd: str, cwd: Path, out_dir: Path, raw_dir: Path, timeout: float, env: dict[str, str]) -> Capture:
    cap = Capture("py-spy")
    exe = shutil.which("py-spy", path=env.get("PATH"))
    if exe is None:
        cap.warnings.append("py-spy missing: no CPU profile")
    else:
        raw = raw_dir / "py-spy.raw.txt"
        # A plain command is launched directly (py-spy samples it most reliably); shell syntax needs sh and
        # --subprocesses. py-spy occasionally dies or misses the child on a busy machine: it gets three tries.
        plain = not any(c in cmd for c in "|&;<>()$`\\\"'*?[]#~={}")
        direct = plain and Path(shlex.split(cmd)[0]).name.startswith("python")
        target = ["--", *shlex.split(cmd)] if direct else ["--subprocesses", "--", "/bin/sh", "-c", cmd]
        argv = [exe, "record", "--format", "raw", "--full-filenames", "--rate", str(RATE_HZ),
                "--output", str(raw), *target]
        for _ in range(3):
            raw.unlink(missing_ok=True)
            warnings = run_profiler(argv, cwd, timeout, env, what="py-spy", raw=raw_dir)
            if raw.exists():
                cap.collapsed = write_collapsed(_fold_pyspy(raw, cwd), out_dir / "cpu.collapsed.txt")
            if cap.collapsed is not None:
                break
        cap.warnings += warnings
        if cap.collapsed is None:
            cap.warnings.append("py-spy recorded no Python samples: no CPU profile")
    cap.allocations, alloc_warnings = _allocations(cmd, cwd, out_dir, raw_dir, timeout, env)
    cap.warnings += alloc_warnings
    return cap


def _fold_pyspy(raw: Path, cwd: Path) -> Stacks:
    """py-spy raw lines -> readable frames; process frames dropped so pids do not split stacks."""
    stacks: Stacks = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, weight = line.rpartition(" ")
        if not weight.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not _PROCESS.match(f)]
        if frames:
            stacks[tuple(_pyspy_frame(f, cwd) for f in frames)] += int(weight)
    return stacks


def _pyspy_frame(frame: str, cwd: Path) -> str:
    m = _FRAME.match(frame)
    return pretty(m["func"], m["file"], cwd) if m else frame


def pretty(func: str, filename: str, cwd: Path) -> str:
    """`module.func (file.py)`; line numbers dropped so one function is one frame."""
    module, shown = _module(filename, str(cwd))
    return f"{module}.{func} ({shown})" if module else f"{func} ({shown})"


@functools.lru_cache(maxsize=4096)
def _module(filename: str, cwd: str) -> tuple[str, str]:
    if filename.startswith("<frozen "):
        return filename[len("<frozen "):-1], filename
    if filename.startswith("<"):
        return "", filename
    path = filename.replace(os.sep, "/")
    rel, shown = path, os.path.basename(path)
    root = cwd.rstrip("/") + "/"
    if path.startswith(root):
        rel = shown = path[len(root):]
    else:
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path:
                rel = path.split(marker, 1)[1]
                break
        else:
            m = re.search(r"/lib/python3\.\d+/(.*)$", path)
            rel = m[1] if m else shown
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p), shown


def _allocations(cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float,
                 env: dict[str, str]) -> tuple[Path | None, list[str]]:
    dumps = fresh(raw / "tracemalloc")
    path = os.pathsep.join(p for p in (str(PYSITE), env.get("PYTHONPATH", "")) if p)
    run_env = {**env, "PYTHONPATH": path, "NIGHTSHIFT_ALLOC_DIR": str(dumps)}
    warnings = run_profiler(["/bin/sh", "-c", cmd], cwd, timeout, run_env, what="tracemalloc run", raw=raw,
                            readable=(PYSITE,))
    stacks: Stacks = Counter()
    own = str(PYSITE / "sitecustomize.py")
    for dump in dumps.glob("alloc-*.txt"):
        for line in dump.read_text(errors="replace").splitlines():
            stack, _, size = line.rpartition(" ")
            raw_frames = stack.split(";")
            if not size.isdigit() or not stack or any(f.startswith(own) for f in raw_frames):
                continue  # malformed, or memory of our own watcher thread and its snapshots
            stacks[_squash(_alloc_frame(f, cwd) for f in raw_frames)] += int(size)
    out = write_collapsed(stacks, out_dir / "alloc.collapsed.txt")
    if out is None:
        warnings.append("tracemalloc wrote no allocation data (no Python process exited normally?): "
                        "no allocation profile")
    return out, warnings


def _squash(frames: Iterable[str]) -> tuple[str, ...]:
    # comprehensions (3.11) are frames of their own that resolve to the enclosing def: merge repeats
    out: list[str] = []
    for f in frames:
        if not out or out[-1] != f:
            out.append(f)
    return tuple(out)


def _alloc_frame(frame: str, cwd: Path) -> str:
    filename, _, line = frame.rpartition(":")
    if not line.isdigit():
        return frame
    return pretty(_function_at(filename, int(line)), filename, cwd)


@functools.lru_cache(maxsize=4096)
def _function_at(filename: str, line: int) -> str:
    """tracemalloc records only file:line; find the innermost def around it, named like co_qualname."""
    best = "<module>"
    for start, end, name in _functions(filename):
        if start <= line <= end:
            best = name  # later entries are nested deeper, so the last hit is innermost
    return best


@functools.lru_cache(maxsize=512)
def _functions(filename: str) -> tuple[tuple[int, int, str], ...]:
    # The name comes from the profiled program's own dump: read only a plain source file of sane size,
    # never /proc, a device or a FIFO (which would block the harness or read its own secrets).
    path = Path(filename)
    try:
        st = path.stat()
        if not path.is_absolute() or path.parts[1:2] in (("proc",), ("sys",), ("dev",)) \
                or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SOURCE:
            return ()
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return ()
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                found.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return tuple(found)
