"""`optimize compare`: two "models" of different skill on the bundled loganalyzer target, through the real CLI.

The strong and the weak model are the fake OpenAI-compatible HTTP server (tests/fakes) answering with the
scripted replies of tests/compare/strong.jsonl and weak.jsonl; the swapped comparison replays the first
one's recorded llm.jsonl files, arm by arm, in the other order. Every build, test and measurement is live.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import compare, compare_runs
from agent.records import AttemptStarted, BaselineEvent, IterationEvent, NoteEvent, RunStore
from agent.session import Options
from agent.start import BadInput
from tests import test_real_server as real
from tests.fakes.openai_server import FakeServer, load_script

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "compare"
BROWSER = Path(__file__).resolve().parent / "browser"
pytestmark = pytest.mark.compare
# A comparison measures for minutes on a quiet machine, for half an hour or more on one that other jobs keep
# busy (the host lease makes it wait for their measurements); its fixture's time counts against the first test.
LONG = pytest.mark.timeout(5400)
PRICES = """currency = "EUR"
[models.strong-model]
input = 1.0
cached = 0.5
output = 4.0
"""


def optimize(*args: str, timeout: float = 5400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def arm(data: dict, name: str) -> dict:
    return next(a for a in data["arms"] if a["name"] == name)


def match(data: dict, a: str, b: str) -> dict:
    return next(h for h in data["head_to_head"] if (h["a"], h["b"]) == (a, b))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare") / "runs"
    (path.parent / "prices.toml").write_text(PRICES)
    return path


@pytest.fixture(scope="module")
def first(runs: Path) -> Iterator[dict]:
    """strong (fake server) against weak (fake server), in that order."""
    servers = [FakeServer(load_script(HERE / "strong.jsonl"), models=("strong-model",)).start(),
               FakeServer(load_script(HERE / "weak.jsonl"), models=("weak-model",)).start()]
    try:
        r = optimize("compare", "--repo", "loganalyzer", "--model", f"strong={servers[0].base_url},strong-model",
                     "--model", f"weak={servers[1].base_url},weak-model", "--iterations", "2", "--no-profile",
                     "--runs-dir", str(runs), "--prices", str(runs.parent / "prices.toml"), "--json")
    finally:
        for s in servers:
            s.close()
    assert r.returncode == 0, r.stderr[-3000:]
    for s in servers:
        s.check()
    yield json.loads(r.stdout)


@pytest.fixture(scope="module")
def swapped(first: dict, runs: Path) -> dict:
    """The same two arms in the other order, each replayed from the first comparison's llm.jsonl."""
    llm = {a["name"]: Path(a["record"]) / "llm.jsonl" for a in first["arms"]}
    r = optimize("compare", "--repo", "loganalyzer", "--model", f"weak=replay:{llm['weak']}",
                 "--model", f"strong=replay:{llm['strong']}", "--iterations", "2", "--no-profile",
                 "--runs-dir", str(runs), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@LONG
def test_strong_arm_ahead_with_a_head_to_head_interval_excluding_one(first: dict) -> None:
    strong, weak = arm(first, "strong"), arm(first, "weak")
    assert (strong["accepted"], strong["attempts"]) == (2, 2), strong["reasons"]
    assert weak["accepted"] == 0 and weak["reasons"] == {"tests-failed": 1, "protected-path": 1}
    h = match(first, "strong", "weak")  # speedup of weak over strong
    assert h["verdict"] == "worse" and h["ci"][1] < 1.0 and h["pairs"] > 0, h
    assert match(first, "baseline", "strong")["ci"][0] > 1.0
    assert match(first, "baseline", "weak")["speedup"] == 1.0  # no verified win: its best is the baseline
    assert "strong's best is" in first["statement"] and "does not show" in first["statement"]
    assert [w["strategy"] for w in strong["only_here"]] == ["Track unique visitors in sets instead of lists",
                                                             "Parse timestamps by slicing; precompile the line regex"]
    assert weak["only_here"] == []


@LONG
def test_json_follows_the_contract(first: dict) -> None:
    assert {"comparison_id", "target", "baseline", "arms", "head_to_head"} <= set(first)
    assert first["target"] == "loganalyzer" and first["baseline"]["value"] > 0
    for a in first["arms"]:
        assert {"name", "model", "endpoint", "run_id", "best", "accepted", "attempts", "tool_calls", "tokens",
                "cost", "wall_s"} <= set(a)
        assert {"value", "speedup", "ci"} <= set(a["best"]) and set(a["tokens"]) == {"prompt", "completion", "cached"}
        assert a["tokens"]["prompt"] > 0 and a["tool_calls"] > 0 and a["wall_s"] > 0
    strong, weak = arm(first, "strong"), arm(first, "weak")
    t = strong["tokens"]  # the price table's rates, per million tokens; weak-model has none: blank
    assert strong["cost"] == pytest.approx(((t["prompt"] - t["cached"]) * 1.0 + t["cached"] * 0.5
                                            + t["completion"] * 4.0) / 1e6)
    assert weak["cost"] is None and first["prices"]["currency"] == "EUR"
    for h in first["head_to_head"]:
        assert {"a", "b", "speedup", "ci", "verdict"} <= set(h)
    shown = optimize("compare", first["comparison_id"], "--runs-dir", str(Path(first["record"]).parent), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["head_to_head"] == first["head_to_head"]


@LONG
def test_shared_baseline_equal_budgets_and_turns(first: dict) -> None:
    stores = {a["name"]: RunStore(Path(a["record"])) for a in first["arms"]}
    ms = {n: s.manifest() for n, s in stores.items()}
    events = {n: s.events() for n, s in stores.items()}
    baselines = [next(e for e in ev if isinstance(e, BaselineEvent)) for ev in events.values()]
    assert baselines[0] == baselines[1]  # one measurement, recorded in both runs
    assert ms["strong"].base_commit == ms["weak"].base_commit and ms["strong"].repo == ms["weak"].repo
    assert ms["strong"].spec == ms["weak"].spec and ms["strong"].options == ms["weak"].options
    assert ms["strong"].options["iterations"] == 2 and ms["strong"].options["lanes"] == 1
    calibrations = {n: [e for e in ev if isinstance(e, NoteEvent) and e.text.startswith("A/A on this machine")]
                    for n, ev in events.items()}
    assert len(calibrations["strong"]) == 1 and calibrations["weak"] == []  # calibrated once, by the first arm
    assert any("baseline shared from run" in e.text for e in events["weak"] if isinstance(e, NoteEvent))
    record = compare.load(Path(first["record"]))
    assert record.order == ["strong", "weak"] and record.baseline_run == ms["strong"].run_id
    # in turns: each attempt starts only after the other arm's previous attempt was decided
    timeline = sorted((e.time, n, type(e).__name__) for n, ev in events.items() for e in ev
                      if isinstance(e, AttemptStarted | IterationEvent))
    assert [(n, kind) for _, n, kind in timeline] == [
        ("strong", "AttemptStarted"), ("strong", "IterationEvent"), ("weak", "AttemptStarted"),
        ("weak", "IterationEvent"), ("strong", "AttemptStarted"), ("strong", "IterationEvent"),
        ("weak", "AttemptStarted"), ("weak", "IterationEvent")]
    branches = subprocess.run(["git", "-C", ms["strong"].repo, "branch", "--list", "optimize/*"],
                              capture_output=True, text=True, check=True).stdout
    assert f"optimize/{ms['strong'].run_id}/best" in branches and f"optimize/{ms['weak'].run_id}/best" in branches


@LONG
def test_swapped_arms_mirror_and_replay_reproduces_every_verdict(first: dict, swapped: dict) -> None:
    h = match(swapped, "weak", "strong")  # now the speedup of strong over weak
    assert h["verdict"] == "better" and h["ci"][0] > 1.0, h
    assert compare.load(Path(swapped["record"])).order == ["weak", "strong"]
    rows = compare_runs.reproduced(compare.load(Path(first["record"])), compare.load(Path(swapped["record"])))
    assert len(rows) == 4 and all(r["reproduced"] for r in rows), rows
    assert swapped["baseline"]["value"] > 0 and swapped["comparison_id"] != first["comparison_id"]


@LONG
def test_after_the_fact_compares_runs_and_refuses_what_differs(first: dict, swapped: dict, runs: Path,
                                                               tmp_path: Path) -> None:
    strong, weak = arm(first, "strong")["run_id"], arm(swapped, "weak")["run_id"]  # separate snapshots, same code
    r = optimize("compare", strong, weak, "--runs-dir", str(runs), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout)
    assert data["kind"] == "after-the-fact" and match(data, "A", "B")["verdict"] == "worse"
    assert any("measured its own baseline" in n for n in data["notes"])

    def altered(run_id: str, what: str, change) -> str:  # a copy of a real record with one thing different
        copy = runs / f"{run_id}-other-{what}"
        shutil.copytree(runs / run_id, copy, ignore=shutil.ignore_patterns("repo"))
        m = json.loads((copy / "run.json").read_text())
        change(m)
        (copy / "run.json").write_text(json.dumps(m))
        return copy.name

    other_cpu = altered(weak, "cpu", lambda m: m["fingerprint"].update(cpu_model="another CPU"))
    other_spec = altered(weak, "spec", lambda m: m["spec"]["decide"].update(min_effect=0.5))
    for other, why in ((other_cpu, "different machines or toolchains (differing: cpu_model)"),
                       (other_spec, "different target specs (differing: decide)")):
        r = optimize("compare", strong, other, "--runs-dir", str(runs))
        assert r.returncode == 2 and why in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        shutil.rmtree(runs / other)


@LONG
def test_report_page_in_a_browser(first: dict, tmp_path: Path) -> None:
    page = Path(first["record"]) / "comparison.html"
    assert page.is_file()
    if not (shutil.which("node") and (BROWSER / "node_modules" / "playwright-core").is_dir()):
        pytest.skip("node and playwright-core (make setup) are needed for the browser check")
    r = subprocess.run(["node", str(BROWSER / "check_compare.mjs"), str(page), str(tmp_path / "compare.png")],
                       capture_output=True, text=True, timeout=120, cwd=BROWSER)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["problems"] == [] and seen["scripts"] == 0
    assert all(u.startswith("file:") for u in seen["requests"])  # nothing loaded from anywhere
    assert [row[0] for row in seen["arms"]] == ["strong\nreport", "weak\nreport"]
    assert seen["arms"][0][2] == "2" and seen["arms"][1][2] == "0"  # verified wins
    assert seen["lines"] == 2 and seen["wins"] == 2  # one line per arm, a dot per verified win
    assert seen["chartBox"][0] > 300 and seen["chartBox"][1] > 150
    assert "does not show" in seen["statement"]
    assert any(r[0] == "weak" and r[1] == "strong" and r[4] == "worse" for r in seen["headToHead"])
    assert len(seen["only"]) == 2


def test_bad_input_is_refused_before_anything_is_left_behind(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    options = Options(iterations=1, profile=False)
    strong, weak = f"a=replay:{HERE / 'strong.jsonl'}", f"b=replay:{HERE / 'weak.jsonl'}"
    cases = [
        ([], ["a b=replay:x", "c=replay:y"], "arm name"),
        ([], ["a=ftp://x", "b=replay:y"], "neither an http(s)"),
        ([], [strong, "A=replay:y"], "must differ"),
        ([], [strong, "b=replay:no/such.jsonl"], "no such transcript"),
        (["nosuchcomparison"], [], "is no comparison"),
        (["r1", "r2"], [strong, weak], "not both"),
    ]
    for refs, arms, why in cases:
        with pytest.raises(BadInput, match=re.escape(why)):
            compare_runs.command(refs, arms, repo=None if refs == ["nosuchcomparison"] else "loganalyzer", target_file=None, runs_dir=runs, options=options,
                            allow_dirty=False, replay=None, quiet=True, api_key=None)
    with pytest.raises(BadInput, match="needs --repo"):
        compare_runs.command([], [strong, weak], repo=None, target_file=None, runs_dir=runs, options=options,
                        allow_dirty=False, replay=None, quiet=True, api_key=None)
    assert not runs.exists() or list(runs.iterdir()) == []  # nothing left by a comparison that never started
    # through the command line: exit 2 and one line, for a usage mistake and for a bad price table
    r = optimize("compare", "--repo", "loganalyzer", "--model", strong, "--runs-dir", str(runs), timeout=300)
    assert r.returncode == 2 and "two or more" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    prices = tmp_path / "bad.toml"
    prices.write_text('[models.m]\ninput = "cheap"\n')
    r = optimize("compare", "--repo", "loganalyzer", "--model", strong, "--model", weak, "--prices", str(prices),
                 "--runs-dir", str(runs), timeout=300)
    assert r.returncode == 2 and "expected input, cached or output" in r.stderr and "Traceback" not in r.stderr
    assert list(runs.iterdir()) == []


def test_an_unreachable_endpoint_exits_3_before_any_work(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    r = optimize("compare", "--repo", "loganalyzer", "--model", "a=replay:tests/compare/strong.jsonl",
                 "--model", "b=http://127.0.0.1:9/v1,m", "--runs-dir", str(runs), timeout=300)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert list(runs.iterdir()) == []  # the first arm's record and the comparison's folder are gone too


@pytest.fixture
def small_model(tmp_path: Path) -> Iterator[real.LlamaServer]:
    if not Path(real.LLAMA_SERVER).is_file():
        pytest.skip(f"no llama-server at {real.LLAMA_SERVER} (make llm-server builds it)")
    server = real.LlamaServer(real._gguf(), tmp_path / "llama-server.log").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.real_server
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_real_small_model_as_one_arm(tmp_path: Path, small_model: real.LlamaServer) -> None:
    """llama.cpp's llama-server with SmolLM2-135M (tests/test_real_server.py) against the scripted strong arm:
    the small model cannot optimise anything, but its arm must run to its budget beside the other, every attempt
    with a verdict and a reason, and the comparison must end with a head-to-head."""
    spec = tmp_path / "loganalyzer-fast.toml"
    spec.write_text(real.FAST_SPEC)
    r = optimize("compare", "--repo", "loganalyzer", "--target", str(spec), "--model", f"strong=replay:{HERE / 'strong.jsonl'}",
                 "--model", f"small={small_model.base_url},{real.MODEL}", "--iterations", "1", "--no-profile", "--reply-tokens", "160",
                 "--attempt-tool-calls", "3", "--strategies", "3", "--error-backoff", "0",
                 "--context-limit", str(real.CONTEXT - 1024), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout)
    small = arm(data, "small")
    assert small["attempts"] >= 1 and set(small["reasons"]) <= real.REASONS and small["model"] == real.MODEL
    assert arm(data, "strong")["accepted"] == 1
    h = match(data, "strong", "small")
    assert h["verdict"] in ("worse", "same", "inconclusive") and (h["pairs"] > 0 or h["basis"] == "the same code")


def test_turns_alternate_arm_by_arm_and_an_arm_that_ends_drops_out() -> None:
    import threading
    import time

    turns = compare.Turns(["A", "B", "C"])
    seen: list[tuple[str, int]] = []
    plans = {"A": 3, "B": 1, "C": 3}  # B's run ends after one attempt

    def arm(name: str) -> None:
        try:
            for _ in range(plans[name]):
                time.sleep(0.01 * (ord(name) - 64))  # each arm "plans" for a different time before asking
                with turns.turn(name) as k:
                    seen.append((name, k))
                    time.sleep(0.01)
        finally:
            turns.leave(name)

    threads = [threading.Thread(target=arm, args=(n,)) for n in "CBA"]  # started in another order
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [("A", 0), ("B", 0), ("C", 0), ("A", 1), ("C", 1), ("A", 2), ("C", 2)]
