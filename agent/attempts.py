"""Attempts: each strategy of a batch in its own lane (worktree, branch, conversation with the model),
committed and handed to agent/evaluation.py, which decides it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from agent import prompts
from agent.attempt import converse
from agent.evaluation import evaluate
from agent.llm import Cancelled, RequestRejected
from agent.planner import Strategy
from agent.planning import context
from agent.records import AttemptStarted
from agent.session import Session, Stop
from agent.target import Target
from agent.toolbox import Toolbox
from agent.verify import Arm, Outcome
from tools import gitops
from tools.bench import metric_value


def attempts(s: Session, strategies: list[Strategy]) -> None:
    """One attempt per strategy, each in its own lane; returns when all are decided. A lane that
    raises (interrupt, replay end) lets the others finish first, then the first error is raised."""
    try:
        if len(strategies) == 1:
            return attempt(s, strategies[0])
        with ThreadPoolExecutor(len(strategies), thread_name_prefix="lane") as lanes:
            futures = [lanes.submit(attempt, s, strategy) for strategy in strategies]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
    finally:
        while s.retired:
            gitops.remove_worktree(s.repo, s.retired.pop())


def attempt(s: Session, strategy: Strategy) -> None:
    """One strategy in its own worktree and conversation, then its evaluation (agent/evaluation.py)."""
    with s.turn():  # an arm of a comparison waits for its turn (agent/compare.py)
        _attempt(s, strategy)


def _attempt(s: Session, strategy: Strategy) -> None:
    with s.lock:
        s.check(reserve=True)
        s.iteration += 1
        index, best = s.iteration, s.best
        branch = f"{s.prefix}iter-{index:03d}-{_slug(strategy.title)}"
        wt = gitops.add_worktree(s.repo, s.worktree(f"iter-{index:03d}"), best.commit, branch)
        s.store.append(AttemptStarted(index=index, strategy=strategy.model_dump(), branch=branch,
                                      base_commit=best.commit, llm_position=s.llm_position))
    s.ui.attempt(index, strategy.title)
    clock = s.clock()
    toolbox = Toolbox(Target(s.spec, wt), s.spec.guard.protected, lambda: s.profile_text,
                      lambda output: metric_line(s, output))
    brief = prompts.ATTEMPT.format(index=index, title=strategy.title, hypothesis=strategy.hypothesis,
                                   strategy_files=", ".join(strategy.files), budget=s.options.max_tool_calls,
                                   **context(s))
    rejected: RequestRejected | None = None
    try:
        s.pause_after_model_errors()
        talk = converse(s.model, toolbox, prompts.SYSTEM, brief, tag=f"attempt-{index:03d}",
                        max_tool_calls=s.options.max_tool_calls, before_call=s.before_model_call, on_reply=s.count,
                        on_tool=lambda name, out: s.ui.step(name), context_limit=s.options.context_limit)
    except (Stop, Cancelled) as stop:
        if isinstance(stop, Cancelled) or stop.reason == "interrupted":
            gitops.remove_worktree(s.repo, wt)  # half-finished: resume redoes it cleanly
            raise Stop("interrupted") from None
        talk = None  # a budget ran out mid-attempt: close it and record it
    except RequestRejected as e:
        talk, rejected = None, e
    with s.lock:
        s.tool_calls += talk.tool_calls if talk else 0
    commit = gitops.commit_all(wt, f"iter-{index:03d}: {strategy.title}") or best.commit
    early = None
    if talk is None and rejected is not None:
        s.count_rejection()
        early = Outcome("error", "model-error", f"the endpoint rejected a request of this attempt: {rejected.detail}")
    elif talk is None:
        early = Outcome("rejected", "budget", "the run's budget ran out during this attempt")
    elif talk.ended == "give_up" and commit == best.commit:
        early = Outcome("rejected", "model-gave-up", talk.message)
    elif talk.ended == "stalled" and commit == best.commit:
        early = Outcome("error", "model-error", f"no usable tool call: {talk.message or 'the model stalled'}")
    evaluate(s, index, strategy, branch, best, Arm(commit, wt), toolbox.protected_attempts,
             talk.message if talk else "", talk.tool_calls if talk else 0, clock, early)


def metric_line(s: Session, output: str) -> str:
    """What run_bench shows the model: the benchmark's metric as the spec reads it."""
    if not s.spec.bench.metric:
        return "metric: wall time"
    try:
        return f"metric: {metric_value(output, s.spec.bench.metric):g} {s.spec.bench.metric.unit}"
    except ValueError as e:
        return f"metric: not found ({e})"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "change"
