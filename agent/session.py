"""The state of one run and its steps: baseline, plan, attempt, confirm, finish.

`agent/loop.py` strings these together; everything here records what it does in the run store
before moving on, so a run killed at any point can be resumed from its events.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent import lease, prompts, verify
from agent.attempt import converse
from agent.config import TargetSpec
from agent.executor import Executor, ExecutorError, evaluation_key, open_executor
from agent.llm import Cancelled, Model, Reply, RequestRejected
from agent.notebook import Entry, Notebook
from agent.planner import PlanFailed, Strategy, plan
from agent.records import (
    AttemptStarted,
    BaselineEvent,
    ConfirmEvent,
    EvaluationStarted,
    IterationEvent,
    Manifest,
    NoteEvent,
    PlanEvent,
    RunStore,
)
from agent.target import Target, failure, new_seed, with_seed
from agent.toolbox import Toolbox
from agent.ui import Progress
from agent.verify import Arm, Outcome
from tools import gitops, sh, stats
from tools.bench import SampleError, metric_value

Clock = tuple[float, float, float, float]  # monotonic time, command seconds, model seconds, lease-wait seconds


class Stop(Exception):
    """Ends the run (or the current attempt) for a stated reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BaselineError(Exception):
    """The target cannot be measured as it is: a user problem (exit 2), reported with the output tail."""


@dataclass
class Options:
    iterations: int = 12
    hours: float = 12.0
    strategies: int = 6
    max_tool_calls: int = 60  # per attempt
    max_total_tool_calls: int | None = None
    max_tokens: int | None = None
    profile: bool = True
    context_limit: int = 160_000  # tokens; compaction starts above this (Kimi K2.6 has 262,144)
    widen_after: int = 4  # attempts without a win before the planner is told to think wider
    lanes: int = 1  # attempts in flight at once, each with its own worktree and conversation
    executor: str = "local"  # "local", or "ray": verification on Ray benchmark hosts (docs/ray.md)
    ray_address: str | None = None
    endpoint_patience_s: float = 1800.0  # an endpoint outage after start-up is waited out this long
    endpoint_backoff_s: float = 60.0  # longest wait between two tries of an endpoint that is down
    reply_tokens: int = 32768  # completion budget of one model reply (reasoning and answer share it)
    error_backoff_s: float = 10.0  # first pause after repeated model errors; doubles, capped at 5 min
    repair: bool = True  # repair a baseline that does not build or pass its tests first (agent/repair.py)
    repair_tool_calls: int = 40  # the repair phase's own budgets
    repair_minutes: float = 45.0

    @classmethod
    def from_record(cls, recorded: dict) -> Options:
        """The options a run recorded in its manifest (which also holds keys that are not options)."""
        return cls(**{k: v for k, v in recorded.items() if k in cls.__dataclass_fields__})


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

    # --- helpers -------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def prefix(self) -> str:
        return f"optimize/{self.run_id}/"

    def worktree(self, name: str) -> Path:
        return self.repo / ".git" / "nightshift" / self.run_id / name

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

    def metric_text(self) -> str:
        m = self.spec.bench.metric
        return f"{m.unit}, {m.better} is better" if m else "wall time of the benchmark (s), lower is better"

    def fmt(self, value: float) -> str:
        return f"{value:.4g} {self.spec.bench.unit}"

    def note(self, text: str, level: str = "info") -> None:
        self.store.append(NoteEvent(text=text, level=level))
        self.ui.log(text, warn=level == "warning")

    def save_manifest(self, **summary: object) -> None:
        self.manifest.summary.update(summary, elapsed_s=self.spent + self.elapsed())
        self.store.write_manifest(self.manifest)

    # --- baseline --------------------------------------------------------------------------------

    def baseline(self) -> None:
        self.ui.phase("baseline")
        commit = self.manifest.base_commit
        self.base = Arm(commit, gitops.add_worktree(self.repo, self.worktree("base"), commit))
        target = Target(self.spec, self.base.worktree)
        build = target.build()
        if build is not None and failure(build, "build-failed"):
            raise BaselineError(f"the build fails on the unmodified code ({self.spec.build.cmd}):\n{build.tail()}")
        tests, inventory = target.test_run()
        if failure(tests, "tests-failed"):
            raise BaselineError(f"the tests fail on the unmodified code ({self.spec.test.cmd})"
                                + verify.failing_tests(tests, inventory))
        gate, weak = verify.gate_summary(self.spec, tests, inventory)  # loud when the runner reports no tests
        self.save_manifest(test_gate=gate)
        if weak:
            self.note(weak, "warning")
        held, shaky = verify.holdout_baseline(self.spec, self.base)
        if held:
            raise BaselineError(held)
        if shaky:
            self.note(shaky, "warning")
        bench = target.bench()
        if failure(bench, "crashed"):
            raise BaselineError(f"the benchmark fails on the unmodified code ({self.spec.bench.cmd}):\n{bench.tail()}")
        if self.spec.bench.metric:
            try:
                metric_value(bench.output, self.spec.bench.metric)
            except ValueError as e:
                raise BaselineError(f"the benchmark's output has no metric: {e}\n--- output tail ---\n{bench.tail()}") from e
        self.expected = verify.expected_lines(self.spec, bench.output)
        self.ui.phase("calibrating noise (A/A)")
        started = time.monotonic()
        # A/A (issue 17): the noise goes into each verdict's interval, not into the threshold; this run
        # checks for bias between identical arms, plans the pairs and warns when wins cannot be verified.
        d, min_effect = self.spec.decide, self.spec.decide.min_effect
        aa = verify.measure(self.spec, self.base, self.base, looks=[d.calibration_pairs], extra=[], min_effect=0.0)
        self.seconds_per_pair = (time.monotonic() - started) / max(1, aa.decision.pairs)
        cal = verify.calibration(self.spec, aa, min_effect)
        if cal.biased:  # once more on fresh pairs before refusing: a burst of load can fake a bias
            aa = verify.measure(self.spec, self.base, self.base, looks=[d.calibration_pairs], extra=[], min_effect=0.0)
            cal = verify.calibration(self.spec, aa, min_effect)
            if cal.biased:
                raise BaselineError(
                    f"the unmodified code measured against itself differs: {cal.speedup:.3f}x [{cal.ci[0]:.3f}, "
                    f"{cal.ci[1]:.3f}] twice (A/A, {aa.decision.statistic}); the first or second run of a pair is "
                    "systematically faster (a warm-up, a cache, a file the benchmark leaves behind), so no verdict "
                    "here could be trusted. Make the benchmark start from the same state every run.")
        self.noise, self.min_effect = cal.noise_floor, min_effect
        self.baseline_value = self.best_value = aa.mean("a")
        self.best = self.base
        budget = stats.family(d.looks, verify.extra_looks(self.spec, list(d.looks)))[-1]
        need = f"about {cal.pairs_needed} pairs" if cal.pairs_needed <= budget else f"more than {budget} pairs"
        self.note(f"A/A on this machine ({aa.decision.statistic}): {cal.speedup:.3f}x [{cal.ci[0]:.3f}, {cal.ci[1]:.3f}], "
                  f"±{cal.sd:.1%} per pair; a +{2 * min_effect:.0%} win needs {need}; accepting wins whose whole "
                  f"interval is above +{min_effect:.1%}")
        if cal.smallest_win > max(2 * min_effect, 0.05):
            self.note(f"this machine is too noisy to verify wins below about +{cal.smallest_win:.0%} within {budget} "
                      "pairs; smaller real wins will be rejected as not significant", "warning")
        profile = self.profile(0)
        self.store.append(BaselineEvent(
            commit=commit, value=self.baseline_value, unit=self.spec.bench.unit,
            better=self.spec.bench.better, noise_floor=self.noise,
            min_effect=self.min_effect, output_lines=self.expected, profile=profile))
        gitops.set_branch(self.repo, self.prefix + "best", commit)
        self.save_manifest(baseline_value=self.baseline_value, noise_floor=self.noise, min_effect=self.min_effect)
        self.ui.best(self.baseline_value, 1.0)

    def profile(self, index: int) -> dict | None:
        if not self.options.profile or self.spec.profile.kind == "none" or self.best is None:
            return None
        from tools.profile import profile_target

        out = self.store.iteration_dir(index) / "profile"
        self.ui.phase("profiling")
        cmd = with_seed(self.spec.profile.cmd or self.spec.bench.cmd, new_seed())
        with lease.shared("a profile"):
            result = profile_target(self.spec.profile.kind, cmd, self.best.worktree, out,
                                    timeout=self.spec.profile.timeout, previous=self.profile_dir)
        for w in result.warnings:
            self.note(f"profiler: {w}", "warning")
        if result.collapsed:
            self.profile_dir = result.collapsed.parent
        self.profile_text = result.summary or self.profile_text
        return {"profiler": result.profiler, "flamegraph": _rel(result.flamegraph, self.store.path),
                "collapsed": _rel(result.collapsed, self.store.path), "allocations": _rel(result.allocations, self.store.path)}

    # --- plan -----------------------------------------------------------------------------------

    def context(self) -> dict[str, str]:
        files = gitops.tracked_files(self.best.worktree)
        shown = "\n".join(files[:300]) + (f"\n(... {len(files) - 300} more)" if len(files) > 300 else "")
        speedup = self.speedup_so_far()
        return {"target": self.spec.name, "metric": self.metric_text(), "files": shown,
                "best": f"{self.fmt(self.best_value)} ({speedup:.2f}x the baseline)",
                "protected": ", ".join(self.spec.guard.protected), "profile": self.profile_text,
                "notebook": self.notebook.render()}

    def speedup_so_far(self) -> float:
        """The verified steps multiplied: each was measured side by side against the best before it, so
        this is what the verdicts said, not a ratio of values measured at different times under other load."""
        return self.gain

    def plan(self) -> None:
        self.ui.phase("planning")
        self.plan_round += 1
        request = prompts.PLAN.format(k=self.options.strategies, **self.context())
        dry = len(self.notebook.entries) - max((i + 1 for i, e in enumerate(self.notebook.entries)
                                                 if e.verdict == "accepted"), default=0)
        if dry >= self.options.widen_after:
            request += prompts.WIDER.format(n=dry)
        while True:  # a model that gives no usable plan costs an attempt each time, until the budget
            self.check(reserve=True)
            self.pause_after_model_errors()
            try:
                result = plan(self.model, prompts.SYSTEM, request, before_call=self.before_model_call,
                              on_reply=self.count)
                break
            except (PlanFailed, RequestRejected) as e:
                self.planning_failed(e)
            except Cancelled:
                raise Stop("interrupted") from None
        fresh = []
        for s in result.strategies[: self.options.strategies]:
            if dup := self.notebook.duplicate_of(s.title, tuple(s.files)):
                self.note(f"skipping '{s.title}': repeats rejected attempt #{dup.index:03d}")
            else:
                fresh.append(s)
        self.queue = fresh
        self.store.append(PlanEvent(round=self.plan_round, strategies=[s.model_dump() for s in fresh],
                                    llm_position=self.llm_position))
        self.ui.log(f"plan #{self.plan_round}: " + "; ".join(s.title for s in fresh))

    # --- attempt, verify, keep or drop ------------------------------------------------------------

    def attempts(self, strategies: list[Strategy]) -> None:
        """One attempt per strategy, each in its own lane; returns when all are decided. A lane that
        raises (interrupt, replay end) lets the others finish first, then the first error is raised."""
        try:
            if len(strategies) == 1:
                return self.attempt(strategies[0])
            with ThreadPoolExecutor(len(strategies), thread_name_prefix="lane") as lanes:
                futures = [lanes.submit(self.attempt, strategy) for strategy in strategies]
                errors = [f.exception() for f in futures]
            for error in errors:
                if error is not None:
                    raise error
        finally:
            while self.retired:
                gitops.remove_worktree(self.repo, self.retired.pop())

    def attempt(self, strategy: Strategy) -> None:
        with self.lock:
            self.check(reserve=True)
            self.iteration += 1
            index, best = self.iteration, self.best
            branch = f"{self.prefix}iter-{index:03d}-{_slug(strategy.title)}"
            wt = gitops.add_worktree(self.repo, self.worktree(f"iter-{index:03d}"), best.commit, branch)
            self.store.append(AttemptStarted(index=index, strategy=strategy.model_dump(), branch=branch,
                                             base_commit=best.commit, llm_position=self.llm_position))
        self.ui.attempt(index, strategy.title)
        clock = self.clock()
        toolbox = Toolbox(Target(self.spec, wt), self.spec.guard.protected, lambda: self.profile_text, self.metric_line)
        brief = prompts.ATTEMPT.format(index=index, title=strategy.title, hypothesis=strategy.hypothesis,
                                       strategy_files=", ".join(strategy.files), budget=self.options.max_tool_calls, **self.context())
        rejected: RequestRejected | None = None
        try:
            self.pause_after_model_errors()
            talk = converse(self.model, toolbox, prompts.SYSTEM, brief, tag=f"attempt-{index:03d}",
                            max_tool_calls=self.options.max_tool_calls, before_call=self.before_model_call, on_reply=self.count,
                            on_tool=lambda name, out: self.ui.step(name), context_limit=self.options.context_limit)
        except (Stop, Cancelled) as stop:
            if isinstance(stop, Cancelled) or stop.reason == "interrupted":
                gitops.remove_worktree(self.repo, wt)  # half-finished: resume redoes it cleanly
                raise Stop("interrupted") from None
            talk = None  # a budget ran out mid-attempt: close it and record it
        except RequestRejected as e:
            talk, rejected = None, e
        with self.lock:
            self.tool_calls += talk.tool_calls if talk else 0
        commit = gitops.commit_all(wt, f"iter-{index:03d}: {strategy.title}") or best.commit
        early = None
        if talk is None and rejected is not None:
            self.count_rejection()
            early = Outcome("error", "model-error", f"the endpoint rejected a request of this attempt: {rejected.detail}")
        elif talk is None:
            early = Outcome("rejected", "budget", "the run's budget ran out during this attempt")
        elif talk.ended == "give_up" and commit == best.commit:
            early = Outcome("rejected", "model-gave-up", talk.message)
        elif talk.ended == "stalled" and commit == best.commit:
            early = Outcome("error", "model-error", f"no usable tool call: {talk.message or 'the model stalled'}")
        self.evaluate(index, strategy, branch, best, Arm(commit, wt), toolbox.protected_attempts,
                      talk.message if talk else "", talk.tool_calls if talk else 0, clock, early)

    def evaluate(self, index: int, strategy: Strategy, branch: str, best: Arm, cand: Arm, protected: list[str],
                 summary: str, tool_calls: int, clock: Clock, early: Outcome | None = None) -> None:
        """Verify a committed candidate (unless `early` already decided it) and keep or drop it."""
        logs = self.store.iteration_dir(index)
        outcome = early
        if outcome is None:
            key = evaluation_key(self.spec, best.commit, cand.commit, self.min_effect)
            self.store.append(EvaluationStarted(index=index, key=key, base_commit=best.commit, commit=cand.commit,
                                                protected_attempts=protected, summary=summary, tool_calls=tool_calls))
            self.ui.phase("verifying", f"#{index:03d} {strategy.title}", index)
            outcome = self.verify(best, cand, protected, logs)
        with self.decide:
            if outcome.verdict == "accepted" and best.commit != self.best.commit:
                best, outcome = self.restack(index, best, cand, outcome, protected, logs)
            self.keep_or_drop(index, strategy, branch, best, cand, outcome, summary, tool_calls, clock)

    def resume_evaluation(self, started: AttemptStarted, ev: EvaluationStarted) -> None:
        """An evaluation the killed process never finished: the same commit verified again, on the
        current best (rebased onto it first if the best moved: `superseded` if it no longer applies)."""
        strategy = Strategy(**started.strategy)
        wt = gitops.add_worktree(self.repo, self.worktree(f"iter-{ev.index:03d}"), ev.commit, started.branch)
        self.ui.attempt(ev.index, f"{strategy.title} (evaluation resumed)")
        clock = self.clock()
        if ev.base_commit != self.best.commit:
            new = gitops.rebase(wt, onto=self.best.commit, upstream=ev.base_commit)
            if new is None:
                outcome = Outcome("rejected", "superseded", "resumed after a restart: the change conflicts with "
                                  "the best that other attempts reached meanwhile")
                base = Arm(ev.base_commit, self.best.worktree)  # what it was written against, for its diff
                return self.evaluate(ev.index, strategy, started.branch, base, Arm(ev.commit, wt),
                                     ev.protected_attempts, ev.summary, ev.tool_calls, clock, outcome)
            ev = ev.model_copy(update={"commit": new})
        self.evaluate(ev.index, strategy, started.branch, self.best, Arm(ev.commit, wt), ev.protected_attempts,
                      ev.summary, ev.tool_calls, clock)

    def finish_pending(self) -> None:
        while self.pending:
            self.resume_evaluation(*self.pending.pop(0))

    def verify(self, best: Arm, cand: Arm, protected_attempts: list[str], logs: Path) -> Outcome:
        if self.executor is None:
            self.open_executor()
        try:
            return self.executor.verify(best, cand, min_effect=self.min_effect, expected=self.expected,
                                        protected_attempts=protected_attempts, logs=logs, reference=self.base)
        except ExecutorError as e:
            self.note(f"remote evaluation failed: {e}", "warning")
            return Outcome("error", "crashed", f"the executor could not finish this evaluation: {e}")

    def restack(self, index: int, base: Arm, cand: Arm, won: Outcome, protected_attempts: list[str],
                logs: Path) -> tuple[Arm, Outcome]:
        """Another lane's win landed while this one was being verified: replay this change on the new
        best and verify it again there (holding the lock, so the best cannot move meanwhile)."""
        first = f"won {won.speedup:.3f}x against {base.commit[:10]}, which another lane has since improved"
        new = gitops.rebase(cand.worktree, onto=self.best.commit, upstream=base.commit)
        if new is None:
            return base, Outcome("rejected", "superseded", f"{first}; the change conflicts with the new best",
                                      won.speedup, won.ci, won.pairs, won.value, won.flags, won.samples)
        cand.commit = new
        self.ui.phase("verifying again on the new best", f"#{index:03d}", index)
        again = self.verify(self.best, cand, protected_attempts, logs)
        if again.verdict == "accepted":
            again.detail = f"{again.detail}\n{first}; verified again on top of it"
        else:
            again.verdict, again.reason, again.detail = ("rejected", "superseded",
                                                         f"{first}; on top of it: {again.reason} {again.detail}")
        return self.best, again

    def metric_line(self, output: str) -> str:
        if not self.spec.bench.metric:
            return "metric: wall time"
        try:
            return f"metric: {metric_value(output, self.spec.bench.metric):g} {self.spec.bench.metric.unit}"
        except ValueError as e:
            return f"metric: not found ({e})"

    def keep_or_drop(self, index: int, strategy: Strategy, branch: str, best: Arm, cand: Arm, o: Outcome,
                     summary: str, tool_calls: int, clock: Clock) -> None:
        gain = f"{o.speedup:.3f}x" if o.speedup else "n/a"
        if cand.commit != best.commit:
            cand.commit = gitops.amend_message(cand.worktree, f"iter-{index:03d}: {strategy.title}\n\n"
                                               f"verdict: {o.verdict} ({o.reason}), speedup {gain}\n\n{summary}".strip())
        logs = self.store.iteration_dir(index)
        self.store.write_text(index, "diff.patch", gitops.diff_text(self.repo, best.commit, cand.commit))
        self.store.write_json(index, "samples.json", o.samples)
        self.store.write_text(index, "verdict.txt", f"{o.verdict} ({o.reason})\n{o.detail}\n")
        profile = None
        if o.verdict == "accepted":
            old = self.best
            self.best, self.best_value = cand, o.value or self.best_value
            self.gain *= o.speedup or 1.0
            gitops.set_branch(self.repo, self.prefix + "best", cand.commit)
            if old is not self.base:
                self.retired.append(old.worktree)  # another lane may still be measuring against it
            profile = self.profile(index)
        else:
            gitops.remove_worktree(self.repo, cand.worktree)
        self.notebook.add(Entry(index, strategy.title, tuple(strategy.files), o.verdict, o.reason, o.speedup,
                                o.detail.splitlines()[0][:160] if o.detail else ""))
        with self.lock:
            self.model_errors = self.model_errors + 1 if o.reason == "model-error" else 0
        self.store.append(IterationEvent(
            index=index, strategy=strategy.model_dump(), branch=branch, commit=cand.commit, base_commit=best.commit,
            verdict=o.verdict, reason=o.reason, detail=o.detail[-4000:], speedup=o.speedup, ci=o.ci, pairs=o.pairs,
            value=o.value, flags=o.flags, summary=summary, tool_calls=tool_calls, llm_position=self.llm_position,
            profile=profile, timing=self.timing(clock), host=o.host))
        self.save_manifest(iterations=index, accepted=sum(e.verdict == "accepted" for e in self.notebook.entries),
                           best_value=self.best_value, tool_calls=self.tool_calls, tokens=self.tokens,
                           llm_position=self.llm_position)
        self.ui.verdict(index, strategy.title, o, logs)
        if o.verdict == "accepted":
            self.ui.best(self.best_value, self.speedup_so_far())

    # --- a model that gives nothing usable -----------------------------------------------------------

    def planning_failed(self, error: Exception) -> None:
        """No usable plan: recorded as a model-error attempt (it costs one of the iteration budget), and
        as an empty plan, so a resume keeps the replies and a replay meets the same failure."""
        if isinstance(error, RequestRejected):
            self.count_rejection()
        detail = str(error.detail if isinstance(error, RequestRejected) else error)
        with self.lock:
            self.iteration += 1
            index = self.iteration
        self.plan_round += 1
        self.store.append(PlanEvent(round=self.plan_round, strategies=[], llm_position=self.llm_position))
        strategy = Strategy(title=f"plan #{self.plan_round}: no usable plan")
        o = Outcome("error", "model-error", f"planning failed: {detail}")
        self.store.write_text(index, "verdict.txt", f"{o.verdict} ({o.reason})\n{o.detail}\n")
        self.notebook.add(Entry(index, strategy.title, (), o.verdict, o.reason, None, o.detail[:160]))
        with self.lock:
            self.model_errors += 1
        self.store.append(IterationEvent(
            index=index, strategy=strategy.model_dump(), branch="", commit=self.best.commit,
            base_commit=self.best.commit, verdict=o.verdict, reason=o.reason, detail=o.detail[-4000:],
            llm_position=self.llm_position))
        self.save_manifest(iterations=index, tool_calls=self.tool_calls, tokens=self.tokens,
                           llm_position=self.llm_position)
        self.ui.verdict(index, strategy.title, o, self.store.iteration_dir(index))
        if self.iteration >= self.options.iterations:
            raise Stop("iteration budget spent")

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

    # --- finish -----------------------------------------------------------------------------------

    def confirm(self) -> None:
        """Best against the original baseline with a longer schedule: the headline number."""
        if self.best is None or self.base is None or self.best.commit == self.base.commit:
            return
        self.ui.phase("confirming best vs baseline")
        n = self.spec.decide.confirm_pairs
        try:
            m = verify.measure(self.spec, self.base, self.best, looks=[n], min_effect=self.min_effect)
        except (SampleError, verify.OutputMismatch) as e:
            self.note(f"confirmation failed: {e}", "warning")
            return
        d = m.decision
        reference = self.reference()
        self.store.append(ConfirmEvent(best_commit=self.best.commit, speedup=d.speedup, ci=d.ci, pairs=d.pairs,
                                       verdict=d.verdict, baseline_value=m.mean("a"), best_value=m.mean("b"),
                                       reference=reference))
        self.save_manifest(speedup=d.speedup, ci=list(d.ci), confirmed=d.verdict == "better", reference=reference)
        if d.verdict != "better":
            self.note(f"the stacked changes did not confirm as better than the baseline ({d.verdict}, "
                      f"{d.speedup:.3f}x [{d.ci[0]:.3f}, {d.ci[1]:.3f}])", "warning")

    def reference(self) -> dict | None:
        """An external implementation (e.g. the numpy reference) measured side by side with the best."""
        cmd = self.spec.bench.reference_cmd
        if not cmd or self.best is None:
            return None
        self.ui.phase("measuring the reference implementation")
        ref = Arm(self.best.commit, self.best.worktree, cmd=cmd)
        try:
            m = verify.measure(self.spec, ref, self.best, looks=[max(5, self.spec.decide.looks[0])], min_effect=0.0)
        except (SampleError, verify.OutputMismatch) as e:
            self.note(f"reference measurement failed: {e}", "warning")
            return None
        d = m.decision
        return {"cmd": cmd, "value": m.mean("a"), "best_value": m.mean("b"), "speedup": d.speedup, "ci": list(d.ci)}

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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "change"


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)
