"""`optimize compare`: several models on one target, under identical conditions by construction.

One baseline and one noise calibration (measured once, then given to every arm), the same options
and budgets, the same seed stream for each arm's k-th attempt, and the arms' attempts taken in turns
(A, B, A, B, ...) so that whatever the machine does over the night falls on every arm alike. Each arm
is an ordinary run (its own record, branches and report) driven by `agent/loop.py` in its own thread;
`Turns` lets one arm at a time hold the machine for an attempt or its confirmation. At the end the
arms' bests are measured against each other, side by side, with the verifier's own rule
(`verify.measure`). `runs/<comparison-id>/comparison.json` ties the arms' run records together.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agent import lease, loop, target, verify
from agent.baseline import measure as measure_baseline
from agent.config import parse_spec
from agent.llm import LLMError
from agent.records import (
    BaselineEvent,
    ConfirmEvent,
    IterationEvent,
    RecordError,
    RunStore,
    new_run_id,
    now_iso,
)
from agent.session import BaselineError, Options, Session
from agent.start import BadInput, Source, new_session
from agent.ui import Progress
from tools import gitops
from tools.bench import SampleError
from tools.fingerprint import fingerprint

ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")  # goes into run ids and branch names
COMPARISON_FILE = "comparison.json"


@dataclass(frozen=True)
class ArmChoice:
    """One `--model NAME=URL,MODEL` (or `NAME=replay:FILE`)."""

    name: str
    llm: str
    model: str | None = None


def parse_arm(text: str) -> ArmChoice:
    name, sep, rest = text.partition("=")
    if not sep or not rest:
        raise BadInput(f"--model {text}: expected NAME=URL,MODEL or NAME=replay:FILE.jsonl")
    if not ARM_NAME.match(name):
        raise BadInput(f"--model {text}: the arm name {name!r} must be letters, digits, - or _ (up to 24)")
    if rest.startswith("replay:"):
        return ArmChoice(name, rest)
    url, _, model = rest.partition(",")
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--model {text}: {url!r} is neither an http(s) endpoint URL nor replay:FILE")
    return ArmChoice(name, url, model.strip() or None)


# --- the record ---------------------------------------------------------------------------------------


class ArmRecord(BaseModel):
    name: str
    run_id: str
    run_dir: str
    model: str
    endpoint: str  # never the key


class Match(BaseModel):
    """One side-by-side measurement of the head-to-head (speedup of b over a, the verifier's rule)."""

    a: str  # an arm's name, or "baseline"
    b: str
    a_commit: str
    b_commit: str
    speedup: float
    ci: tuple[float, float]
    verdict: str  # better | worse | same | inconclusive (b against a)
    pairs: int = 0
    statistic: str = ""
    basis: str = ""


class ComparisonRecord(BaseModel):
    schema_version: int = 1
    comparison_id: str
    kind: Literal["live", "after-the-fact"] = "live"
    status: Literal["running", "finished", "interrupted", "failed"] = "running"
    stop_reason: str | None = None
    target: str
    spec: dict[str, Any]
    repo: str
    base_commit: str
    fingerprint: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0  # each arm's k-th attempt draws its verification seeds from Random(seed, k)
    order: list[str] = Field(default_factory=list)  # the turn order of the arms
    started: str = Field(default_factory=now_iso)
    updated: str = Field(default_factory=now_iso)
    arms: list[ArmRecord] = Field(default_factory=list)
    baseline_run: str = ""  # the arm run that measured the shared baseline
    head_to_head: list[Match] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # what differs between after-the-fact runs, etc.


def save(path: Path, record: ComparisonRecord) -> None:
    record.updated = now_iso()
    tmp = path / (COMPARISON_FILE + ".tmp")
    tmp.write_text(record.model_dump_json(indent=2))
    os.replace(tmp, path / COMPARISON_FILE)


def load(path: Path) -> ComparisonRecord:
    try:
        return ComparisonRecord.model_validate_json((path / COMPARISON_FILE).read_text())
    except FileNotFoundError as e:
        raise RecordError(f"{path}: no {COMPARISON_FILE} here — is this a comparison?") from e
    except ValidationError as e:
        raise RecordError(f"{path / COMPARISON_FILE}: invalid: {e.errors()[0]['msg']}") from e


def find_comparison(runs_dir: Path, ref: str) -> Path | None:
    """A comparison by id, unique prefix or path; None when `ref` names no comparison."""
    if (Path(ref) / COMPARISON_FILE).is_file():
        return Path(ref).absolute()
    found = sorted(p for p in runs_dir.glob(f"{ref}*") if (p / COMPARISON_FILE).is_file()) if runs_dir.is_dir() else []
    if len(found) > 1:
        raise RecordError(f"'{ref}' matches {len(found)} comparisons in {runs_dir}; give more of the id")
    return found[0].absolute() if found else None


# --- taking turns ---------------------------------------------------------------------------------------


class Turns:
    """Arms hold the machine one at a time, in a fixed order; an arm that has finished drops out."""

    def __init__(self, order: list[str]) -> None:
        self.order, self.live, self.at = list(order), set(order), 0
        self.cond = threading.Condition()
        self.taken: dict[str, int] = dict.fromkeys(order, 0)  # turns each arm has had

    @contextlib.contextmanager
    def turn(self, name: str) -> Iterator[int]:
        """Wait for `name`'s turn; yields how many turns it had before this one."""
        with self.cond:
            self.cond.wait_for(lambda: self.order[self.at] == name)
            k = self.taken[name]
            self.taken[name] += 1
        try:
            yield k
        finally:
            with self.cond:
                self._advance()

    def leave(self, name: str) -> None:
        with self.cond:
            self.live.discard(name)
            if self.order[self.at] == name:
                self._advance()

    def _advance(self) -> None:
        n = len(self.order)
        for step in range(1, n + 1):
            if self.order[(self.at + step) % n] in self.live:
                self.at = (self.at + step) % n
                break
        self.cond.notify_all()


@dataclass
class ArmSession(Session):
    """A run that is one arm of a comparison: its attempts and its confirmation wait for its turn, and
    each attempt's verification seeds come from the stream shared by every arm's attempt of that number."""

    arm: str = ""
    turns: Turns | None = None
    seed: int = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:  # around each attempt and the confirmation
        assert self.turns is not None
        with self.turns.turn(self.arm) as k:
            target.SEEDS.rng = random.Random(self.seed * 100_003 + k)
            try:
                yield
            finally:
                target.SEEDS.rng = None


class ArmProgress(Progress):
    """Progress lines of one arm, prefixed with its name."""

    def __init__(self, arm: str, quiet: bool, started: float) -> None:
        super().__init__(quiet=quiet)
        self.arm, self.started = arm, started  # one clock for every arm's lines

    def _print(self, text: str) -> None:
        super()._print(f"[bold magenta]\\[{self.arm}][/bold magenta] {text}")


# --- a live comparison ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    path: Path
    record: ComparisonRecord
    errors: dict[str, BaseException] = field(default_factory=dict)


def run_comparison(src: Source, arms: list[ArmChoice], *, runs_dir: Path, options: Options, quiet: bool,
                   api_key: str | None = None) -> Outcome:
    """Open every arm (each endpoint checked) before any baseline work, share one baseline, run the
    arms in turns, then measure the head-to-head. Bad input raises BadInput, an unusable endpoint
    LLMError, both before anything is left behind."""
    names = [a.name for a in arms]
    if len(arms) < 2:
        raise BadInput("optimize compare needs two or more --model NAME=URL,MODEL (or NAME=replay:FILE)")
    if len(set(n.lower() for n in names)) != len(names):
        raise BadInput(f"--model: arm names must differ ({', '.join(names)})")
    options.lanes, options.executor = 1, "local"  # one attempt at a time per arm: the turns interleave them
    cid = new_run_id(f"compare-{src.spec.name if src.spec.name != 'target' else src.path.name}")
    path = (runs_dir / cid).absolute()
    path.mkdir(parents=True)
    sessions: list[ArmSession] = []
    clock = time.monotonic()
    try:
        shared = src
        if not src.in_place:  # one snapshot for all arms: the same commit, one repository
            base = gitops.snapshot(src.path, path / "repo")
            shared = Source(path / "repo", src.spec, src.spec_origin, in_place=True)
        else:
            base = gitops.head_commit(src.path)
        seed = random.SystemRandom().randrange(1, 2**31)
        for a in arms:
            s = new_session(shared, runs_dir=runs_dir, llm=a.llm, model_name=a.model, options=options,
                            ui=ArmProgress(a.name, quiet, clock), api_key=api_key, run_id=f"{cid}-{a.name}",
                            kind=ArmSession)
            assert isinstance(s, ArmSession)
            s.arm, s.seed = a.name, seed
            s.manifest.source = str(src.path)
            s.manifest.summary["comparison"] = cid
            s.store.write_manifest(s.manifest)
            sessions.append(s)
    except BaseException:
        for s in sessions:
            s.close("failed", "the comparison could not start")
            shutil.rmtree(s.store.path, ignore_errors=True)
        shutil.rmtree(path, ignore_errors=True)
        raise
    record = ComparisonRecord(
        comparison_id=cid, target=src.spec.name, spec=src.spec.model_dump(), repo=str(shared.path),
        base_commit=base, fingerprint=fingerprint(), options={**options.__dict__, "spec_origin": src.spec_origin},
        seed=seed, order=names, baseline_run=sessions[0].run_id,
        arms=[ArmRecord(name=a.name, run_id=s.run_id, run_dir=str(s.store.path), model=s.manifest.model,
                        endpoint=s.manifest.endpoint) for a, s in zip(arms, sessions, strict=True)])
    save(path, record)
    return drive(path, record, sessions)


def drive(path: Path, record: ComparisonRecord, sessions: list[ArmSession]) -> Outcome:
    """Shared baseline, arms in turns (one thread each), then the head-to-head."""
    first = sessions[0]
    turns = Turns(record.order)
    for s in sessions:
        s.turns = turns
    shared_ui = ArmProgress("all", first.ui.quiet, first.ui.started)
    lease.on_wait = lambda text: shared_ui.log(text, warn=True)  # the lease is shared too: not one arm's line
    done = Outcome(path, record)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(_signum: int, _frame: object) -> None:
        if all(s.interrupted for s in sessions):
            raise KeyboardInterrupt  # the second time: stop now
        for s in sessions:
            s.interrupted = True
        shared_ui.log("stopping every arm after its current step (Ctrl-C again to stop now)", warn=True)

    with contextlib.suppress(ValueError):  # not the main thread (a library caller): no signal handling
        for sig in previous:
            signal.signal(sig, on_signal)
    try:
        try:
            shared_ui.log(f"comparison {record.comparison_id}: measuring the shared baseline once for all arms")
            measure_baseline(first)
            for s in sessions[1:]:
                share_baseline(first, s, record.comparison_id)
        except BaseException as e:
            for s in sessions:
                s.close("failed", "baseline")
            finish(path, record, "failed", f"baseline: {e}".splitlines()[0])
            if isinstance(e, BaselineError):  # no repair phase here: every arm must start from the same code
                raise BaselineError(f"{e}\n(optimize compare starts from code that builds and passes its tests as "
                                    "it is; repair it first, e.g. `optimize repair`, and compare from that commit)") from e
            raise
        for s in sessions:
            s.resumed_baseline = True  # loop.run starts at the plan
        threads = [threading.Thread(target=_arm, args=(s, turns, done.errors), name=f"arm-{s.arm}", daemon=True)
                   for s in sessions]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)  # the main thread stays free to take signals
        except KeyboardInterrupt:  # the arms' threads end with the process; their records end now
            for s in sessions:
                s.close("interrupted", "interrupted")
            finish(path, record, "interrupted", "interrupted")
            raise
        statuses = [s.store.manifest().status for s in sessions]
        if done.errors or "failed" in statuses:
            finish(path, record, "failed", "; ".join(f"{k}: {e}" for k, e in done.errors.items()) or "an arm failed")
        elif "interrupted" in statuses:
            finish(path, record, "interrupted", "interrupted")
        else:
            record.head_to_head = head_to_head(path, record, [s.store for s in sessions], ui=shared_ui)
            finish(path, record, "finished", "every arm finished")
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    return done


def _arm(s: ArmSession, turns: Turns, errors: dict[str, BaseException]) -> None:
    try:
        loop.run(s)
    except LLMError as e:  # the endpoint's patience is spent: this arm's run is resumable on its own
        s.close("interrupted", "endpoint unusable")
        errors[s.arm] = e
    except BaseException as e:
        s.close("failed", f"internal error: {type(e).__name__}: {e}")
        errors[s.arm] = e
    finally:
        turns.leave(s.arm)


def finish(path: Path, record: ComparisonRecord, status: str, reason: str) -> None:
    record.status, record.stop_reason = status, reason  # type: ignore[assignment]
    save(path, record)
    with contextlib.suppress(Exception):  # the record is complete without the page; `optimize compare ID` redraws
        from agent.compare_report import write_html

        write_html(path)


def share_baseline(first: Session, s: Session, cid: str) -> None:
    """Give arm `s` the baseline `first` measured: the same commit (in its own worktree, built), the
    same value, noise floor, threshold, expected output and profile, recorded in its own run."""
    commit = first.manifest.base_commit
    s.base = s.best = verify.Arm(commit, gitops.add_worktree(s.repo, s.worktree("base"), commit))
    build = target.Target(s.spec, s.base.worktree).build()
    if build is not None and target.failure(build, "build-failed"):
        raise BaselineError(f"the base commit does not build in a second worktree:\n{build.tail()}")
    for name in ("baseline_value", "best_value", "noise", "min_effect", "seconds_per_pair", "profile_text", "gain"):
        if hasattr(first, name):  # fields of Session the baseline sets (some only in newer versions)
            setattr(s, name, getattr(first, name))
    s.expected = list(first.expected)
    src_profile = first.store.path / "iterations" / "000"
    if src_profile.is_dir():  # the same profile files, so each arm's report links its own copy
        shutil.copytree(src_profile, s.store.path / "iterations" / "000", dirs_exist_ok=True)
    if first.profile_dir is not None:
        with contextlib.suppress(ValueError):
            s.profile_dir = s.store.path / first.profile_dir.relative_to(first.store.path)
    event = next(e for e in first.store.events() if isinstance(e, BaselineEvent))
    s.store.append(event)
    gitops.set_branch(s.repo, s.prefix + "best", commit)
    s.save_manifest(baseline_value=s.baseline_value, noise_floor=s.noise, min_effect=s.min_effect,
                    test_gate=first.manifest.summary.get("test_gate"), shared_baseline=first.run_id)
    s.note(f"baseline shared from run {first.run_id} (comparison {cid}): measured once for every arm")


# --- the head-to-head -------------------------------------------------------------------------------------


@dataclass
class Best:
    name: str
    commit: str
    repo: Path
    confirm: ConfirmEvent | None
    is_base: bool  # no verified win: the run's best is its base commit

    def tree(self) -> str | None:
        return tree_of(str(self.repo), self.commit)


def tree_of(repo: str, commit: str) -> str | None:
    """The commit's tree: the same code has the same tree, whichever repository or snapshot holds it."""
    r = subprocess.run(["git", "-C", repo, "rev-parse", f"{commit}^{{tree}}"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def best_of(name: str, store: RunStore) -> Best:
    m = store.manifest()
    events = store.events()
    accepted = [e for e in events if isinstance(e, IterationEvent) and e.verdict == "accepted"]
    confirm = next((e for e in reversed(events) if isinstance(e, ConfirmEvent)), None)
    commit = accepted[-1].commit if accepted and accepted[-1].commit else m.base_commit
    return Best(name, commit, Path(m.repo), confirm if confirm and confirm.best_commit == commit else None,
                commit == m.base_commit)


def head_to_head(path: Path, record: ComparisonRecord, stores: list[RunStore], ui: Progress) -> list[Match]:
    """Each arm's best against the baseline (its confirmation, measured at the end in its turn) and every
    pair of arms' bests against each other, measured now, side by side, with the verifier's rule."""
    spec = parse_spec(record.spec, "comparison.json")
    bests = [best_of(a.name, st) for a, st in zip(record.arms, stores, strict=True)]
    base_repo = Path(stores[0].manifest().repo)
    min_effect = next((e.min_effect for e in stores[0].events() if isinstance(e, BaselineEvent)), 0.0)
    matches: list[Match] = []
    wt_root = path / "worktrees"
    made: list[tuple[Path, Path]] = []

    def checkout(repo: Path, commit: str, name: str) -> verify.Arm:
        wt = gitops.add_worktree(repo, wt_root / name, commit)
        made.append((repo, wt))
        build = target.Target(spec, wt).build()
        if build is not None and target.failure(build, "build-failed"):
            raise SampleError("crashed", f"{name} does not build for the head-to-head", build.tail())
        return verify.Arm(commit, wt)

    def measured(a: str, b: str, arm_a: verify.Arm, arm_b: verify.Arm, basis: str) -> Match:
        ui.log(f"head-to-head: {b} against {a}")
        m = verify.measure(spec, arm_a, arm_b, looks=[spec.decide.confirm_pairs], min_effect=min_effect)
        d = m.decision
        return Match(a=a, b=b, a_commit=arm_a.commit, b_commit=arm_b.commit, speedup=d.speedup, ci=d.ci,
                     verdict=d.verdict, pairs=d.pairs, statistic=d.statistic, basis=basis)

    try:
        arms: dict[str, verify.Arm] = {}
        for b in bests:  # against the baseline: the arm's own confirmation when it has one
            if b.is_base:
                matches.append(Match(a="baseline", b=b.name, a_commit=record.base_commit, b_commit=b.commit,
                                     speedup=1.0, ci=(1.0, 1.0), verdict="same",
                                     basis="no verified win: the arm's best is the baseline"))
            elif b.confirm is not None:
                c = b.confirm
                matches.append(Match(a="baseline", b=b.name, a_commit=record.base_commit, b_commit=b.commit,
                                     speedup=c.speedup, ci=c.ci, verdict=c.verdict, pairs=c.pairs,
                                     basis="the arm's confirmation: baseline and best side by side, at the end"))
            else:
                arms.setdefault("baseline", checkout(base_repo, record.base_commit, "baseline"))
                arms[b.name] = checkout(b.repo, b.commit, b.name)
                matches.append(measured("baseline", b.name, arms["baseline"], arms[b.name],
                                        "measured in the head-to-head (the arm had no confirmation)"))
        for i, x in enumerate(bests):
            for y in bests[i + 1:]:
                if x.commit == y.commit or (x.tree() or "x") == (y.tree() or "y"):
                    matches.append(Match(a=x.name, b=y.name, a_commit=x.commit, b_commit=y.commit, speedup=1.0,
                                         ci=(1.0, 1.0), verdict="same", basis="the same code"))
                    continue
                if x.name not in arms:
                    arms[x.name] = checkout(x.repo, x.commit, x.name)
                if y.name not in arms:
                    arms[y.name] = checkout(y.repo, y.commit, y.name)
                matches.append(measured(x.name, y.name, arms[x.name], arms[y.name],
                                        "bests side by side at the end, interleaved pairs"))
    except (SampleError, verify.OutputMismatch) as e:
        record.notes.append(f"head-to-head measurement failed: {e}")
    finally:
        for repo, wt in made:
            with contextlib.suppress(Exception):
                gitops.remove_worktree(repo, wt)
        with contextlib.suppress(OSError):
            wt_root.rmdir()
    return matches
