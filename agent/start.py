"""Starting a run: resolve the repo and spec, check everything that can fail up front, create the record.

Each problem is a `BadInput` with one clear message; nothing of the user's is touched before
every check has passed.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import SpecError, TargetSpec, load_spec, parse_spec
from agent.llm import Model, env_api_key
from agent.llm_record import RecordingModel, ReplayModel
from agent.records import Manifest, RunStore, new_run_id, now_iso
from agent.session import Options, Session
from agent.ui import Progress
from tools import detect, gitops, sh
from tools.fingerprint import fingerprint

if TYPE_CHECKING:
    from agent.openai_client import OpenAIModel

TARGETS = Path(__file__).resolve().parent.parent / "targets"
sh.register_secret(env_api_key())  # OPENAI_API_KEY left os.environ when agent.llm was imported; redact it too


class BadInput(Exception):
    """The user's input or configuration is wrong; exit code 2."""


@dataclass
class Source:
    path: Path
    spec: TargetSpec
    spec_origin: str
    in_place: bool


def bundled_targets() -> list[str]:
    return sorted(p.name for p in TARGETS.iterdir() if (p / "optimize.toml").is_file()) if TARGETS.is_dir() else []


def resolve(repo: str, target: Path | None) -> Source:
    path = Path(repo).expanduser()
    bundled = TARGETS / repo
    if not path.exists() and "/" not in repo and (bundled / "optimize.toml").is_file():
        path = bundled
    if not path.exists():
        raise BadInput(f"--repo {repo}: no such directory, and no bundled target of that name "
                       f"(bundled: {', '.join(bundled_targets()) or 'none'})")
    if not path.is_dir():
        raise BadInput(f"--repo {repo}: not a directory; point it at the root of the project to optimise")
    path = path.resolve()
    try:
        if target is not None:
            spec, origin = load_spec(target), str(target)
        elif (path / "optimize.toml").is_file():
            spec, origin = load_spec(path / "optimize.toml"), str(path / "optimize.toml")
        elif guessed := detect.guess(path):
            spec, origin = parse_spec(guessed[0], "guess"), f"guessed: {guessed[1]}"
        else:
            raise BadInput(f"{path}: no optimize.toml and nothing recognisable to build or test; "
                           f"run `optimize init --repo {repo}` and edit the file it writes")
    except SpecError as e:
        raise BadInput(f"invalid target spec: {e}") from e
    return Source(path, spec, origin, in_place=gitops.toplevel(path) is not None)


def check_repo(src: Source, allow_dirty: bool) -> None:
    if not src.in_place:
        return
    try:
        gitops.head_commit(src.path)
    except gitops.GitError as e:
        raise BadInput(str(e) + "; commit something first") from e
    dirty = gitops.dirty_paths(src.path)
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise BadInput(f"{src.path} has uncommitted changes ({shown}); commit or stash them first, "
                       "or pass --allow-dirty to optimise the last commit and leave them alone")


def check_runs_dir(runs_dir: Path) -> None:
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        probe = runs_dir / ".nightshift-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BadInput(f"--runs-dir {runs_dir}: not writable ({e.strerror}); choose another with --runs-dir") from e


def open_model(llm: str | None, model_name: str | None, store: RunStore, start: int = 0, *,
               options: Options | None = None, api_key: str | None = None,
               capabilities: dict | None = None) -> tuple[Model, str, str]:
    """The model for a run, recorded to llm.jsonl; the endpoint is checked before any baseline work.

    `capabilities` are what an earlier part of this run found out about the server (a resume keeps
    them): whether it enforces `response_format` (else probed now, once) and whether it can stream."""
    if llm and llm.startswith("replay:"):
        path = Path(llm.removeprefix("replay:")).resolve()
        if not path.is_file():
            raise BadInput(f"--llm {llm}: no such transcript file")
        inner: Model = ReplayModel(path, start=start)
        endpoint, name = f"replay:{path}", model_name or "replay"
    else:
        from agent.endpoint import endpoint_for  # here, not at the top: only a live run loads the openai SDK
        from agent.openai_client import OpenAIModel, check_endpoint, probe_structured_output

        options, caps = options or Options(), capabilities or {}
        ep = endpoint_for(llm, model_name, api_key, max_tokens=options.reply_tokens,
                          patience_s=options.endpoint_patience_s, backoff_max_s=options.endpoint_backoff_s,
                          stream=caps.get("stream", True))
        sh.register_secret(ep.api_key)  # never in a child's environment, redacted from every output
        check_endpoint(ep)
        structured = caps["structured_output"] if "structured_output" in caps else probe_structured_output(ep)
        inner, endpoint, name = OpenAIModel(ep, structured=structured), ep.base_url, ep.model
    return RecordingModel(inner, store.llm_path), name, endpoint


def attach_model(session: Session) -> None:
    """Let the live model report to the run (notes in events.jsonl, capabilities in run.json) and stop
    waiting for an endpoint when the run is stopping."""
    inner = getattr(session.model, "inner", None)
    client = sys.modules.get("agent.openai_client")  # loaded iff a live model was made; a replay never loads it
    if client is None or not isinstance(inner, client.OpenAIModel):
        return

    def notice(text: str) -> None:
        session.manifest.summary["llm"] = capabilities(inner)
        session.note(text, "warning")

    inner.on_notice = notice
    inner.cancelled = lambda: session.interrupted
    session.manifest.summary["llm"] = capabilities(inner)


def capabilities(model: OpenAIModel) -> dict:
    return {"structured_output": model.structured, "stream": model.stream,
            "tokenizer": model.tokenizer}


def new_session(src: Source, *, runs_dir: Path, llm: str | None, model_name: str | None, options: Options,
                ui: Progress, api_key: str | None = None, run_id: str | None = None,
                kind: type[Session] = Session) -> Session:
    """`run_id` and `kind` (a Session subclass): for the arms of a comparison (agent/compare.py)."""
    run_id = run_id or new_run_id(src.spec.name if src.spec.name != "target" else src.path.name)
    store = RunStore(runs_dir / run_id)
    store.path.mkdir(parents=True)
    try:
        model, name, endpoint = open_model(llm, model_name, store, options=options, api_key=api_key)
    except BaseException:
        shutil.rmtree(store.path, ignore_errors=True)  # nothing left behind by a run that never started
        raise
    if src.in_place:
        repo, base = src.path, gitops.head_commit(src.path)
    else:
        repo = store.path / "repo"
        base = gitops.snapshot(src.path, repo)
    manifest = Manifest(
        run_id=run_id, target=src.spec.name, spec=src.spec.model_dump(), repo=str(repo), source=str(src.path),
        in_place=src.in_place, base_commit=base, model=name, endpoint=endpoint,
        options={**options.__dict__, "spec_origin": src.spec_origin}, fingerprint=fingerprint(),
        sandbox=sh.sandbox_mode(), started=now_iso(), updated=now_iso())
    store.write_manifest(manifest)
    store.lock()
    session = kind(src.spec, store, manifest, model, repo, options, ui)
    attach_model(session)
    open_executor(session)
    return session


def open_executor(session: Session, *, fresh: bool = True) -> None:
    """`fresh=False` on a resume: the record holds finished work, so it stays whatever happens here."""
    from agent.executor import ExecutorError

    try:
        session.open_executor()
    except ExecutorError as e:
        session.store.unlock()
        if fresh:
            shutil.rmtree(session.store.path, ignore_errors=True)  # a run that never started leaves nothing
        raise BadInput(f"--executor ray: {e}") from e
