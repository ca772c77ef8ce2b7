"""The run store: `runs/<run-id>/` with run.json, events.jsonl, llm.jsonl and iterations/NNN/.

Events are append-only, one validated JSON object per line, flushed and fsynced; run.json is
replaced atomically. Both carry a schema version; a record from another version is refused
with a clear message rather than misread.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION = 1

Verdict = Literal["accepted", "rejected", "error"]
Reason = Literal[
    "faster", "not-significant", "slower", "no-change", "protected-path", "build-failed", "tests-failed",
    "output-mismatch", "metric-missing", "timeout", "crashed", "guard-metric", "model-gave-up", "model-error",
    "budget", "runaway-output", "superseded",
]


class RecordError(Exception):
    """A run record is missing, from another schema version, or damaged."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Manifest(Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["running", "finished", "interrupted", "failed"] = "running"
    target: str
    spec: dict[str, Any]
    repo: str = Field(description="The repository the run works on (a snapshot for plain folders).")
    source: str = Field(description="What the user pointed at.")
    in_place: bool
    base_commit: str
    model: str
    endpoint: str
    options: dict[str, Any]
    fingerprint: dict[str, Any]
    sandbox: str
    started: str
    updated: str
    stop_reason: str | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class _Event(Record):
    time: float = Field(default_factory=time.time)


class BaselineEvent(_Event):
    type: Literal["baseline"] = "baseline"
    commit: str
    value: float
    unit: str
    better: Literal["higher", "lower"]
    noise_floor: float
    min_effect: float
    output_lines: list[str]
    profile: dict[str, Any] | None = None


class PlanEvent(_Event):
    type: Literal["plan"] = "plan"
    round: int
    strategies: list[dict[str, Any]]
    llm_position: int = 0


class AttemptStarted(_Event):
    type: Literal["attempt-started"] = "attempt-started"
    index: int
    strategy: dict[str, Any]
    branch: str
    base_commit: str
    llm_position: int = Field(description="Replies consumed before this attempt (for resume and replay).")


class EvaluationStarted(_Event):
    """The model's part of an attempt is done and committed; its verification starts. A run killed now
    resubmits just this evaluation on resume (same commits, same key) instead of redoing the attempt."""

    type: Literal["evaluation-started"] = "evaluation-started"
    index: int
    key: str  # content key: spec, both commits, min_effect (agent.executor.evaluation_key)
    base_commit: str
    commit: str
    protected_attempts: list[str] = Field(default_factory=list)
    summary: str = ""
    tool_calls: int = 0


class IterationEvent(_Event):
    type: Literal["iteration"] = "iteration"
    index: int
    strategy: dict[str, Any]
    branch: str
    commit: str | None
    base_commit: str
    verdict: Verdict
    reason: Reason
    detail: str = ""
    speedup: float | None = None
    ci: tuple[float, float] | None = None
    pairs: int = 0
    value: float | None = None
    flags: list[str] = Field(default_factory=list)
    summary: str = ""
    tool_calls: int = 0
    llm_position: int = 0
    profile: dict[str, Any] | None = None
    timing: dict[str, float] = Field(default_factory=dict)
    host: dict[str, Any] | None = None  # the benchmark host, when measured remotely (Ray)


class ConfirmEvent(_Event):
    type: Literal["confirmation"] = "confirmation"
    best_commit: str
    speedup: float
    ci: tuple[float, float]
    pairs: int
    verdict: str
    baseline_value: float
    best_value: float
    reference: dict[str, Any] | None = None


class NoteEvent(_Event):
    type: Literal["note"] = "note"
    level: Literal["info", "warning"] = "info"
    text: str


class FinishEvent(_Event):
    type: Literal["finished"] = "finished"
    status: str
    stop_reason: str


Event = Annotated[
    BaselineEvent | PlanEvent | AttemptStarted | EvaluationStarted | IterationEvent | ConfirmEvent | NoteEvent | FinishEvent,
    Field(discriminator="type"),
]
_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(target: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in target.lower()).strip("-")[:24] or "run"
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{slug}"


class RunStore:
    """One run's folder. Appends never rewrite earlier lines; the manifest is replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()  # worktrees and git commands run elsewhere: a relative path would nest
        # lanes append from several threads, and a long line may take several write() calls
        self._append = threading.Lock()

    @property
    def manifest_path(self) -> Path:
        return self.path / "run.json"

    @property
    def llm_path(self) -> Path:
        return self.path / "llm.jsonl"

    def iteration_dir(self, index: int) -> Path:
        d = self.path / "iterations" / f"{index:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def lock(self) -> None:
        """One process per run: a second `optimize resume` while the first still runs is refused."""
        path = self.path / "run.lock"
        try:
            pid = int(path.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass  # no lock, or its process is gone (killed): take it over
        else:
            if pid != os.getpid():
                raise RecordError(f"{self.path} is in use by process {pid}; wait for it or stop it first")
        path.write_text(str(os.getpid()))

    def unlock(self) -> None:
        (self.path / "run.lock").unlink(missing_ok=True)

    def write_manifest(self, manifest: Manifest) -> None:
        manifest.updated = now_iso()
        tmp = self.manifest_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(manifest.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.manifest_path)

    def manifest(self) -> Manifest:
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError as e:
            raise RecordError(f"{self.path}: no run.json here — is this a run directory?") from e
        except json.JSONDecodeError as e:
            raise RecordError(f"{self.manifest_path}: damaged ({e})") from e
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(
                f"{self.manifest_path}: record format version {version!r}; this Nightshift reads version "
                f"{SCHEMA_VERSION}. Use the Nightshift release that wrote it."
            )
        try:
            return Manifest.model_validate(data)
        except ValidationError as e:
            raise RecordError(f"{self.manifest_path}: invalid: {e.errors()[0]['msg']}") from e

    def append(self, event: BaseModel) -> None:
        line = event.model_dump_json() + "\n"
        with self._append, open(self.path / "events.jsonl", "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[Any]:
        """All complete events; a torn last line (from a kill mid-write) is ignored."""
        path = self.path / "events.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        out = []
        for n, line in enumerate(lines, 1):
            try:
                out.append(_event_adapter.validate_json(line))
            except ValidationError as e:
                if n == len(lines):
                    break
                raise RecordError(f"{path}:{n}: invalid event: {e.errors()[0]['msg']}") from e
        return out

    def write_json(self, index: int, name: str, data: Any) -> None:
        (self.iteration_dir(index) / name).write_text(json.dumps(data, indent=1, default=str))

    def write_text(self, index: int, name: str, text: str) -> None:
        (self.iteration_dir(index) / name).write_text(text)


def find_run(runs_dir: Path, run: str) -> RunStore:
    """A run by id, unique id prefix, or path."""
    if (Path(run) / "run.json").exists():
        return RunStore(Path(run))
    matches = sorted(p for p in runs_dir.glob(f"{run}*") if (p / "run.json").exists()) if runs_dir.is_dir() else []
    if len(matches) == 1:
        return RunStore(matches[0])
    if not matches:
        raise RecordError(f"no run '{run}' in {runs_dir} (see `optimize runs --runs-dir {runs_dir}`)")
    raise RecordError(f"'{run}' matches {len(matches)} runs in {runs_dir}; give more of the id")


def list_runs(runs_dir: Path) -> list[Manifest]:
    if not runs_dir.is_dir():
        return []
    out = []
    for p in sorted(runs_dir.iterdir()):
        if not p.is_dir():  # .gitkeep, notes, anything a user drops there
            continue
        try:
            out.append(RunStore(p).manifest())
        except RecordError:
            continue
    return out
