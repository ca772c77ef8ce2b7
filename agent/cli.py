"""The `optimize` command.

Exit codes: 0 done; 2 bad input or configuration; 3 the LLM endpoint cannot be used;
130 interrupted (the run can be resumed); 1 an internal error (a bug: please report it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent import show as shows
from agent.config import SpecError, dump_spec, load_spec, parse_spec
from agent.llm import LLMError
from agent.records import RecordError, find_run, list_runs
from agent.session import BaselineError, Options, Session, Stop

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Nightshift: an overnight performance engineer. `optimize --repo PATH` starts a run.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RunsDir = Annotated[Path, typer.Option("--runs-dir", resolve_path=True, help="Where run records live.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_RUNS = Path("runs")
ApiKey = Annotated[str | None, typer.Option("--api-key", help="Key for the endpoint (default: $OPENAI_API_KEY). "
                                                              "Never recorded.")]


class Exit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@app.command()
def run(
    repo: Annotated[str, typer.Option("--repo", help="A git repo, a plain folder, or a bundled target name.")],
    target: Annotated[Path | None, typer.Option("--target", help="The optimize.toml to use.")] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="Endpoint URL, or replay:FILE.jsonl.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model id on the endpoint.")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
    iterations: Annotated[int, typer.Option(help="Stop after this many attempts.")] = 12,
    hours: Annotated[float, typer.Option(help="Wall-clock budget, confirmation included.")] = 12.0,
    strategies: Annotated[int, typer.Option(help="Strategies asked for per plan.")] = 6,
    until: Annotated[str | None, typer.Option(help="Stop by this local time (HH:MM), confirmation included.")] = None,
    attempt_tool_calls: Annotated[int, typer.Option(help="Tool calls per attempt.")] = 60,
    max_tool_calls: Annotated[int | None, typer.Option(help="Tool calls for the whole run.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Token budget for the whole run.")] = None,
    context_limit: Annotated[int, typer.Option(help="Compact a conversation above this many tokens.")] = 160_000,
    allow_dirty: Annotated[bool, typer.Option(help="Optimise HEAD even with uncommitted changes (left alone).")] = False,
    profile: Annotated[bool, typer.Option(help="Profile the baseline and every new best.")] = True,
    lanes: Annotated[int, typer.Option(min=1, max=32, help="Attempts in flight at once (own worktree and "
                                                           "conversation each; measurements still one at a time).")] = 1,
    executor: Annotated[str, typer.Option(help="Where candidates are verified: local, or ray (benchmark hosts of a "
                                               "Ray cluster, one measurement per host; docs/ray.md).")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (HOST:6379, auto); default: the "
                                                            "running one, else a local one.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
    repair: Annotated[bool, typer.Option(help="When the unmodified code does not build or pass its tests, let the "
                                              "model repair it first (checked by the harness; branch .../setup).")] = True,
    api_key: ApiKey = None,
    endpoint_patience: Annotated[str, typer.Option(help="How long an endpoint outage after start-up is waited "
                                                        "out (90s, 30m, 2h); then the run stops, resumable.")] = "30m",
    reply_tokens: Annotated[int, typer.Option(min=16, help="Completion budget of one model reply (reasoning "
                                                           "and answer share it).")] = 32768,
    endpoint_backoff: Annotated[str, typer.Option(help="Longest wait between two tries of an endpoint that is "
                                                       "down (the waits double up to this).")] = "60s",
    error_backoff: Annotated[str, typer.Option(help="First pause after repeated model errors (doubles, up to "
                                                    "5 min; 0 for none).")] = "10s",
) -> None:
    """Start a run: baseline, plan, attempt, verify, keep only verified wins."""
    from agent import start
    from agent.ui import Progress

    if executor not in ("local", "ray"):
        raise Exit(2, f"--executor {executor}: expected local or ray")
    waits = {flag: _duration(flag, text) for flag, text in (("--endpoint-patience", endpoint_patience),
                                                            ("--endpoint-backoff", endpoint_backoff),
                                                            ("--error-backoff", error_backoff))}
    src = start.resolve(repo, target)
    start.check_repo(src, allow_dirty)
    start.check_runs_dir(runs_dir)
    if until is not None:
        hours = min(hours, _hours_until(until))
    options = Options(iterations=iterations, hours=hours, strategies=strategies, max_tool_calls=attempt_tool_calls,
                      max_total_tool_calls=max_tool_calls, max_tokens=max_tokens, profile=profile,
                      context_limit=context_limit, lanes=lanes, executor=executor, ray_address=ray_address,
                      endpoint_patience_s=waits["--endpoint-patience"],
                      endpoint_backoff_s=waits["--endpoint-backoff"],
                      reply_tokens=reply_tokens, error_backoff_s=waits["--error-backoff"],
                      repair=repair)
    ui = Progress(quiet=quiet)
    session = start.new_session(src, runs_dir=runs_dir, llm=llm, model_name=model, options=options, ui=ui,
                                api_key=api_key)
    ui.log(f"run {session.run_id} · target {src.spec.name} ({src.spec_origin}) · model {session.manifest.model} "
           f"· sandbox {session.manifest.sandbox} · record {session.store.path}")
    _drive(session)


def _duration(flag: str, text: str) -> float:
    from agent.config import _seconds

    try:
        return _seconds(text)
    except ValueError as e:
        raise Exit(2, f"{flag} {text}: {e}") from None


def _hours_until(hhmm: str) -> float:
    from datetime import datetime, timedelta

    try:
        t = datetime.strptime(hhmm, "%H:%M").time()
    except ValueError as e:
        raise Exit(2, f"--until {hhmm}: expected a local time like 07:30") from e
    now = datetime.now()
    end = datetime.combine(now.date(), t)
    if end <= now:
        end += timedelta(days=1)  # 07:30 given at 22:00 means tomorrow morning
    return (end - now).total_seconds() / 3600


def _drive(session: Session) -> None:
    from agent import loop

    def on_signal(signum: int, _frame: object) -> None:
        if session.interrupted:
            raise KeyboardInterrupt
        session.interrupted = True
        session.ui.log("stopping after the current step (Ctrl-C again to stop now)", warn=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        reason = loop.run(session)
    except BaselineError as e:
        session.close("failed", "baseline")
        raise Exit(2, str(e)) from e
    except LLMError as e:  # the endpoint's patience is spent: resumable
        session.close("interrupted", "endpoint unusable")
        raise Exit(3, str(e).replace("optimize resume RUN", f"optimize resume {session.run_id}")) from e
    except KeyboardInterrupt:
        session.close("interrupted", "interrupted")
        raise Exit(130, f"interrupted; continue with `optimize resume {session.run_id}`") from None
    except Exception as e:  # a bug: the record still ends with a status, and the user gets one line
        session.close("failed", f"internal error: {type(e).__name__}: {e}")
        raise
    _print_show(shows.show(session.store))
    if reason == "interrupted":
        raise Exit(130, f"interrupted; continue with `optimize resume {session.run_id}`")


@app.command("repair")
def repair_cmd(repo: Annotated[str, typer.Option("--repo", help="A git repo, a plain folder, or a bundled target.")],
               target: Annotated[Path | None, typer.Option("--target", help="The optimize.toml to use.")] = None,
               llm: Annotated[str | None, typer.Option("--llm", help="Endpoint URL, or replay:FILE.jsonl.")] = None,
               model: Annotated[str | None, typer.Option("--model", help="Model id on the endpoint.")] = None,
               runs_dir: RunsDir = DEFAULT_RUNS,
               tool_calls: Annotated[int, typer.Option(min=1, help="Tool calls for the repair.")] = 40,
               minutes: Annotated[float, typer.Option(help="Time budget of the repair.")] = 45.0,
               allow_dirty: Annotated[bool, typer.Option(help="Use HEAD even with uncommitted changes.")] = False,
               quiet: bool = False, api_key: ApiKey = None) -> None:
    """Only the repair phase: make the project build and pass its tests here, on branch optimize/RUN/setup."""
    from agent import repair as repairs
    from agent import start
    from agent.ui import Progress

    src = start.resolve(repo, target)
    start.check_repo(src, allow_dirty)
    start.check_runs_dir(runs_dir)
    options = Options(repair_tool_calls=tool_calls, repair_minutes=minutes, profile=False)
    session = start.new_session(src, runs_dir=runs_dir, llm=llm, model_name=model, options=options,
                                ui=Progress(quiet=quiet), api_key=api_key)
    try:
        setup = repairs.run(session)
    except BaselineError as e:
        session.close("failed", "repair rejected")
        raise Exit(2, str(e)) from e
    except (KeyboardInterrupt, Stop):
        session.close("interrupted", "interrupted during the repair")
        raise Exit(130, "interrupted during the repair; nothing of your checkout was touched") from None
    except Exception as e:
        session.close("failed", f"repair: {type(e).__name__}: {e}")
        raise
    session.close("finished", "repair done" if setup else "nothing to repair")
    if setup is None:
        out.print("the unmodified code builds and passes its tests here: nothing to repair")
    else:
        out.print(f"{setup.headline}: {setup.tests} tests pass; branch {setup.branch} ({setup.commit[:10]})",
                  markup=False)


@app.command()
def resume(run_id: Annotated[str, typer.Argument(help="Run id or prefix.")], runs_dir: RunsDir = DEFAULT_RUNS,
           llm: Annotated[str | None, typer.Option(help="Endpoint URL or replay:FILE (default: as recorded).")] = None,
           quiet: bool = False, api_key: ApiKey = None) -> None:
    """Continue a run that was interrupted, killed or cut off by an endpoint outage."""
    from agent import resume as resumes
    from agent.ui import Progress

    session = resumes.reopen(find_run(runs_dir, run_id), llm=llm, ui=Progress(quiet=quiet), api_key=api_key)
    _drive(session)


@app.command()
def replay(run_id: Annotated[str, typer.Argument(help="Run id or prefix.")], runs_dir: RunsDir = DEFAULT_RUNS,
           fork_at: Annotated[int | None, typer.Option(help="Continue live from this attempt.")] = None,
           llm: Annotated[str | None, typer.Option(help="Live endpoint for --fork-at.")] = None,
           as_json: AsJson = False, quiet: bool = False, api_key: ApiKey = None) -> None:
    """Re-execute a recorded run with its recorded model replies; re-measure and compare verdicts."""
    from agent import replay as replays
    from agent.ui import Progress

    if fork_at is not None and not llm:
        raise Exit(2, "--fork-at needs --llm URL: the live endpoint that continues the run")
    result = replays.replay(find_run(runs_dir, run_id), runs_dir=runs_dir, fork_at=fork_at, llm=llm,
                            ui=Progress(quiet=quiet or as_json), api_key=api_key)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table("#", "strategy", "recorded", "now", "recorded speedup", "speedup", "reproduced")
    for r in result["iterations"]:
        table.add_row(str(r["index"]), r["strategy"], f"{r['recorded_verdict']} ({r['recorded_reason']})",
                      f"{r['verdict']} ({r['reason']})", _x(r["recorded_speedup"]), _x(r["speedup"]),
                      "yes" if r["reproduced"] else "[red]no[/red]")
    out.print(table)
    if result["diverged_at"] is not None:
        out.print(f"[yellow]diverged at attempt {result['diverged_at']}[/yellow]")
    out.print(f"replay run: {result['replay_run_id']}")


def _x(value: float | None) -> str:
    return f"{value:.3f}x" if value else ""


@app.command()
def init(repo: Annotated[Path, typer.Option("--repo", help="The project to describe.")],
         force: Annotated[bool, typer.Option(help="Overwrite an existing optimize.toml.")] = False,
         check: Annotated[bool, typer.Option("--check", help="Run the spec once (on a copy) and say what works; "
                                             "with an existing optimize.toml, checks that one.")] = False) -> None:
    """Write a guessed optimize.toml for you to edit (and check it with --check)."""
    from agent import initcheck
    from tools import detect

    if not repo.is_dir():
        raise Exit(2, f"--repo {repo}: not a directory")
    path = repo / "optimize.toml"
    if path.exists() and not force and not check:
        raise Exit(2, f"{path} exists; pass --force to overwrite it (or --check to run it once)")
    if path.exists() and not force:
        try:
            spec = load_spec(path)
        except SpecError as e:
            raise Exit(2, f"invalid target spec: {e}") from e
    else:
        guessed = detect.guess(repo)
        if guessed is None:
            raise Exit(2, f"{repo}: nothing recognisable (Maven, Gradle, Zig, Cargo, Go, pytest, Make); "
                          "write optimize.toml by hand")
        spec = parse_spec(guessed[0], "guess")
        why = guessed[1]
        path.write_text(f"# Guessed by `optimize init`: {why}.\n# Check every command, then run "
                        f"`optimize init --check --repo {repo}` and `optimize --repo {repo}`.\n" + dump_spec(spec))
        out.print(f"wrote {path}:", markup=False)  # guesses quote spec sections such as [bench]
        for reason in why.split("; "):
            out.print(f"  - {reason}", markup=False)
    if check:
        ok, lines = initcheck.check(spec, repo)
        for line in lines:
            out.print(line, markup=False)
        if not ok:
            raise Exit(2, f"the spec does not run as it is: edit {path} and check again")


@app.command()
def runs(runs_dir: RunsDir = DEFAULT_RUNS, as_json: AsJson = False) -> None:
    """List the runs in the runs directory."""
    rows = [shows.run_row(m) for m in list_runs(runs_dir)]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("run", "status", "target", "started", "speedup")
    for m, row in zip(list_runs(runs_dir), rows, strict=True):
        table.add_row(row["run_id"], row["status"], row["target"], row["started"],
                      f"{m.summary['speedup']:.2f}x" if "speedup" in m.summary else "")
    out.print(table)


@app.command("show")
def show_cmd(run_id: Annotated[str, typer.Argument(help="Run id or prefix.")], runs_dir: RunsDir = DEFAULT_RUNS,
             as_json: AsJson = False,
             iteration: Annotated[int | None, typer.Option(help="Show one attempt in full.")] = None) -> None:
    """A run's verdicts, branches and numbers."""
    data = shows.show(find_run(runs_dir, run_id))
    if as_json:
        print(json.dumps(data, indent=1))
    elif iteration is not None:
        _print_iteration(data, iteration)
    else:
        _print_show(data)


def _fmt_ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _print_show(d: dict) -> None:
    unit = d["metric"]["unit"]
    if setup := d.get("setup"):  # the repair comes first: everything below is measured on top of it
        out.print(shows.setup_line(setup), markup=False)
    table = Table("#", "strategy", "verdict", "reason", "speedup", "CI", "flags", title=f"run {d['run_id']}")
    for it in d["iterations"]:
        style = {"accepted": "green", "rejected": "yellow"}.get(it["verdict"], "red")
        table.add_row(str(it["index"]), it["strategy"], f"[{style}]{it['verdict']}[/{style}]", it["reason"],
                      f"{it['speedup']:.3f}x" if it["speedup"] else "", _fmt_ci(it["ci"]), str(len(it["flags"])) if it["flags"] else "")
    out.print(table)
    for it in d["iterations"]:  # why, in words: the reason code alone does not say what happened
        if it["verdict"] != "accepted":
            why = next((ln.strip() for ln in (it["detail"] or "").splitlines() if ln.strip()), "")
            out.print(f"#{it['index']} {it['reason']}: {why[:200]}", markup=False)
        for flag in it["flags"]:
            out.print(f"#{it['index']} flag: {flag}", markup=False)
    b, base = d["best"], d["baseline"]
    if base["value"] is not None:
        line = (f"baseline {base['value']:.4g} {unit} → best {b['value']:.4g} {unit}: {b['speedup']:.2f}x "
                f"{_fmt_ci(b['ci'])} ({b['basis']}) on branch {b['branch']}")
        out.print(line, markup=False)
        if base["initial_value"] is not None and base["initial_value"] != base["value"]:
            out.print(f"(start-of-run baseline: {base['initial_value']:.4g} {unit}, measured at another time)")
        out.print(f"noise floor ±{base['noise_floor']:.1%}; wins below {base['min_effect']:.1%} are not accepted here")
    if d.get("reference"):
        r = d["reference"]
        out.print(f"reference ({r['cmd']}): {r['value']:.4g} {unit}; best is {r['speedup']:.2f}x {_fmt_ci(r['ci'])} of it")
    tokens = d.get("tokens") or {}
    if tokens:
        how = {"estimate": " (estimated: the server reported no usage; ~4 characters a token)",
               "tokenizer": " (counted with the server's tokenizer: it reported no usage)"}.get(d.get("tokens_counted", ""), "")
        out.print(f"tokens: {tokens.get('prompt', 0):,} prompt ({tokens.get('cached', 0):,} cached), "
                  f"{tokens.get('completion', 0):,} completion{how}", markup=False)
    if (gate := d.get("test_gate") or "").startswith("weak"):
        out.print(f"WEAK TEST GATE: {gate}", markup=False)
    out.print(f"status {d['status']} ({d['stop_reason']}) · record {d['record']}")


def _print_iteration(d: dict, index: int) -> None:
    it = next((i for i in d["iterations"] if i["index"] == index), None)
    if it is None:
        raise Exit(2, f"run {d['run_id']} has no iteration {index}")
    out.print(f"#{index} {it['strategy']}\nbranch {it['branch']} commit {it['commit']}\n"
              f"verdict {it['verdict']} ({it['reason']}) {it['speedup'] or ''} {_fmt_ci(it['ci'])}")
    for flag in it["flags"]:
        out.print(f"flag: {flag}")
    out.print(it["detail"])
    out.print(f"files: {Path(d['record']) / it['files']}")


@app.command()
def report(run_id: Annotated[str, typer.Argument(help="Run id or prefix.")], runs_dir: RunsDir = DEFAULT_RUNS,
           output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write the HTML file.")] = None) -> None:
    """Write the morning report: one self-contained HTML file."""
    from agent.report import write_report

    out.print(str(write_report(find_run(runs_dir, run_id), output)))


@app.command()
def ab(a: Annotated[str, typer.Option("--a", help="Baseline command.")],
       b: Annotated[str, typer.Option("--b", help="Candidate command.")],
       metric: Annotated[str | None, typer.Option(help="Regex whose group 1 is the metric; default: wall time.")] = None,
       better: Annotated[str | None, typer.Option(help="higher or lower (default: lower for time, higher for a metric).")] = None,
       min_effect: Annotated[float, typer.Option(help="Smallest win that counts, as a fraction.")] = 0.02,
       max_pairs: Annotated[int, typer.Option(help="Largest number of pairs (beyond 40 only while a win is likely).")] = 120,
       as_json: AsJson = False) -> None:
    """Interleaved A/B of two commands: is B better than A?"""
    from agent.ab import compare

    result = compare(a, b, metric=metric, better=better, min_effect=min_effect, max_pairs=max_pairs)
    if as_json:
        print(json.dumps(result))
    else:
        out.print(f"{result['verdict']}: B is {result['speedup']:.3f}x A {_fmt_ci(result['ci'])} after {result['pairs']} pairs")


@app.command()
def compare(
    refs: Annotated[list[str] | None, typer.Argument(help="Two or more existing runs to compare after the fact, "
                                                          "or one comparison id to show again.")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="A git repo, a plain folder, or a bundled target name.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="One arm: NAME=URL,MODEL or NAME=replay:FILE.jsonl "
                                                                   "(give two or more).")] = None,
    target: Annotated[Path | None, typer.Option("--target", help="The optimize.toml to use.")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
    iterations: Annotated[int, typer.Option(min=1, help="Attempts per arm.")] = 12,
    hours: Annotated[float, typer.Option(help="Wall-clock budget of the whole comparison.")] = 12.0,
    strategies: Annotated[int, typer.Option(help="Strategies asked for per plan.")] = 6,
    attempt_tool_calls: Annotated[int, typer.Option(help="Tool calls per attempt.")] = 60,
    max_tool_calls: Annotated[int | None, typer.Option(help="Tool calls per arm.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Token budget per arm.")] = None,
    profile: Annotated[bool, typer.Option(help="Profile the baseline and every new best.")] = True,
    allow_dirty: Annotated[bool, typer.Option(help="Optimise HEAD even with uncommitted changes (left alone).")] = False,
    replay: Annotated[str | None, typer.Option(help="Replay a recorded comparison arm by arm and compare verdicts.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table (TOML, per million tokens); default: "
                                                     "agent/compare_prices.toml.")] = None,
    reply_tokens: Annotated[int, typer.Option(min=16, help="Completion budget of one model reply.")] = 32768,
    context_limit: Annotated[int, typer.Option(help="Compact a conversation above this many tokens.")] = 160_000,
    error_backoff: Annotated[str, typer.Option(help="First pause after repeated model errors (0 for none).")] = "10s",
    as_json: AsJson = False, quiet: bool = False, api_key: ApiKey = None,
) -> None:
    """Model against model on your own code: one shared baseline, equal budgets, attempts in turns."""
    from agent import compare_runs as cmp
    from agent.compare_report import load_prices, print_console, summary, write_html

    load_prices(prices)  # a bad price table is refused before hours of work
    options = Options(iterations=iterations, hours=hours, strategies=strategies, max_tool_calls=attempt_tool_calls,
                      max_total_tool_calls=max_tool_calls, max_tokens=max_tokens, profile=profile,
                      reply_tokens=reply_tokens, context_limit=context_limit,
                      error_backoff_s=_duration("--error-backoff", error_backoff))
    try:
        path, rows = cmp.command(refs or [], model or [], repo=repo, target_file=target, runs_dir=runs_dir,
                                 options=options, allow_dirty=allow_dirty, replay=replay, quiet=quiet or as_json,
                                 api_key=api_key)
    except BaselineError as e:
        raise Exit(2, str(e)) from e
    except cmp.Unfinished as e:
        raise Exit(e.code, str(e)) from e
    write_html(path, prices)
    data = summary(path, prices)
    if rows is not None:
        data["replay"] = rows
    if as_json:
        print(json.dumps(data, indent=1))
        return
    print_console(data, out)
    for r in rows or []:
        out.print(f"replay {r['arm']} #{r['index']} {r['strategy']}: {r['recorded']} → {r['now']} "
                  f"{'reproduced' if r['reproduced'] else 'NOT reproduced'}", markup=False)


@app.command("profile")
def profile_cmd(repo: Annotated[str, typer.Option("--repo", help="A path or a bundled target name.")],
                target: Annotated[Path | None, typer.Option("--target")] = None,
                out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the profile.")] = None,
                as_json: AsJson = False) -> None:
    """Profile a target's benchmark: flame graph, collapsed stacks, allocations, top frames."""
    from agent.profiling import profile_repo

    result = profile_repo(repo, target, out_dir)
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        # the summary is the model's view (it repeats the top frames); people get the fields and one top list
        out.print("\n".join(f"{k}: {v}" for k, v in result.items() if k not in ("top", "summary")), markup=False)
        for f in result["top"][:10]:  # frame names such as "[unknown]" are text, not markup
            out.print(f"{f['self_pct']:6.1f}% self {f['total_pct']:6.1f}% total  {f['frame']}", markup=False)


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0].startswith("--") and argv[0] not in ("--help", "-h"):
        argv = ["run", *argv]  # `optimize --repo X` is `optimize run --repo X`
    from agent.start import BadInput

    try:
        app(argv, standalone_mode=False)
    except (BadInput, RecordError) as e:
        _fail(2, str(e))
    except Exit as e:
        _fail(e.code, str(e))
    except LLMError as e:
        _fail(3, str(e))
    except (KeyboardInterrupt, typer.Abort):
        _fail(130, "interrupted")
    except typer.TyperException as e:  # a usage mistake (unknown option, bad value, missing argument)
        _usage_error(e, argv)
    except Exception as e:  # a bug; the traceback only on request, never in the user's face
        if os.environ.get("NIGHTSHIFT_DEBUG"):
            raise
        _fail(1, f"internal error (a bug, please report it): {type(e).__name__}: {e}. "
                 "Set NIGHTSHIFT_DEBUG=1 to see the traceback.")


def _usage_error(e: typer.TyperException, argv: list[str]) -> None:
    if type(e).__name__ == "NoArgsIsHelpError":  # `optimize` or `optimize show` alone: the help is the answer
        e.show()  # type: ignore[attr-defined]
        sys.exit(0)
    ctx, names = getattr(e, "ctx", None), []
    while ctx is not None and ctx.parent is not None:  # the root's name is how Python was invoked
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    command = " ".join(["optimize", *names])
    message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
    opts = getattr(getattr(e, "param", None), "opts", None) or []
    for i, arg in enumerate(argv):  # say what was given: "abc" is easier to spot than "a valid integer"
        value = argv[i + 1] if arg in opts and i + 1 < len(argv) else next(
            (arg.split("=", 1)[1] for o in opts if arg.startswith(o + "=")), None)
        if value is not None and repr(value) not in message:
            message += f" (got {value!r})"
            break
    _fail(2, f"{command}: {message} (see `{command} --help`)")


def _fail(code: int, message: str) -> None:
    err.print("error: " if code != 130 else "", style="bold red", end="")
    err.print(message, markup=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
