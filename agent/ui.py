"""What a person watching the run sees: one line per event, with elapsed time and the best so far."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

VERDICT_STYLE = {"accepted": "bold green", "rejected": "yellow", "error": "red"}


class Progress:
    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.started = time.monotonic()
        self.current = ""
        self.lanes: dict[int, str] = {}  # attempt in flight -> what it is doing, for the lanes line
        self._lock = threading.Lock()  # lanes report from their own threads

    def _print(self, text: str) -> None:
        if not self.quiet:
            m, s = divmod(int(time.monotonic() - self.started), 60)
            h, m = divmod(m, 60)
            self.console.print(f"[dim]{h:02d}:{m:02d}:{s:02d}[/dim] {text}")

    def phase(self, name: str, who: str | None = None, index: int | None = None) -> None:
        """`who`/`index`: the attempt it is about, when several lanes run at once."""
        who = self.current if who is None else escape(who)
        self._print(f"[cyan]{name}[/cyan]{' · ' + who if who else ''}")
        if index is not None:
            self._lane(index, name)

    def _lane(self, index: int, state: str | None) -> None:
        """One line with every lane in flight, whenever one of them moves on (only with several)."""
        with self._lock:
            if state is None:
                self.lanes.pop(index, None)
            else:
                self.lanes[index] = state
            if len(self.lanes) > 1:
                self._print("[dim]lanes:[/dim] " + " · ".join(f"#{i:03d} {s}" for i, s in sorted(self.lanes.items())))

    def log(self, text: str, warn: bool = False) -> None:
        self._print(f"[yellow]warning:[/yellow] {escape(text)}" if warn else escape(text))

    def attempt(self, index: int, title: str) -> None:
        self.current = escape(f"#{index:03d} {title}")
        self._print(f"[bold]attempt #{index:03d}[/bold]: {escape(title)}")
        self._lane(index, "working with the model")

    def step(self, tool: str) -> None:
        pass  # one line per tool call would drown the log; the record has them all

    def verdict(self, index: int, title: str, outcome, logs: Path) -> None:
        gain = f" {outcome.speedup:.3f}x [{outcome.ci[0]:.3f}, {outcome.ci[1]:.3f}]" if outcome.ci else ""
        style = VERDICT_STYLE.get(outcome.verdict, "")
        first = escape(outcome.detail.splitlines()[0][:100]) if outcome.detail else ""
        self._print(f"[{style}]#{index:03d} {outcome.verdict}[/{style}] ({outcome.reason}){gain} {escape(title)}"
                    + (f" — {first}" if outcome.verdict != "accepted" and first else ""))
        for flag in outcome.flags:
            self._print(f"  [red]flag:[/red] {escape(flag)}")
        self.current = ""
        self._lane(index, None)

    def best(self, value: float, speedup: float) -> None:
        self._print(f"best so far: {speedup:.2f}x the baseline (the verified steps multiplied; last measured {value:.4g})")
