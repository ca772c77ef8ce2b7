"""The whole loop end to end on a real git repo: through ReplayModel and through the real openai SDK
against the fake HTTP server; the two must agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_server import load_script
from tests.tiny_target import git, make_repo, transcript

EXPECTED = [("accepted", "faster"), ("rejected", "tests-failed"), ("rejected", "protected-path")]


def optimize(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=Path(__file__).resolve().parent.parent)


def show(runs: Path) -> dict:
    run_id = json.loads(optimize("runs", "--runs-dir", str(runs), "--json").stdout)[0]["run_id"]
    return json.loads(optimize("show", run_id, "--runs-dir", str(runs), "--json").stdout)


def check_run(data: dict, repo: Path) -> None:
    assert [(i["verdict"], i["reason"]) for i in data["iterations"]] == EXPECTED
    assert data["status"] == "finished"
    assert set(data) >= {"run_id", "status", "target", "metric", "baseline", "best", "iterations"}
    assert data["metric"] == {"unit": "Mops/s", "better": "higher"}
    best = data["best"]
    assert best["speedup"] > 1 and best["ci"][0] > 1 and best["branch"] == f"optimize/{data['run_id']}/best"
    branches = git(repo, "branch", "--list", "optimize/*", "--format=%(refname:short)").split()
    assert best["branch"] in branches
    for it in data["iterations"]:
        assert it["branch"] in branches and set(it) >= {"index", "strategy", "branch", "commit", "verdict",
                                                        "reason", "speedup", "ci"}
    assert git(repo, "rev-parse", best["branch"]) == git(repo, "rev-parse", data["iterations"][0]["branch"])
    # The user's checkout is untouched: same branch, clean tree, no stray worktrees.
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_replayed_transcript_runs_the_whole_loop(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    script = transcript(tmp_path / "t.jsonl")
    r = optimize("--repo", str(repo), "--llm", f"replay:{script}", "--runs-dir", str(tmp_path / "runs"),
                 "--no-profile")
    assert r.returncode == 0, r.stderr
    check_run(show(tmp_path / "runs"), repo)
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%B", "-1", "optimize/" + show(tmp_path / "runs")["run_id"] + "/best"],
                         capture_output=True, text=True).stdout
    assert "Closed-form sum of squares" in log and "verdict: accepted (faster)" in log


def test_same_run_through_the_openai_sdk_and_fake_server(tmp_path: Path, fake_openai) -> None:
    repo = make_repo(tmp_path / "repo")
    script = transcript(tmp_path / "t.jsonl")
    srv = fake_openai(load_script(script))
    r = optimize("--repo", str(repo), "--llm", srv.base_url, "--runs-dir", str(tmp_path / "runs"), "--no-profile",
                 "--iterations", "3", env={**_env(), "OPENAI_API_KEY": "sk-marker-key-123"})
    assert r.returncode == 0, r.stderr
    data = show(tmp_path / "runs")
    check_run(data, repo)
    # Kimi quirks on the wire: reasoning echoed under both keys, tool-call ids verbatim.
    later = [m for req in srv.requests[1:] for m in req["messages"] if m.get("role") == "assistant" and m.get("tool_calls")]
    assert later and all("reasoning" in m and "reasoning_content" in m for m in later)
    assert all(c["id"].startswith("functions.") for m in later for c in m["tool_calls"])
    record = Path(data["record"])
    assert not any("sk-marker-key-123" in p.read_text(errors="ignore") for p in record.rglob("*") if p.is_file()
                   and ".git" not in p.parts)


def _env() -> dict:
    import os

    return dict(os.environ)


@pytest.mark.parametrize("kill_after", ["plan", "attempt-002"])
def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, kill_after: str) -> None:
    """SIGTERM mid-run leaves an interrupted, resumable record; resume finishes with the same verdicts."""
    repo = make_repo(tmp_path / "repo")
    script = transcript(tmp_path / "t.jsonl")
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm", f"replay:{script}",
                             "--runs-dir", str(runs), "--no-profile"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    _wait_for_tag(runs, kill_after)
    proc.terminate()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    run_id = json.loads(optimize("runs", "--runs-dir", str(runs), "--json").stdout)[0]["run_id"]
    assert json.loads(optimize("show", run_id, "--runs-dir", str(runs), "--json").stdout)["status"] == "interrupted"
    r = optimize("resume", run_id, "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    check_run(show(runs), repo)


def _wait_for_tag(runs: Path, tag: str, timeout: float = 300) -> None:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        for llm in runs.glob("*/llm.jsonl"):
            if any(json.loads(line).get("tag") == tag for line in llm.read_text().splitlines() if line.strip()):
                return
        time.sleep(0.05)
    raise AssertionError(f"no reply tagged {tag} within {timeout}s")


def test_replay_reproduces_every_verdict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    runs = tmp_path / "runs"
    r = optimize("--repo", str(repo), "--llm", f"replay:{transcript(tmp_path / 't.jsonl')}", "--runs-dir", str(runs),
                 "--no-profile")
    assert r.returncode == 0, r.stderr
    run_id = show(runs)["run_id"]
    r = optimize("replay", run_id, "--runs-dir", str(runs), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["run_id"] == run_id and result["replay_run_id"] != run_id and result["diverged_at"] is None
    assert [(i["recorded_verdict"], i["verdict"]) for i in result["iterations"]] == [(v, v) for v, _ in EXPECTED]
    assert all(i["reproduced"] for i in result["iterations"])


def test_records_of_another_schema_version_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    runs = tmp_path / "runs"
    optimize("--repo", str(repo), "--llm", f"replay:{transcript(tmp_path / 't.jsonl')}", "--runs-dir", str(runs),
             "--no-profile", "--iterations", "1")
    manifest = next(runs.glob("*/run.json"))
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "schema_version": 99}))
    r = optimize("show", data["run_id"], "--runs-dir", str(runs), "--json")
    assert r.returncode == 2 and "version 99" in r.stderr and "Traceback" not in r.stderr


def test_ab_contract(tmp_path: Path) -> None:
    slow = "python -c \"sum(i*i for i in range(3_000_000)); print('v: 1')\""
    fast = "python -c \"sum(i*i for i in range(300_000)); print('v: 1')\""
    r = optimize("ab", "--a", slow, "--b", fast, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) >= {"verdict", "speedup", "ci", "pairs"}  # the contract; what decided it may be added
    assert result["verdict"] == "better" and result["ci"][0] > 1 and result["pairs"] >= 5
    flipped = json.loads(optimize("ab", "--a", fast, "--b", slow, "--json").stdout)
    assert flipped["verdict"] == "worse" and flipped["ci"][1] < 1
