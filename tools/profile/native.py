"""Native targets (C, C++, Zig, Rust): perf where the kernel allows it, else valgrind callgrind.

perf samples the software cpu-clock event (hardware counters are often missing in VMs) and unwinds
with DWARF, because optimised builds usually omit frame pointers and `-g` alone would lose every
caller. callgrind counts instructions (deterministic, but ~50x slower) and keeps only caller->callee
edges, so its stacks are rebuilt by splitting each function's inclusive cost over its callees.

Memory, in a second run: with perf, the page-faults event (where new memory is first touched: the
allocator-independent view, which matters for Zig, whose allocators map pages without malloc); with
valgrind, massif counting pages as heap, read at its peak snapshot.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from tools import sh
from tools.profile.stacks import Capture, Stacks, write_collapsed
from tools.profile.timed import fresh, run_profiler

PERF_HZ = 199  # each DWARF sample carries an 8 KB stack copy: keep perf.data in the tens of MB
FAULT_PERIOD = 4  # one sample per 4 page faults (16 KiB first touched): a GiB costs 64K samples
PAGE = os.sysconf("SC_PAGE_SIZE")
_OFFSET = re.compile(r"\+0x[0-9a-f]+$")


@functools.cache
def perf_permitted(perf: str) -> bool:
    """A tiny recording tells what perf_event_paranoid, seccomp and the VM allow, better than reading them;
    made inside the sandbox, where the real recordings run (without the capabilities root has outside)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = [perf, "record", "-q", "-e", "cpu-clock", "-g", "-o", f"{tmp}/probe.data", "--", "true"]
        res = sh.run(probe, Path(tmp), 30, sandbox=sh.Sandbox(readable=(Path(perf).resolve().parent,)))
        return res.ok and Path(tmp, "probe.data").exists()


def profile_native(kind: str, cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float,
                   env: dict[str, str]) -> Capture:
    if kind == "perf":
        perf = shutil.which("perf", path=env.get("PATH"))
        if perf and perf_permitted(perf):
            return _perf(perf, cmd, cwd, out_dir, raw, timeout, env)
        reason = "perf missing" if perf is None else "perf events not permitted here"
        cap = _callgrind(cmd, cwd, out_dir, raw, timeout, env)
        cap.warnings.insert(0, f"{reason}: used callgrind instead (instruction counts, not time)")
        return cap
    return _callgrind(cmd, cwd, out_dir, raw, timeout, env)


def _perf(perf: str, cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float, env: dict[str, str]) -> Capture:
    cap = Capture("perf")
    cap.collapsed = _perf_folded(perf, ["-e", "cpu-clock", "-F", str(PERF_HZ)], cmd, cwd, out_dir, raw, "cpu",
                                 timeout, env, cap.warnings)
    if cap.collapsed is None:
        cap.warnings.append("perf recorded no samples (command too short?): no CPU profile")
    cap.allocations = _perf_folded(perf, ["-e", "page-faults", "-c", str(FAULT_PERIOD)], cmd, cwd, out_dir, raw,
                                   "alloc", timeout, env, cap.warnings, weight=FAULT_PERIOD * PAGE)
    if cap.allocations is None:
        cap.warnings.append("perf recorded no page faults: no memory profile")
    return cap


def _perf_folded(perf: str, event: list[str], cmd: str, cwd: Path, out_dir: Path, raw: Path, name: str,
                 timeout: float, env: dict[str, str], warnings: list[str], weight: int = 1) -> Path | None:
    """One `perf record` of `event` with DWARF stacks -> `<name>.collapsed.txt` (sample count x weight)."""
    data = raw / f"{name}.perf.data"
    data.unlink(missing_ok=True)
    argv = [perf, "record", "-q", *event, "--call-graph", "dwarf", "-o", str(data), "--", "/bin/sh", "-c", cmd]
    warnings += run_profiler(argv, cwd, timeout, env, what=f"perf record ({event[1]})", raw=raw)
    if not data.is_file():
        warnings.append(f"perf wrote no {event[1]} data")
        return None
    script = out_dir / f"{name}.perf.txt"
    # perf.data came from the profiled program: read inside the sandbox too, its output straight to a file
    # of the harness's (it can be large), then folded line by line.
    argv = sh.confine([perf, "script", "-i", str(data), "-F", "comm,ip,sym,dso"], cwd,
                      sh.Sandbox(readonly=True, readable=(Path(perf).resolve().parent, raw)))
    try:
        with script.open("w") as f:
            res = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.DEVNULL, timeout=timeout, check=False,
                                 env=sh.clean_env(env))
        if res.returncode != 0:
            warnings.append(f"perf script failed with code {res.returncode}; stacks may be partial")
    except (OSError, subprocess.TimeoutExpired) as e:
        warnings.append(f"perf script failed: {e}")
    stacks = fold_perf_script(script)
    # Both are ~100 MB a minute with DWARF stacks and the collapsed file holds what they said.
    script.unlink(missing_ok=True)
    data.unlink(missing_ok=True)
    return write_collapsed(Counter({k: v * weight for k, v in stacks.items()}), out_dir / f"{name}.collapsed.txt")


def fold_perf_script(script: Path) -> Stacks:
    """`perf script` blocks (a header line, then one frame per line, leaf first) -> collapsed stacks."""
    stacks: Stacks = Counter()
    comm: str | None = None
    frames: list[str] = []

    def flush() -> None:
        if comm is not None:
            stacks[(comm, *reversed(frames))] += 1

    with script.open(errors="replace") as f:
        for line in f:
            if not line.strip():
                flush()
                comm, frames = None, []
            elif line[0] in " \t":
                frames.append(_perf_frame(line.strip()))
            else:
                flush()
                comm, frames = line.split()[0] if line.split() else "?", []
    flush()
    return stacks


def _perf_frame(text: str) -> str:
    """`55d0c3a1b139 hot+0x19 (/tmp/x/prog)` -> `hot`; unknown symbols -> `[prog]` (the object)."""
    parts = text.split(" ", 1)
    rest = parts[1] if len(parts) > 1 else parts[0]
    sym, _, dso = rest.rpartition(" (")
    sym = _OFFSET.sub("", sym.strip())
    if sym and sym != "[unknown]":
        return sym
    dso = dso.rstrip(")")
    return f"[{os.path.basename(dso)}]" if dso and dso != "[unknown]" else "[unknown]"


def _callgrind(cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float, env: dict[str, str]) -> Capture:
    cap = Capture("callgrind")
    valgrind = shutil.which("valgrind", path=env.get("PATH"))
    if valgrind is None:
        cap.warnings.append("valgrind missing: no CPU profile")
        return cap
    cg_dir = fresh(raw / "callgrind")
    argv = [valgrind, "--tool=callgrind", "--trace-children=yes", "--quiet",
            f"--callgrind-out-file={cg_dir}/callgrind.%p.out", "/bin/sh", "-c", cmd]
    cap.warnings += run_profiler(argv, cwd, timeout, env, what="valgrind callgrind", raw=raw)
    stacks: Stacks = Counter()
    for out in cg_dir.glob("callgrind.*.out"):
        stacks.update(callgrind_stacks(out))
    cap.collapsed = write_collapsed(stacks, out_dir / "cpu.collapsed.txt")
    if cap.collapsed is None:
        cap.warnings.append("callgrind wrote no usable data: no CPU profile")
    cap.allocations = _massif(valgrind, cmd, cwd, out_dir, raw, timeout, env, cap.warnings)
    return cap


def _massif(valgrind: str, cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float, env: dict[str, str],
            warnings: list[str]) -> Path | None:
    ms_dir = fresh(raw / "massif")
    # Massif marks a peak only when memory later drops, so a program that only grows has a stale
    # "peak": every snapshot detailed, and the largest one read.
    argv = [valgrind, "--tool=massif", "--pages-as-heap=yes", "--detailed-freq=1", "--trace-children=yes", "--quiet",
            f"--massif-out-file={ms_dir}/massif.%p.out", "/bin/sh", "-c", cmd]
    warnings += run_profiler(argv, cwd, timeout, env, what="valgrind massif", raw=raw)
    stacks: Stacks = Counter()
    for out in ms_dir.glob("massif.*.out"):
        stacks.update(massif_stacks(out))
    found = write_collapsed(stacks, out_dir / "alloc.collapsed.txt")
    if found is None:
        warnings.append("massif wrote no usable data: no memory profile")
    return found


_MASSIF_NODE = re.compile(r"^( *)n\d+: (\d+) (.*)$")
# The allocator's own frames under the caller that asked for memory: dropped, so the leaf is the site.
_ALLOCATOR = re.compile(r"^(_*(mmap|mmap64|mremap|brk|sbrk|malloc|calloc|realloc|memalign|posix_memalign|"
                        r"aligned_alloc|sysmalloc\w*|glibc_morecore|int_malloc|int_realloc|libc_\w+|GI_\w+)"
                        r"(\.\w+)*|operator new.*|_Zn[wa]\w*)$")


def massif_stacks(path: Path) -> Stacks:
    """The largest snapshot's allocation tree (root: the allocation calls; children: their callers) as
    collapsed stacks, outermost caller first, under the process's program name, weighted by bytes."""
    program = "?"
    snapshots: list[tuple[int, list[tuple[int, int, str]]]] = []
    current = None
    with path.open(errors="replace") as f:
        for line in f:
            if line.startswith("cmd: "):
                program = os.path.basename(line[5:].split()[0]) if line[5:].split() else "?"
            elif line.startswith("mem_heap_B="):
                current = (int(line.split("=")[1]), [])
                snapshots.append(current)
            elif current is not None and (m := _MASSIF_NODE.match(line)):
                current[1].append((len(m[1]), int(m[2]), _massif_frame(m[3])))
    trees = [s for s in snapshots if s[1]]
    if not trees:
        return Counter()
    peak = max(trees, key=lambda s: s[0])
    stacks: Stacks = Counter()
    path_: list[str] = []
    nodes = peak[1]
    for i, (depth, size, frame) in enumerate(nodes):
        del path_[depth:]
        path_.append(frame)
        children = 0
        for d, s, _ in nodes[i + 1:]:
            if d <= depth:
                break
            if d == depth + 1:
                children += s
        if size > children and depth > 0:  # depth 0 is the allocation call itself, not a frame
            callers = path_[1:]
            while len(callers) > 1 and _ALLOCATOR.match(callers[0]):
                callers = callers[1:]
            stacks[(program, *reversed(callers))] += size - children
    return stacks


def _massif_frame(text: str) -> str:
    """`0x10A3CD: grab (hot.c:20)` -> `grab`; `in 3 places, all below ...` -> `[below threshold]`."""
    if text.startswith("in ") and "below massif's threshold" in text:
        return "[below threshold]"
    text = re.sub(r"^0x[0-9A-Fa-f]+: ", "", text)
    name, sep, _ = text.rpartition(" (")
    return (name if sep else text).strip() or "[unknown]"


def parse_callgrind(path: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Self instruction counts per function, and inclusive cost per caller->callee edge."""
    own: Counter[str] = Counter()
    calls: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, str] = {}  # name compression: "(id) name" defines, "(id)" refers
    fn = callee = "???"
    after_calls = False

    def name(value: str) -> str:
        m = re.match(r"\((\d+)\)\s*(.*)", value)
        if not m:
            return value
        if m[2]:
            names[m[1]] = m[2]
        return names.get(m[1], value)

    with path.open(errors="replace") as f:
        for line in f:
            if line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                if after_calls:
                    calls[fn][callee] += cost
                    after_calls = False
                else:
                    own[fn] += cost
            elif line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                callee = name(line[4:].strip())
            elif line.startswith("calls="):
                after_calls = True
    return own, calls


def callgrind_stacks(path: Path, depth: int = 64, floor: float = 1e-4) -> Stacks:
    """Rebuild stacks top-down: a function's cost on a path goes to itself and its callees in the
    proportions of its totals. Exact for trees, an estimate where a function has several callers."""
    own, calls = parse_callgrind(path)
    incl = {f: own[f] + sum(calls[f].values()) for f in set(own) | set(calls)}
    called = {c for edges in calls.values() for c in edges}
    roots = [f for f in incl if f not in called and incl[f] > 0]
    whole = sum(incl[f] for f in roots)
    stacks: Stacks = Counter()

    def walk(path_: tuple[str, ...], weight: float) -> None:
        f = path_[-1]
        if len(path_) >= depth or weight < floor * whole or incl[f] <= 0:
            stacks[path_] += round(weight)
            return
        stacks[path_] += round(weight * own[f] / incl[f])
        for callee, cost in calls[f].items():
            share = weight * cost / incl[f]
            # A call back into the path is recursion, whose cost callgrind already counted in the
            # outer call's inclusive cost: dropping it avoids counting it twice.
            if callee not in path_ and callee in incl:
                walk(path_ + (callee,), share)

    for root in roots:
        walk((root,), incl[root])
    # Inclusive costs can count a call twice (e.g. "(below main)" and __libc_start_main): rescale so
    # the stacks add up to the instructions actually executed.
    scale = sum(own.values()) / max(1, sum(stacks.values()))
    return Counter({s: round(w * scale) for s, w in stacks.items() if round(w * scale) > 0})
