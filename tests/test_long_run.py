"""A compressed overnight run: the real `optimize` process against the fake HTTP model server, 44
strategies and 1,000+ tool calls (bounded by attempts, not by the clock, so a loaded machine only makes it
slower), and a second short run ended by its deadline.

The server checks every request against a context window (12,000 tokens with compaction above
6,000, the same proportions as Kimi's 262K window with the 160K default) and that the system prompt
and tools never change. Then the record must hold every attempt, no rejected idea twice, token
totals that match what the server saw, and a confirmation written before the deadline's margin.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.fakes.openai_server import FakeServer
from tests.longrun import scenario as sc

ATTEMPTS = 44
DEADLINE_S = 40.0  # the deadline run: long enough for a baseline and a first accepted attempt when loaded
LIMIT = 6_000  # --context-limit, tokens
WINDOW = 12_000  # what the server accepts, tokens
MARGIN_S = 15.0  # the last verification and the confirmation may end this much after the deadline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("longrun")
    repo = sc.make_target(tmp / "repo")
    model = sc.ScriptedModel()
    srv = FakeServer(model, hooks=sc.hooks(WINDOW)).start()  # its hook failures are asserted below
    try:
        epoch, started = time.time(), time.monotonic()
        proc = sc.start_run(repo, tmp / "runs", srv.base_url, hours=2.0, iterations=ATTEMPTS, context_limit=LIMIT)
        rss = sc.RssSampler(proc.pid, tmp / "runs").start()
        _, err = proc.communicate(timeout=1800)
        wall = time.monotonic() - started
        rss.stop()
    finally:
        srv.close()
    run = sc.run_dir(tmp / "runs")
    return {"rc": proc.returncode, "stderr": err, "wall": wall, "epoch": epoch, "rss": rss, "run": run, "model": model, "server": srv,
            "manifest": json.loads((run / "run.json").read_text()), "events": sc.events(run),
            "exchanges": sc.exchanges(run)}


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def test_every_request_fits_the_window_and_keeps_the_prefix(long_run: dict) -> None:
    srv, model = long_run["server"], long_run["model"]
    assert long_run["rc"] == 0, long_run["stderr"][-3000:]
    assert srv.failures == []
    # The check had teeth: conversations really grew past the compaction threshold and were compacted.
    sizes = [len(json.dumps(r["messages"])) + len(json.dumps(r.get("tools", []))) for r in turns(srv)]
    assert max(sizes) // 4 > LIMIT
    compacted = {e["tag"] for e in long_run["exchanges"] if e["tag"].endswith("-compact")}
    assert model.compactions == sum(e["tag"].endswith("-compact") for e in long_run["exchanges"]) > 0
    assert len(compacted) >= 10


def test_deadline_ends_the_run_with_the_confirmation_written(tmp_path) -> None:
    repo = sc.make_target(tmp_path / "repo")
    srv = FakeServer(sc.ScriptedModel(), hooks=sc.hooks(WINDOW)).start()
    try:
        started = time.monotonic()
        proc = sc.start_run(repo, tmp_path / "runs", srv.base_url, hours=DEADLINE_S / 3600, iterations=1000,
                            context_limit=LIMIT)
        _, err = proc.communicate(timeout=DEADLINE_S + 180)
        wall = time.monotonic() - started
    finally:
        srv.close()
    assert proc.returncode == 0, err[-3000:]
    run = sc.run_dir(tmp_path / "runs")
    m, events = json.loads((run / "run.json").read_text()), sc.events(run)
    assert m["status"] == "finished" and m["stop_reason"] == "deadline"
    assert _of(events, "finished")[-1]["stop_reason"] == "deadline"
    elapsed = m["summary"]["elapsed_s"]
    assert DEADLINE_S - 30 <= elapsed <= DEADLINE_S + MARGIN_S, elapsed
    assert wall <= DEADLINE_S + MARGIN_S + 20  # start-up and the final `show` included
    confirm = _of(events, "confirmation")
    assert len(confirm) == 1 and confirm[0]["speedup"] > 1 and m["summary"]["confirmed"] is True
    assert events[-1]["type"] == "finished" and confirm[0]["time"] <= events[-1]["time"]


def test_forty_strategies_and_a_thousand_tool_calls_all_recorded(long_run: dict) -> None:
    events, m = long_run["events"], long_run["manifest"]
    started, done = _of(events, "attempt-started"), _of(events, "iteration")
    assert len(done) == ATTEMPTS and m["stop_reason"] == "iteration budget spent"
    assert [e["index"] for e in done] == [e["index"] for e in started] == list(range(1, len(done) + 1))
    assert all(e["verdict"] and e["reason"] for e in done)
    assert m["summary"]["tool_calls"] == sum(e["tool_calls"] for e in done) >= 1000
    print(f"\nlong run: {len(done)} attempts, {m['summary']['tool_calls']} tool calls, "
          f"{long_run['model'].compactions} compactions in {m['summary']['elapsed_s']:.0f} s")
    # Every attempt carried on through its compactions to its own finish call.
    finished = done
    assert all(e["tool_calls"] == len(sc.attempt_calls(e["index"], "faster")) for e in finished)
    expected = {"faster": {"faster", "not-significant", "slower", "guard-metric"}, "broken": {"tests-failed"}, "no-op": {"no-change"}}
    for e in finished:
        assert e["reason"] in expected[sc.KINDS[(e["index"] - 1) % 3]], e
    assert done[0]["verdict"] == "accepted"
    assert all(set(e["timing"]) == {"wall_s", "commands_s", "model_s", "wait_s", "harness_s"} for e in done)


def test_no_rejected_strategy_is_attempted_twice(long_run: dict) -> None:
    done, model = _of(long_run["events"], "iteration"), long_run["model"]
    titles = [e["strategy"]["title"] for e in done]
    rejected = {e["strategy"]["title"] for e in done if e["verdict"] != "accepted"}
    assert all(titles.count(t) == 1 for t in rejected)
    # ... although the model proposed rejected ideas again in most plans; each was skipped with a note.
    assert len(model.repeats_offered) >= 5
    notes = [e["text"] for e in _of(long_run["events"], "note")]
    for title in model.repeats_offered:
        assert any(n.startswith(f"skipping '{title}': repeats rejected attempt") for n in notes), title


def test_the_notebook_holds_every_outcome(long_run: dict) -> None:
    """Each attempt's brief lists the outcome of the attempt before it; the last brief lists the latest 60."""
    done = {e["index"]: e for e in _of(long_run["events"], "iteration")}
    briefs: dict[int, str] = {}
    for r in long_run["server"].requests:
        if m := re.match(r"Strategy #(\d+)", r["messages"][1]["content"]):
            briefs.setdefault(int(m.group(1)), r["messages"][1]["content"])
    assert set(briefs) == set(done)

    def line(e: dict) -> str:
        return f"#{e['index']:03d} {e['strategy']['title']} [work.py] -> {e['verdict']} ({e['reason']}"

    for index, brief in briefs.items():
        if index > 1:
            assert line(done[index - 1]) in brief, index
    last = max(briefs)
    listed = [done[i] for i in range(max(1, last - 60), last)]
    assert all(line(e) in briefs[last] for e in listed)
    assert len(re.findall(r"^#\d{3} ", briefs[last], re.M)) == len(listed)


def turns(srv: FakeServer) -> list[dict]:
    """The agent's requests: all but the one structured-output probe a live run sends first."""
    return [r for r in srv.requests if ((r.get("response_format") or {}).get("json_schema") or {}).get("name") != "probe"]


def test_token_totals_match_what_the_server_saw(long_run: dict) -> None:
    tokens, srv = long_run["manifest"]["summary"]["tokens"], long_run["server"]
    # The fake server counts 4 characters a token of messages + tools: recompute from its own log.
    prompt = sum((len(json.dumps(r["messages"])) + len(json.dumps(r.get("tools", [])))) // 4 for r in turns(srv))
    assert tokens["prompt"] == prompt
    recorded = {k: sum(e["usage"][f"{k}_tokens"] for e in long_run["exchanges"])
                for k in ("prompt", "completion", "cached")}
    assert recorded == tokens and len(long_run["exchanges"]) == len(turns(srv))
    share = tokens["cached"] / tokens["prompt"]
    assert 0.5 < share < 1  # appending to history keeps most of each prompt cached
    print(f"\nlong run: {len(srv.requests)} requests, prompt {tokens['prompt']:,} / completion "
          f"{tokens['completion']:,} / cached {tokens['cached']:,} tokens, cache-hit share {share:.1%}")


def test_the_report_is_written(long_run: dict) -> None:
    pytest.importorskip("agent.report")
    report = long_run["run"] / "report.html"  # written by the loop before it exits
    assert report.is_file() and report.stat().st_mtime >= long_run["epoch"]
    text = report.read_text()
    done = _of(long_run["events"], "iteration")
    assert all(e["strategy"]["title"] in text for e in done)


def test_agent_memory_stays_flat(long_run: dict) -> None:
    """Records stream to disk: the agent's RSS does not grow with the number of iterations."""
    rss = long_run["rss"]
    during = rss.during(10)
    assert len(during) >= 20
    peak = max(v for _, v in rss.samples)
    print(f"\nagent RSS: {during[0] / 1024:.1f} MB at iteration 10, {min(during) / 1024:.1f}-{max(during) / 1024:.1f} MB "
          f"until the last, peak {peak / 1024:.1f} MB (confirmation and report included)")
    assert max(during) - min(during) < 10 * 1024
    assert peak < 300 * 1024
