"""Evaluation: a committed candidate verified against the best, verified again on the new best when
another lane's win landed meanwhile (restack), then kept or dropped and recorded as an IterationEvent;
and the evaluations a killed run left unfinished, finished after a resume."""

from __future__ import annotations

from pathlib import Path

from agent import hotspots
from agent.executor import ExecutorError, evaluation_key
from agent.notebook import Entry
from agent.planner import Strategy
from agent.records import AttemptStarted, EvaluationStarted, IterationEvent
from agent.session import Clock, Session
from agent.verify import Arm, Outcome
from tools import gitops


def evaluate(s: Session, index: int, strategy: Strategy, branch: str, best: Arm, cand: Arm, protected: list[str],
             summary: str, tool_calls: int, clock: Clock, early: Outcome | None = None) -> None:
    """Verify a committed candidate (unless `early` already decided it) and keep or drop it."""
    logs = s.store.iteration_dir(index)
    outcome = early
    if outcome is None:
        key = evaluation_key(s.spec, best.commit, cand.commit, s.min_effect)
        s.store.append(EvaluationStarted(index=index, key=key, base_commit=best.commit, commit=cand.commit,
                                         protected_attempts=protected, summary=summary, tool_calls=tool_calls))
        s.ui.phase("verifying", f"#{index:03d} {strategy.title}", index)
        outcome = verify(s, best, cand, protected, logs)
    with s.decide:
        if outcome.verdict == "accepted" and best.commit != s.best.commit:
            best, outcome = restack(s, index, best, cand, outcome, protected, logs)
        keep_or_drop(s, index, strategy, branch, best, cand, outcome, summary, tool_calls, clock)


def resume_evaluation(s: Session, started: AttemptStarted, ev: EvaluationStarted) -> None:
    """An evaluation the killed process never finished: the same commit verified again, on the
    current best (rebased onto it first if the best moved: `superseded` if it no longer applies)."""
    strategy = Strategy(**started.strategy)
    wt = gitops.add_worktree(s.repo, s.worktree(f"iter-{ev.index:03d}"), ev.commit, started.branch)
    s.ui.attempt(ev.index, f"{strategy.title} (evaluation resumed)")
    clock = s.clock()
    if ev.base_commit != s.best.commit:
        new = gitops.rebase(wt, onto=s.best.commit, upstream=ev.base_commit)
        if new is None:
            outcome = Outcome("rejected", "superseded", "resumed after a restart: the change conflicts with "
                              "the best that other attempts reached meanwhile")
            base = Arm(ev.base_commit, s.best.worktree)  # what it was written against, for its diff
            return evaluate(s, ev.index, strategy, started.branch, base, Arm(ev.commit, wt),
                            ev.protected_attempts, ev.summary, ev.tool_calls, clock, outcome)
        ev = ev.model_copy(update={"commit": new})
    evaluate(s, ev.index, strategy, started.branch, s.best, Arm(ev.commit, wt), ev.protected_attempts,
             ev.summary, ev.tool_calls, clock)


def finish_pending(s: Session) -> None:
    """Evaluations a killed run left unfinished, decided before anything new starts."""
    while s.pending:
        resume_evaluation(s, *s.pending.pop(0))


def verify(s: Session, best: Arm, cand: Arm, protected_attempts: list[str], logs: Path) -> Outcome:
    """The candidate against the best on the run's executor (agent/verify.py is the pipeline)."""
    if s.executor is None:
        s.open_executor()
    try:
        return s.executor.verify(best, cand, min_effect=s.min_effect, expected=s.expected,
                                 protected_attempts=protected_attempts, logs=logs, reference=s.base)
    except ExecutorError as e:
        s.note(f"remote evaluation failed: {e}", "warning")
        return Outcome("error", "crashed", f"the executor could not finish this evaluation: {e}")


def restack(s: Session, index: int, base: Arm, cand: Arm, won: Outcome, protected_attempts: list[str],
            logs: Path) -> tuple[Arm, Outcome]:
    """Another lane's win landed while this one was being verified: replay this change on the new
    best and verify it again there (holding the lock, so the best cannot move meanwhile)."""
    first = f"won {won.speedup:.3f}x against {base.commit[:10]}, which another lane has since improved"
    new = gitops.rebase(cand.worktree, onto=s.best.commit, upstream=base.commit)
    if new is None:
        return base, Outcome("rejected", "superseded", f"{first}; the change conflicts with the new best",
                             won.speedup, won.ci, won.pairs, won.value, won.flags, won.samples)
    cand.commit = new
    s.ui.phase("verifying again on the new best", f"#{index:03d}", index)
    again = verify(s, s.best, cand, protected_attempts, logs)
    if again.verdict == "accepted":
        again.detail = f"{again.detail}\n{first}; verified again on top of it"
    else:
        again.verdict, again.reason, again.detail = ("rejected", "superseded",
                                                     f"{first}; on top of it: {again.reason} {again.detail}")
    return s.best, again


def keep_or_drop(s: Session, index: int, strategy: Strategy, branch: str, best: Arm, cand: Arm, o: Outcome,
                 summary: str, tool_calls: int, clock: Clock) -> None:
    """Record the verdict (diff, samples, IterationEvent); an accepted change becomes the best and is
    profiled, a rejected one loses its worktree (its branch stays for review)."""
    gain = f"{o.speedup:.3f}x" if o.speedup else "n/a"
    if cand.commit != best.commit:
        cand.commit = gitops.amend_message(cand.worktree, f"iter-{index:03d}: {strategy.title}\n\n"
                                           f"verdict: {o.verdict} ({o.reason}), speedup {gain}\n\n{summary}".strip())
    logs = s.store.iteration_dir(index)
    s.store.write_text(index, "diff.patch", gitops.diff_text(s.repo, best.commit, cand.commit))
    s.store.write_json(index, "samples.json", o.samples)
    s.store.write_text(index, "verdict.txt", f"{o.verdict} ({o.reason})\n{o.detail}\n")
    profile = None
    if o.verdict == "accepted":
        old = s.best
        s.best, s.best_value = cand, o.value or s.best_value
        s.gain *= o.speedup or 1.0
        gitops.set_branch(s.repo, s.prefix + "best", cand.commit)
        if old is not s.base:
            s.retired.append(old.worktree)  # another lane may still be measuring against it
        profile = hotspots.profile(s, index)
    else:
        gitops.remove_worktree(s.repo, cand.worktree)
    s.notebook.add(Entry(index, strategy.title, tuple(strategy.files), o.verdict, o.reason, o.speedup,
                         o.detail.splitlines()[0][:160] if o.detail else ""))
    with s.lock:
        s.model_errors = s.model_errors + 1 if o.reason == "model-error" else 0
    s.store.append(IterationEvent(
        index=index, strategy=strategy.model_dump(), branch=branch, commit=cand.commit, base_commit=best.commit,
        verdict=o.verdict, reason=o.reason, detail=o.detail[-4000:], speedup=o.speedup, ci=o.ci, pairs=o.pairs,
        value=o.value, flags=o.flags, summary=summary, tool_calls=tool_calls, llm_position=s.llm_position,
        profile=profile, timing=s.timing(clock), host=o.host))
    s.save_manifest(iterations=index, accepted=sum(e.verdict == "accepted" for e in s.notebook.entries),
                    best_value=s.best_value, tool_calls=s.tool_calls, tokens=s.tokens,
                    llm_position=s.llm_position)
    s.ui.verdict(index, strategy.title, o, logs)
    if o.verdict == "accepted":
        s.ui.best(s.best_value, s.speedup_so_far())
