"""The state of one run, its meters and budgets, and its lifecycle (state rebuilt on resume, one teardown).

The steps that change the state each live in a module named for them, in the order agent/loop.py calls
them: baseline.py (baseline and A/A calibration), planning.py, attempts.py (lanes and one attempt),
evaluation.py (verify, re-verify after a restack, keep or drop), hotspots.py (profiling the best),
confirm.py (best vs baseline, reference). Each records what it does in the run store before moving on,
so a run killed at any point can be resumed from its events.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent import lease, verify
from agent.config import TargetSpec
from agent.executor import Executor, open_executor
from agent.llm import Model, Reply
from agent.notebook import Entry, Notebook
from agent.options import Options
from agent.planner import Strategy
from agent.records import (
    AttemptStarted,
    BaselineEvent,
    EvaluationStarted,
    FinishEvent,
    IterationEvent,
    Manifest,
    NoteEvent,
    PlanEvent,
    RunStore,
)
from agent.ui import Progress
from agent.verify import Arm
from tools import gitops, sh, stats

Clock = tuple[float, float, float, float]  # monotonic time, command seconds, model seconds, lease-wait seconds


class Stop(Exception):
    """Ends the run (or the current attempt) for a stated reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BaselineError(Exception):
    """The target cannot be measured as it is: a user problem (exit 2), reported with the output tail."""


@dataclass
class Session:
    spec: TargetSpec
    store: RunStore
    manifest: Manifest
    model: Model
    repo: Path
    options: Options
    ui: Progress
    started: float = field(default_factory=time.monotonic)
    spent: float = 0.0  # seconds used before a resume
    resumed_baseline: bool = False
    model_seconds: float = 0.0  # waiting on the model, for the harness-overhead accounting
    interrupted: bool = False
    base: Arm | None = None
    best: Arm | None = None
    baseline_value: float = 0.0
    best_value: float = 0.0
    gain: float = 1.0  # the product of the accepted steps' verified speedups: "best so far", as the verdicts said
    min_effect: float = 0.0
    noise: float = 0.0
    expected: list[str] = field(default_factory=list)
    notebook: Notebook = field(default_factory=Notebook)
    iteration: int = 0
    plan_round: int = 0
    queue: list[Strategy] = field(default_factory=list)
    llm_position: int = 0
    tool_calls: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0, "cached": 0})
    profile_text: str = "(no profile yet)"
    profile_dir: Path | None = None
    seconds_per_pair: float = 1.0
    # Lanes share this session: `lock` guards counters and attempt numbers (held briefly), `decide`
    # the choice of the best (held through a re-verification, so the best cannot move under it).
    lock: threading.Lock = field(default_factory=threading.Lock)
    decide: threading.Lock = field(default_factory=threading.Lock)
    retired: list[Path] = field(default_factory=list)  # former bests' worktrees, removed once no lane uses them
    pending: list[tuple[AttemptStarted, EvaluationStarted]] = field(default_factory=list)  # cut off by a kill
    executor: Executor | None = None  # local, or Ray benchmark hosts (opened by open_executor)
    model_errors: int = 0  # model-error attempts in a row (no usable plan or tool call)
    tokens_counted: str = ""  # "" when the server reported usage, else how we counted ("tokenizer", "estimate")
    _calls: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        lease.owner = self.manifest.run_id  # named to any other run that waits for us
        lease.on_wait = lambda text: self.ui.log(text, warn=True)

    # --- names, records --------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def prefix(self) -> str:
        return f"optimize/{self.run_id}/"

    def worktree(self, name: str) -> Path:
        return self.repo / ".git" / "nightshift" / self.run_id / name

    def metric_text(self) -> str:
        m = self.spec.bench.metric
        return f"{m.unit}, {m.better} is better" if m else "wall time of the benchmark (s), lower is better"

    def fmt(self, value: float) -> str:
        return f"{value:.4g} {self.spec.bench.unit}"

    def speedup_so_far(self) -> float:
        """The verified steps multiplied: each was measured side by side against the best before it, so
        this is what the verdicts said, not a ratio of values measured at different times under other load."""
        return self.gain

    def note(self, text: str, level: str = "info") -> None:
        self.store.append(NoteEvent(text=text, level=level))
        self.ui.log(text, warn=level == "warning")

    def save_manifest(self, **summary: object) -> None:
        self.manifest.summary.update(summary, elapsed_s=self.spent + self.elapsed())
        self.store.write_manifest(self.manifest)

    def turn(self) -> contextlib.AbstractContextManager[None]:
        """Held around each attempt and the confirmation; an arm of a comparison waits here for its turn."""
        return contextlib.nullcontext()

    # --- meters and budgets ------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self, *, reserve: bool = False) -> None:
        """Raise Stop when a signal arrived or a budget is spent; called before every model call."""
        if self.interrupted:
            raise Stop("interrupted")
        left = self.options.hours * 3600 - self.spent - self.elapsed()
        if left <= (self.reserve_seconds() if reserve else 0):
            raise Stop("deadline")
        if self.options.max_tokens and self.tokens["prompt"] + self.tokens["completion"] >= self.options.max_tokens:
            raise Stop("token budget spent")
        if self.options.max_total_tool_calls and self.tool_calls >= self.options.max_total_tool_calls:
            raise Stop("tool-call budget spent")

    def reserve_seconds(self) -> float:
        """Kept free before the deadline when starting a step: a full verification and the confirmation."""
        d = self.spec.decide
        longest = stats.family(d.looks, verify.extra_looks(self.spec, list(d.looks)))[-1]
        return (d.confirm_pairs + longest) * self.seconds_per_pair * 1.5

    def before_model_call(self) -> None:
        self.check()
        self._calls.started = time.monotonic()  # per lane: several calls may be in flight

    def count(self, reply: Reply) -> None:
        with self.lock:
            self.model_seconds += time.monotonic() - getattr(self._calls, "started", time.monotonic())
            self.llm_position += 1
            self.tokens["prompt"] += reply.usage.prompt_tokens
            self.tokens["completion"] += reply.usage.completion_tokens
            self.tokens["cached"] += reply.usage.cached_tokens
            if reply.usage.counted and self.tokens_counted != "estimate":
                self.tokens_counted = self.manifest.summary["tokens_counted"] = reply.usage.counted

    def count_rejection(self) -> None:
        with self.lock:
            self.llm_position += 1  # a refused request is a recorded exchange too (llm.jsonl "rejected")

    def pause_after_model_errors(self) -> None:
        """After two or more model errors in a row, wait before asking again (a server that is loading,
        swapping or overloaded often recovers), doubling up to 5 min; the run keeps going until its budget."""
        n = self.model_errors
        if n < 2 or self.options.error_backoff_s <= 0:
            return
        delay = min(self.options.error_backoff_s * 2 ** (n - 2), 300.0)
        self.note(f"the model gave {n} unusable answers in a row; carrying on until the budget, "
                  f"next try in {delay:.0f} s", "warning")
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            self.check()  # a signal or the deadline ends the wait
            time.sleep(min(0.5, left))

    def clock(self) -> Clock:
        return (time.monotonic(), sh.SPENT["seconds"], self.model_seconds, lease.waited_s())

    def timing(self, clock: Clock) -> dict[str, float]:
        """Where an iteration's wall time went: target commands, the model, waiting for the host lease (another
        lane's or another run's measurement), and the harness itself."""
        wall = time.monotonic() - clock[0]
        commands, model = sh.SPENT["seconds"] - clock[1], self.model_seconds - clock[2]
        wait = lease.waited_s() - clock[3]
        return {"wall_s": wall, "commands_s": commands, "model_s": model, "wait_s": wait,
                "harness_s": max(0.0, wall - commands - model - wait)}

    # --- lifecycle ---------------------------------------------------------------------------------

    def open_executor(self) -> None:
        """Local, or connects to the Ray cluster for `--executor ray`; ExecutorError says what is missing."""
        self.executor = open_executor(self.options.executor, self.repo, self.spec, self.options.ray_address)

    def close_executor(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None

    def cleanup(self) -> None:
        root = self.worktree("")
        for wt in sorted(root.glob("*")) if root.exists() else []:
            gitops.remove_worktree(self.repo, wt)
        with contextlib.suppress(OSError):
            root.rmdir()
            root.parent.rmdir()

    def close(self, status: str, reason: str, *, final: bool = False) -> None:
        """The one way out of a run: worktrees and executor gone, run.json with its final status, the lock
        released. `final`: the loop ended on its own (finished or interrupted), so the record also gets its
        finish event and its report."""
        for step in (self.cleanup, self.close_executor):
            with contextlib.suppress(Exception):  # the record matters more than a tidy-up that failed
                step()
        self.manifest.status, self.manifest.stop_reason = status, reason  # type: ignore[assignment]
        if final:
            self.save_manifest(tokens=self.tokens, tool_calls=self.tool_calls,
                               hours=(self.spent + self.elapsed()) / 3600)
            self.store.append(FinishEvent(status=status, stop_reason=reason))  # type: ignore[arg-type]
            from agent.report import write_report  # the page, not the run, needs jinja

            try:
                write_report(self.store)
            except Exception as e:  # the record is complete without it; `optimize report` can retry
                self.note(f"could not write report.html: {e}", "warning")
        else:
            with contextlib.suppress(Exception):
                self.save_manifest(tokens=self.tokens, tool_calls=self.tool_calls)
        self.store.unlock()


def restore(s: Session, events: list, llm_position: int) -> list[IterationEvent] | None:
    """The state a killed run had reached, from its events and run.json: counters, notebook, plan queue,
    the baseline's figures, the best's profile, evaluations left unfinished. Returns the accepted iterations (whose last
    commit is the best to rebuild), or None when the baseline was never recorded (the loop measures it)."""
    m = s.manifest
    s.spent = float(m.summary.get("elapsed_s", 0.0))
    baseline = next((e for e in events if isinstance(e, BaselineEvent)), None)
    if baseline is None:
        return None
    s.resumed_baseline = True
    s.baseline_value, s.noise, s.min_effect, s.expected = (baseline.value, baseline.noise_floor,
                                                            baseline.min_effect, baseline.output_lines)
    iterations = [e for e in events if isinstance(e, IterationEvent)]
    for e in iterations:
        s.notebook.add(Entry(e.index, e.strategy.get("title", ""), tuple(e.strategy.get("files", [])), e.verdict,
                             e.reason, e.speedup, e.detail.splitlines()[0][:160] if e.detail else ""))
    decided = {e.index for e in iterations}
    started = {e.index: e for e in events if isinstance(e, AttemptStarted)}
    evaluations = {e.index: e for e in events if isinstance(e, EvaluationStarted) and e.index not in decided}
    s.pending = [(started[i], ev) for i, ev in sorted(evaluations.items()) if i in started]
    s.iteration = max([*decided, *evaluations], default=0)
    accepted = [e for e in iterations if e.verdict == "accepted"]
    s.best_value = accepted[-1].value if accepted and accepted[-1].value else s.baseline_value
    s.gain = math.prod(e.speedup or 1.0 for e in accepted)
    plans = [e for e in events if isinstance(e, PlanEvent)]
    s.plan_round = len(plans)
    if plans:
        # by title, not count: with lanes, attempts finish out of order
        done_since = {e.strategy.get("title") for e in iterations if e.time > plans[-1].time}
        done_since |= {a.strategy.get("title") for a, _ in s.pending}
        s.queue = [Strategy(**d) for d in plans[-1].strategies if d.get("title") not in done_since]
    s.llm_position, s.tool_calls = llm_position, int(m.summary.get("tool_calls", 0))
    s.tokens.update(m.summary.get("tokens", {}))
    s.tokens_counted = str(m.summary.get("tokens_counted", ""))
    _latest_profile(s, [baseline.profile, *(e.profile for e in accepted)])
    return accepted


def _latest_profile(s: Session, profiles: list[dict | None]) -> None:
    """The profile of the current best (the last accepted change's, else the baseline's) is what the
    next plan sees, as in the run before the restart."""
    for profile in reversed(profiles):
        files = [(profile or {}).get(k) for k in ("collapsed", "flamegraph", "allocations")]
        for folder in {(s.store.path / f).parent for f in files if f}:
            if (folder / "summary.txt").is_file():
                s.profile_text = (folder / "summary.txt").read_text().strip() or s.profile_text
                s.profile_dir = folder if (profile or {}).get("collapsed") else s.profile_dir
                return
