"""`optimize compare` on records: runs made separately (after the fact), replays of a recorded comparison,
and the command's dispatch between those and a new comparison (agent/compare.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from agent.compare import (
    COMPARISON_FILE,
    ArmChoice,
    ArmRecord,
    ComparisonRecord,
    Outcome,
    find_comparison,
    finish,
    head_to_head,
    load,
    parse_arm,
    run_comparison,
    save,
    tree_of,
)
from agent.config import parse_spec
from agent.llm import LLMError
from agent.records import IterationEvent, RecordError, RunStore, find_run, new_run_id
from agent.session import Options
from agent.start import BadInput, Source
from agent.ui import Progress
from tools.fingerprint import COMPARED, comparable, fingerprint

# --- after the fact ---------------------------------------------------------------------------------------


def comparable_runs(stores: list[RunStore]) -> list[str]:
    """Why these runs cannot be compared (empty when they can): target, spec, base code, machine."""
    ms = [s.manifest() for s in stores]
    first, why = ms[0], []
    for m in ms[1:]:
        pair = f"{first.run_id} and {m.run_id}"
        if m.target != first.target:
            why.append(f"{pair} optimise different targets ({first.target}, {m.target})")
        if m.spec != first.spec:
            keys = sorted(k for k in set(m.spec) | set(first.spec) if m.spec.get(k) != first.spec.get(k))
            why.append(f"{pair} have different target specs (differing: {', '.join(keys)})")
        ta, tb = tree_of(first.repo, first.base_commit), tree_of(m.repo, m.base_commit)
        if ta is None or tb is None:
            why.append(f"{pair}: a base commit is no longer in its repository ({first.repo}, {m.repo})")
        elif ta != tb:
            why.append(f"{pair} start from different code (base {first.base_commit[:10]} vs {m.base_commit[:10]})")
        if not comparable(first.fingerprint, m.fingerprint):
            keys = [k for k in COMPARED if first.fingerprint.get(k) != m.fingerprint.get(k)]
            why.append(f"{pair} were measured on different machines or toolchains (differing: {', '.join(keys)})")
        if m.status == "running" or first.status == "running":
            why.append(f"{pair}: a run is still running (or was killed: `optimize resume` it first)")
    return why


def compare_runs(refs: list[str], *, runs_dir: Path, quiet: bool) -> Outcome:
    """A comparison of runs made separately: refused when they are not comparable; their bests are
    measured against each other now (their baselines were measured separately: the report says so)."""
    stores = [find_run(runs_dir, r) for r in refs]
    if len({s.path.resolve() for s in stores}) != len(stores):
        raise BadInput("optimize compare: the same run is named twice")
    if why := comparable_runs(stores):
        raise BadInput("these runs cannot be compared: " + "; ".join(why))
    ms = [s.manifest() for s in stores]
    names = [chr(ord("A") + i) if len(ms) <= 26 else str(i + 1) for i in range(len(ms))]
    cid = new_run_id(f"compare-{ms[0].target}")
    path = (runs_dir / cid).absolute()
    path.mkdir(parents=True)
    notes = ["after the fact: each run measured its own baseline and noise floor at its own time; only the "
             "head-to-head of the bests was measured side by side"]
    budgets = ("iterations", "hours", "strategies", "max_tool_calls", "max_total_tool_calls", "max_tokens", "profile")
    for k in budgets:
        values = [m.options.get(k) for m in ms]
        if len(set(map(str, values))) > 1:
            notes.append(f"budgets differ: {k} " + " vs ".join(map(str, values)))
    record = ComparisonRecord(
        comparison_id=cid, kind="after-the-fact", target=ms[0].target, spec=ms[0].spec, repo=ms[0].repo,
        base_commit=ms[0].base_commit, fingerprint=fingerprint(), options=ms[0].options, order=names,
        baseline_run=ms[0].run_id, notes=notes,
        arms=[ArmRecord(name=n, run_id=m.run_id, run_dir=str(s.path), model=m.model, endpoint=m.endpoint)
              for n, m, s in zip(names, ms, stores, strict=True)])
    save(path, record)
    record.head_to_head = head_to_head(path, record, stores, ui=Progress(quiet=quiet))
    finish(path, record, "finished", "compared after the fact")
    return Outcome(path, record)


# --- replay ----------------------------------------------------------------------------------------------


def replay_choices(path: Path) -> tuple[list[ArmChoice], ComparisonRecord]:
    """The arms of a recorded comparison, each answered from its own llm.jsonl, in the same order."""
    record = load(path)
    if record.kind != "live":
        raise BadInput(f"{record.comparison_id} was compared after the fact; replay its runs with `optimize replay`")
    arms = []
    for a in record.arms:
        llm = Path(a.run_dir) / "llm.jsonl"
        if not llm.is_file():
            raise RecordError(f"{a.run_dir}: no llm.jsonl to replay arm {a.name} from")
        arms.append(ArmChoice(a.name, f"replay:{llm}", a.model))
    return arms, record


def reproduced(old: ComparisonRecord, new: ComparisonRecord) -> list[dict[str, Any]]:
    """Per arm and attempt: the recorded verdict against the replay's."""
    rows = []
    by_name = {b.name: b for b in new.arms}
    for a in old.arms:
        b = by_name[a.name]
        then = {e.index: e for e in RunStore(Path(a.run_dir)).events() if isinstance(e, IterationEvent)}
        now = {e.index: e for e in RunStore(Path(b.run_dir)).events() if isinstance(e, IterationEvent)}
        for i, e in sorted(then.items()):
            n = now.get(i)
            rows.append({"arm": a.name, "index": i, "strategy": e.strategy.get("title", ""),
                         "recorded": f"{e.verdict} ({e.reason})", "now": f"{n.verdict} ({n.reason})" if n else None,
                         "recorded_speedup": e.speedup, "speedup": n.speedup if n else None,
                         "reproduced": bool(n and (n.verdict, n.reason) == (e.verdict, e.reason))})
    return rows


def replay_source(record: ComparisonRecord, into: Path) -> Source:
    """The recorded base commit as a plain folder (like `optimize replay`), to be snapshotted afresh."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", record.repo, "archive", record.base_commit], capture_output=True)
    if archive.returncode != 0:
        raise RecordError(f"{record.repo}: cannot read base commit {record.base_commit[:10]}: "
                          f"{archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return Source(into, parse_spec(record.spec, COMPARISON_FILE), f"replay of {record.comparison_id}", in_place=False)


def command(refs: list[str], arms: list[str], *, repo: str | None, target_file: Path | None, runs_dir: Path,
            options: Options, allow_dirty: bool, replay: str | None, quiet: bool,
            api_key: str | None) -> tuple[Path, list[dict[str, Any]] | None]:
    """What `optimize compare` does with its arguments: show a recorded comparison, compare existing runs,
    replay a comparison, or run a new one. Returns the comparison's folder (and the replay's rows)."""
    from agent import start

    if replay:
        if refs or arms or repo:
            raise BadInput("optimize compare --replay ID takes no runs, --model or --repo: the arms are replayed "
                           "from their own records")
        found = find_comparison(runs_dir, replay)
        if found is None:
            raise RecordError(f"no comparison '{replay}' in {runs_dir}")
        choices, old = replay_choices(found)
        tmp = Path(tempfile.mkdtemp(prefix="nightshift-compare-"))
        try:
            src = replay_source(old, tmp / old.target)
            done = run_comparison(src, choices, runs_dir=runs_dir, options=Options.from_record(old.options), quiet=quiet)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _raise_for(done)
        return done.path, reproduced(old, done.record)
    if refs and (arms or repo):
        raise BadInput("optimize compare: give either existing runs (RUN RUN ...) or --repo with --model arms, not both")
    if len(refs) == 1:
        found = find_comparison(runs_dir, refs[0])
        if found is None:
            raise BadInput(f"'{refs[0]}' is no comparison in {runs_dir}; to compare runs after the fact name two or more")
        return found, None
    if refs:
        return compare_runs(refs, runs_dir=runs_dir, quiet=quiet).path, None
    if not repo:
        raise BadInput("optimize compare needs --repo PATH|NAME and two or more --model NAME=URL,MODEL "
                       "(or NAME=replay:FILE), or the ids of two or more existing runs")
    choices = [parse_arm(a) for a in arms]
    src = start.resolve(repo, target_file)
    start.check_repo(src, allow_dirty)
    start.check_runs_dir(runs_dir)
    done = run_comparison(src, choices, runs_dir=runs_dir, options=options, quiet=quiet, api_key=api_key)
    _raise_for(done)
    return done.path, None


class Unfinished(Exception):
    """A comparison that did not finish: `code` is the exit code (3 endpoint, 130 interrupted, 1 failed)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _raise_for(done: Outcome) -> None:
    rec = done.record
    if rec.status == "finished":
        return
    where = f"(record {done.path})"
    if any(isinstance(e, LLMError) for e in done.errors.values()):
        raise Unfinished(3, f"an arm's endpoint became unusable: {rec.stop_reason} {where}")
    if rec.status == "interrupted":
        raise Unfinished(130, f"interrupted; the arms' runs can be resumed one by one (no longer in turns) {where}")
    raise Unfinished(1, f"the comparison failed: {rec.stop_reason} {where}")
