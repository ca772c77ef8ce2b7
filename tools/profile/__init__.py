"""Profiling: CPU and allocation profiles of a target command, as collapsed stacks, a flame graph
people can open offline, and a short text summary for the model.

One entry point, `profile_target`, for every kind in the target spec: "py-spy" (Python),
"jfr" (JVM), "perf" or "callgrind" (native). Problems with the profiler or the profiled command
never raise; they come back as warnings next to whatever part of the profile was obtained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tools.profile.stacks import Capture, Frame, allocation_lines, summarize, top_frames
from tools.profile.timed import fresh
from tools.profile.viewer import SETUP_HINT, render_html
from tools.sh import clean_env

__all__ = ["KINDS", "Frame", "ProfileResult", "profile_target", "summarize", "top_frames"]

KINDS = ("py-spy", "jfr", "perf", "callgrind", "none")
# What the weights mean, said once in the summary so the model reads the numbers right.
_CPU_UNIT = {"py-spy": "samples", "jfr": "samples", "perf": "samples", "callgrind": "instructions"}
_ALLOC_MEANING = {
    "py-spy": "Python allocations: bytes still live near the peak of traced memory (tracemalloc, separate run).",
    "jfr": "JVM allocations: bytes allocated in all, estimated from JFR allocation samples.",
    "perf": "Native memory: bytes first touched (page faults x page size, perf page-faults event) by the code "
            "that touched them; memory an allocator reuses does not show again, and a transparent huge page "
            "counts as one small page.",
    "callgrind": "Native memory: bytes mapped at the peak (valgrind massif, pages as heap), by allocating call path.",
}


@dataclass(frozen=True)
class ProfileResult:
    profiler: str  # "py-spy", "jfr", "perf", "callgrind", or "none"
    collapsed: Path | None  # CPU samples, collapsed stacks "root;...;leaf COUNT"
    flamegraph: Path | None  # self-contained speedscope HTML, opens offline
    allocations: Path | None  # collapsed stacks weighted by bytes (its flame graph: alloc.html beside it)
    top: list[Frame]  # top frames by self share
    summary: str  # compact text for the model
    warnings: list[str] = field(default_factory=list)  # every degradation, in words


def profile_target(kind: str, cmd: str, cwd: Path, out_dir: Path, *, timeout: float,
                   previous: Path | None = None, env: dict | None = None) -> ProfileResult:
    """Profile `cmd` (a shell command run in `cwd`) into `out_dir`.

    `timeout` bounds each run of the command (Python gets two: CPU, then allocations). `previous`
    is an earlier cpu.collapsed.txt, or the out_dir holding one, to report what moved. `env` adds
    to the clean environment of `tools.sh`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The command is candidate code: it runs confined, writing only to raw/ (tools/profile/timed.py).
    raw = fresh(out_dir / "raw")
    cap = _capture(kind, cmd, Path(cwd), out_dir, raw, timeout, clean_env(env))
    flamegraph = alloc_graph = None
    if cap.collapsed:
        flamegraph = _render(cap.collapsed, out_dir / "flamegraph.html", f"CPU ({cap.profiler})", "none", cap)
    if cap.allocations:
        alloc_graph = _render(cap.allocations, out_dir / "alloc.html", f"Allocations ({cap.profiler})", "bytes", cap)
    if (cap.collapsed and not flamegraph) or (cap.allocations and not alloc_graph):
        cap.warnings.append(f"flame graph viewer missing: {SETUP_HINT}")
    if previous is not None and Path(previous).is_dir():
        previous = Path(previous) / "cpu.collapsed.txt"
    summary = _summary(cap, previous)
    (out_dir / "summary.txt").write_text(summary + "\n")
    return ProfileResult(cap.profiler, cap.collapsed, flamegraph, cap.allocations,
                         top_frames(cap.collapsed) if cap.collapsed else [], summary, cap.warnings)


def _capture(kind: str, cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float,
             env: dict[str, str]) -> Capture:
    # Imported here so that one profiler's module cannot break the others.
    try:
        if kind == "py-spy":
            from tools.profile.pyspy import profile_python

            return profile_python(cmd, cwd, out_dir, raw, timeout, env)
        if kind == "jfr":
            from tools.profile.jfr import profile_jvm

            return profile_jvm(cmd, cwd, out_dir, raw, timeout, env)
        if kind in ("perf", "callgrind"):
            from tools.profile.native import profile_native

            return profile_native(kind, cmd, cwd, out_dir, raw, timeout, env)
        if kind == "none":
            return Capture("none")
        return Capture("none", warnings=[f"unknown profiler kind {kind!r} (expected one of {', '.join(KINDS)}): no profile"])
    except Exception as e:  # a profiler bug must not end an overnight run
        return Capture(kind if kind in KINDS else "none", warnings=[f"{kind} profiling failed: {e!r}"])


def _render(collapsed: Path, out: Path, title: str, unit: str, cap: Capture) -> Path | None:
    try:
        return render_html(collapsed, out, title=title, unit=unit)
    except Exception as e:
        cap.warnings.append(f"flame graph {out.name} not written: {e!r}")
        return None


def _summary(cap: Capture, previous: Path | None) -> str:
    if cap.collapsed is None and cap.allocations is None:
        head = "No profile." if cap.profiler == "none" and not cap.warnings else "No profile could be taken."
        return "\n".join([head, *(f"warning: {w}" for w in cap.warnings[:6])])
    lines = [f"Profiler: {cap.profiler}."]
    if cap.allocations is not None and cap.profiler in _ALLOC_MEANING:
        lines.append(_ALLOC_MEANING[cap.profiler])
    if cap.collapsed is not None:
        lines.append(summarize(cap.collapsed, allocations=cap.allocations, previous=previous,
                               unit=_CPU_UNIT.get(cap.profiler, "samples")))
    else:
        lines += allocation_lines(cap.allocations)
    lines += [f"warning: {w[:300]}" for w in cap.warnings[:6]]
    return "\n".join(lines)
