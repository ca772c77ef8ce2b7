"""Reopening a run after a crash, kill -9, power loss or an endpoint outage.

State is rebuilt from events.jsonl (agent.session.restore): finished iterations are kept as they are, a half-finished
attempt (no iteration event) is redone from scratch, stray worktrees are removed and rebuilt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.config import parse_spec
from agent.options import Options
from agent.records import EvaluationStarted, IterationEvent, Manifest, PlanEvent, RecordError, RunStore
from agent.session import BaselineError, Session, restore
from agent.start import attach_model, open_executor, open_model
from agent.target import Target, failure
from agent.ui import Progress
from agent.verify import Arm
from tools import gitops
from tools.fingerprint import comparable, fingerprint


def reopen(store: RunStore, *, llm: str | None, ui: Progress, api_key: str | None = None) -> Session:
    m = store.manifest()
    if m.status == "finished":
        raise RecordError(f"run {m.run_id} already finished ({m.stop_reason}); nothing to resume")
    if not comparable(m.fingerprint, fingerprint()):
        raise RecordError(f"run {m.run_id} was measured on another machine or toolchain; its baseline cannot be "
                          "compared with measurements here. Start a new run, or `optimize replay` it.")
    store.lock()
    try:
        return _reopen(store, m, llm=llm, ui=ui, api_key=api_key)
    except BaseException:
        store.unlock()  # a resume that cannot start leaves the record as it found it
        raise


def _reopen(store: RunStore, m: Manifest, *, llm: str | None, ui: Progress, api_key: str | None) -> Session:
    events = store.events()
    position = _set_aside_unfinished_exchanges(store, events)
    source = llm or m.endpoint
    options = Options.from_record(m.options)
    # the same server keeps what was learnt about it (structured output, streaming); another is probed
    caps = m.summary.get("llm", {}) if source == m.endpoint else {}
    model, _, _ = open_model(source, None if source.startswith("replay:") else m.model, store, start=position,
                             options=options, api_key=api_key, capabilities=caps)
    s = Session(parse_spec(m.spec, str(store.manifest_path)), store, m, model, Path(m.repo), options, ui)
    attach_model(s)
    accepted = restore(s, events, position)
    s.cleanup()  # stray worktrees of the killed process
    open_executor(s, fresh=False)
    s.manifest.status, s.manifest.stop_reason = "running", None
    if accepted is None:
        return s  # died during the baseline: the loop starts it again
    s.base = _built(s, "base", m.base_commit)
    s.best = _built(s, "best", accepted[-1].commit) if accepted else s.base
    ui.log(f"resuming run {m.run_id}: {s.iteration} attempts done, {len(s.queue)} planned strategies left")
    return s


def _built(s: Session, name: str, commit: str) -> Arm:
    wt = gitops.add_worktree(s.repo, s.worktree(name), commit)
    build = Target(s.spec, wt).build()
    if build is not None and failure(build, "build-failed"):
        raise BaselineError(f"rebuilding {name} ({commit[:10]}) failed on resume:\n{build.tail()}")
    return Arm(commit, wt)


def _set_aside_unfinished_exchanges(store: RunStore, events: list) -> int:
    """Replies of attempts that never finished (and of a plan that was never recorded) go to
    llm.discarded.jsonl, so llm.jsonl replays cleanly; returns how many replies remain.

    Planning happens only when no lane is busy, so everything before the last plan's position is
    finished; after it, lanes interleave, so the rest is sorted by conversation."""
    plans = [e.llm_position for e in events if isinstance(e, PlanEvent)]
    if not store.llm_path.exists():
        return 0
    planned = max(plans, default=0)
    # an attempt whose evaluation started has a finished conversation, even if its verdict is missing
    finished = {f"attempt-{e.index:03d}" for e in events if isinstance(e, IterationEvent | EvaluationStarted)}
    keep, drop = [], []
    for line in store.llm_path.read_text().splitlines(keepends=True):
        if not _complete(line):
            drop.append(line)
        elif len(keep) < planned or json.loads(line).get("tag", "").removesuffix("-compact") in finished:
            keep.append(line)
        else:
            drop.append(line)
    if drop:
        with open(store.path / "llm.discarded.jsonl", "a") as f:
            f.writelines(drop)
        tmp = store.llm_path.with_suffix(".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, store.llm_path)
    return len(keep)


def _complete(line: str) -> bool:
    try:
        rec = json.loads(line)
        return "response" in rec or "rejected" in rec
    except json.JSONDecodeError:
        return False
