"""Collapsed stacks ("root;...;leaf WEIGHT"): the one format every profiler here is reduced to.

Reading merges duplicate stacks; the summary for the model is plain text built from these files only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

Stacks = Counter[tuple[str, ...]]


@dataclass(frozen=True)
class Frame:
    frame: str
    self_pct: float
    total_pct: float


@dataclass
class Capture:
    """What one profiler run produced; paths are None when that part failed."""

    profiler: str
    collapsed: Path | None = None
    allocations: Path | None = None
    warnings: list[str] = field(default_factory=list)


def read_collapsed(path: Path) -> Stacks:
    stacks: Stacks = Counter()
    with path.open(errors="replace") as f:
        for line in f:
            stack, _, weight = line.rstrip("\n").rpartition(" ")
            if not stack or not weight.isdigit():
                continue  # blank, malformed, or a bare weight with no frames
            stacks[tuple(stack.split(";"))] += int(weight)
    return stacks


def write_collapsed(stacks: Iterable[tuple[tuple[str, ...], int]] | Stacks, path: Path) -> Path | None:
    """Write merged stacks, heaviest first; returns None (and writes nothing) when there are none."""
    merged: Stacks = Counter()
    items = stacks.items() if isinstance(stacks, Counter) else stacks
    for frames, weight in items:
        if frames and weight > 0:
            merged[tuple(_clean(f) for f in frames)] += weight
    if not merged:
        return None
    path.write_text("".join(f"{';'.join(s)} {w}\n" for s, w in merged.most_common()))
    return path


def _clean(frame: str) -> str:
    # ';' separates frames and a trailing " N" would be read as a weight, so neither may survive in a name
    return frame.replace(";", ":").replace("\n", " ").strip() or "[unknown]"


def shares(stacks: Stacks) -> tuple[Counter[str], Counter[str], int]:
    """Self and total weight per frame name; a recursive frame counts once per stack in total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for frames, weight in stacks.items():
        own[frames[-1]] += weight
        for name in set(frames):
            total[name] += weight
    return own, total, sum(stacks.values())


def top_frames(collapsed: Path, n: int = 15) -> list[Frame]:
    own, total, whole = shares(read_collapsed(collapsed))
    if not whole:
        return []
    return [Frame(name, 100 * w / whole, 100 * total[name] / whole) for name, w in own.most_common(n)]


def summarize(collapsed: Path, *, allocations: Path | None = None, previous: Path | None = None,
              top: int = 15, unit: str = "samples") -> str:
    """Compact text for the model: hot frames by self and by total, allocation sites, change vs before."""
    stacks = read_collapsed(collapsed)
    own, total, whole = shares(stacks)
    lines = [f"CPU profile: {whole} {unit}, {len(stacks)} distinct stacks."]
    if whole:
        lines.append(f"Top {top} by self (time spent in the frame itself):")
        lines += [f"  {100 * w / whole:5.1f}% self {100 * total[f] / whole:5.1f}% total  {_short(f)}"
                  for f, w in own.most_common(top)]
        lines.append(f"Top {min(top, 10)} by total (time including callees):")
        lines += [f"  {100 * w / whole:5.1f}% total  {_short(f)}" for f, w in total.most_common(min(top, 10))]
    if allocations is not None and allocations.exists():
        lines += allocation_lines(allocations, min(top, 10))
    if previous is not None and previous.exists() and whole:
        lines += _diff(own, whole, read_collapsed(previous), min(top, 10))
    return "\n".join(lines)


def allocation_lines(allocations: Path, n: int = 10) -> list[str]:
    own, total, whole = shares(read_collapsed(allocations))
    if not whole:
        return ["Allocation profile: empty."]
    lines = [f"Allocation sites by bytes ({_bytes(whole)} in all):"]
    lines += [f"  {_bytes(w):>9} {100 * w / whole:5.1f}% self {100 * total[f] / whole:5.1f}% total  {_short(f)}"
              for f, w in own.most_common(n)]
    return lines


def _diff(own: Counter[str], whole: int, before: Stacks, n: int) -> list[str]:
    b_own, _, b_whole = shares(before)
    if not b_whole:
        return []
    change = {f: 100 * own[f] / whole - 100 * b_own[f] / b_whole for f in set(own) | set(b_own)}
    moved = sorted(change.items(), key=lambda kv: -abs(kv[1]))[:n]
    out = [f"Change in self share vs the previous profile (weight {b_whole}), percentage points:"]
    out += [f"  {d:+6.1f}  {100 * b_own[f] / b_whole:5.1f}% -> {100 * own[f] / whole:5.1f}%  {_short(f)}"
            for f, d in moved if abs(d) >= 0.5]
    return out if len(out) > 1 else out + ["  no frame moved by 0.5 points or more"]


def _short(frame: str, width: int = 140) -> str:
    return frame if len(frame) <= width else frame[: width - 3] + "..."


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
