"""Long-horizon memory: one line per attempt, rendered for the planner, and a duplicate check."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    index: int
    title: str
    files: tuple[str, ...]
    verdict: str
    reason: str
    speedup: float | None
    lesson: str

    def line(self) -> str:
        gain = f"{self.speedup:.3f}x" if self.speedup else "-"
        return f"#{self.index:03d} {self.title} [{', '.join(self.files)}] -> {self.verdict} ({self.reason}, {gain}) {self.lesson}"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def similarity(a_title: str, a_files: tuple[str, ...], b_title: str, b_files: tuple[str, ...]) -> float:
    """Jaccard similarity of title words, plus a bonus when the same files are targeted."""
    wa, wb = _words(a_title), _words(b_title)
    words = len(wa & wb) / max(1, len(wa | wb))
    files = 0.2 if set(a_files) and set(a_files) == set(b_files) else 0.0
    return words + files


class Notebook:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)

    def duplicate_of(self, title: str, files: tuple[str, ...], threshold: float = 0.75) -> Entry | None:
        """A rejected earlier attempt this strategy repeats, if any."""
        for e in self.entries:
            if e.verdict != "accepted" and similarity(title, files, e.title, e.files) >= threshold:
                return e
        return None

    def render(self, limit: int = 60) -> str:
        if not self.entries:
            return "(no attempts yet)"
        lines = [e.line() for e in self.entries[-limit:]]
        skipped = len(self.entries) - len(lines)
        return (f"({skipped} earlier attempts omitted)\n" if skipped else "") + "\n".join(lines)
