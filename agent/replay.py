"""`optimize replay RUN`: re-execute a recorded run from its base commit, the model's side answered
from llm.jsonl, every build, test and measurement done again live; then compare verdicts.

With --fork-at N --llm URL the recorded replies are used up to attempt N, and a live model
continues from there.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from agent import loop
from agent.config import parse_spec
from agent.llm import Model, Reply
from agent.llm_record import RecordingModel, ReplayModel
from agent.records import AttemptStarted, IterationEvent, RecordError, RunStore
from agent.session import BaselineError, Options
from agent.start import Source, attach_model, new_session, open_model
from agent.ui import Progress


class ForkModel:
    """Recorded replies until `switch_at` replies have been consumed, then a live model."""

    def __init__(self, recorded: ReplayModel, live: Model, switch_at: int) -> None:
        self.recorded, self.live, self.switch_at = recorded, live, switch_at
        self.name = live.name

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
        if self.recorded.position < self.switch_at:
            return self.recorded.complete(messages, tools, tag=tag, schema=schema)
        return self.live.complete(messages, tools, tag=tag, schema=schema)


def replay(store: RunStore, *, runs_dir: Path, fork_at: int | None, llm: str | None, ui: Progress,
           api_key: str | None = None) -> dict:
    m = store.manifest()
    if not store.llm_path.exists():
        raise RecordError(f"{store.path}: no llm.jsonl to replay")
    recorded = [e for e in store.events() if isinstance(e, IterationEvent)]
    with tempfile.TemporaryDirectory(prefix="nightshift-replay-") as tmp:
        source = Path(tmp) / m.target
        source.mkdir()
        archive = subprocess.run(["git", "-C", m.repo, "archive", m.base_commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        src = Source(source, parse_spec(m.spec, str(store.manifest_path)), f"replay of {m.run_id}", in_place=False)
        options = Options.from_record(m.options)
        session = new_session(src, runs_dir=runs_dir, llm=f"replay:{store.llm_path}", model_name=m.model,
                              options=options, ui=ui)
    session.manifest.source = f"replay of {m.run_id}"
    if fork_at is not None:
        starts = [e for e in store.events() if isinstance(e, AttemptStarted) and e.index == fork_at]
        if not starts:
            session.close("failed", f"no attempt {fork_at} to fork at")
            raise RecordError(f"run {m.run_id} has no attempt {fork_at} to fork at")
        try:
            live, _, endpoint = open_model(llm, None, session.store, options=options, api_key=api_key)
        except BaseException:
            session.close("failed", "the live endpoint for --fork-at cannot be used")
            raise
        session.model = RecordingModel(ForkModel(ReplayModel(store.llm_path), live.inner, starts[0].llm_position),
                                       session.store.llm_path)
        attach_model(session)
        session.manifest.endpoint = f"fork of {m.run_id} at attempt {fork_at} → {endpoint}"
    session.store.write_manifest(session.manifest)
    try:
        reason = loop.run(session)
    except BaselineError as e:  # the base commit no longer builds or passes here: a finished replay says so
        session.close("failed", "baseline")
        raise RecordError(f"replay of {m.run_id}: {e}") from e
    except KeyboardInterrupt:
        session.close("interrupted", "interrupted")
        raise
    except Exception as e:
        session.close("failed", f"{type(e).__name__}: {e}")
        raise
    diverged = session.iteration if reason.startswith("replay diverged") else None
    again = {e.index: e for e in session.store.events() if isinstance(e, IterationEvent)}
    rows = []
    for old in recorded:
        new = again.get(old.index)
        rows.append({"index": old.index, "strategy": old.strategy.get("title", ""),
                     "recorded_verdict": old.verdict, "verdict": new.verdict if new else None,
                     "recorded_reason": old.reason, "reason": new.reason if new else None,
                     "recorded_speedup": old.speedup, "speedup": new.speedup if new else None,
                     "reproduced": bool(new and (new.verdict, new.reason) == (old.verdict, old.reason))})
    return {"run_id": m.run_id, "replay_run_id": session.run_id, "diverged_at": diverged, "stop_reason": reason,
            "iterations": rows}
