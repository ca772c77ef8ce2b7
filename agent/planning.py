"""Planning: what the model is told about the target and the run so far, the plan it proposes (deduplicated
against the notebook, recorded as a PlanEvent), and a plan that never comes (a model-error attempt)."""

from __future__ import annotations

from agent import prompts
from agent.llm import Cancelled, RequestRejected
from agent.notebook import Entry
from agent.planner import PlanFailed, Strategy
from agent.planner import plan as ask_for_plan
from agent.records import IterationEvent, PlanEvent
from agent.session import Session, Stop
from agent.verify import Outcome
from tools import gitops


def context(s: Session) -> dict[str, str]:
    """The run so far as the prompts show it (the plan's and each attempt's brief)."""
    files = gitops.tracked_files(s.best.worktree)
    shown = "\n".join(files[:300]) + (f"\n(... {len(files) - 300} more)" if len(files) > 300 else "")
    speedup = s.speedup_so_far()
    return {"target": s.spec.name, "metric": s.metric_text(), "files": shown,
            "best": f"{s.fmt(s.best_value)} ({speedup:.2f}x the baseline)",
            "protected": ", ".join(s.spec.guard.protected), "profile": s.profile_text,
            "notebook": s.notebook.render()}


def plan(s: Session) -> None:
    """Ask for the next strategies (those repeating a rejected attempt are skipped) and queue them."""
    s.ui.phase("planning")
    s.plan_round += 1
    request = prompts.PLAN.format(k=s.options.strategies, **context(s))
    dry = len(s.notebook.entries) - max((i + 1 for i, e in enumerate(s.notebook.entries)
                                          if e.verdict == "accepted"), default=0)
    if dry >= s.options.widen_after:
        request += prompts.WIDER.format(n=dry)
    while True:  # a model that gives no usable plan costs an attempt each time, until the budget
        s.check(reserve=True)
        s.pause_after_model_errors()
        try:
            result = ask_for_plan(s.model, prompts.SYSTEM, request, before_call=s.before_model_call,
                                  on_reply=s.count)
            break
        except (PlanFailed, RequestRejected) as e:
            planning_failed(s, e)
        except Cancelled:
            raise Stop("interrupted") from None
    fresh = []
    for strategy in result.strategies[: s.options.strategies]:
        if dup := s.notebook.duplicate_of(strategy.title, tuple(strategy.files)):
            s.note(f"skipping '{strategy.title}': repeats rejected attempt #{dup.index:03d}")
        else:
            fresh.append(strategy)
    s.queue = fresh
    s.store.append(PlanEvent(round=s.plan_round, strategies=[x.model_dump() for x in fresh],
                             llm_position=s.llm_position))
    s.ui.log(f"plan #{s.plan_round}: " + "; ".join(x.title for x in fresh))


def planning_failed(s: Session, error: Exception) -> None:
    """No usable plan: recorded as a model-error attempt (it costs one of the iteration budget), and
    as an empty plan, so a resume keeps the replies and a replay meets the same failure."""
    if isinstance(error, RequestRejected):
        s.count_rejection()
    detail = str(error.detail if isinstance(error, RequestRejected) else error)
    with s.lock:
        s.iteration += 1
        index = s.iteration
    s.plan_round += 1
    s.store.append(PlanEvent(round=s.plan_round, strategies=[], llm_position=s.llm_position))
    strategy = Strategy(title=f"plan #{s.plan_round}: no usable plan")
    o = Outcome("error", "model-error", f"planning failed: {detail}")
    s.store.write_text(index, "verdict.txt", f"{o.verdict} ({o.reason})\n{o.detail}\n")
    s.notebook.add(Entry(index, strategy.title, (), o.verdict, o.reason, None, o.detail[:160]))
    with s.lock:
        s.model_errors += 1
    s.store.append(IterationEvent(
        index=index, strategy=strategy.model_dump(), branch="", commit=s.best.commit,
        base_commit=s.best.commit, verdict=o.verdict, reason=o.reason, detail=o.detail[-4000:],
        llm_position=s.llm_position))
    s.save_manifest(iterations=index, tool_calls=s.tool_calls, tokens=s.tokens,
                    llm_position=s.llm_position)
    s.ui.verdict(index, strategy.title, o, s.store.iteration_dir(index))
    if s.iteration >= s.options.iterations:
        raise Stop("iteration budget spent")
