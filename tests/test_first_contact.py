"""What a new user meets first: relative paths, a runs folder with other files in it, a host lease held by
someone else, and one headline pair everywhere. Real runs through the CLI, real processes, real flocks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_loop import EXPECTED, check_run, show
from tests.tiny_target import make_repo, transcript

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(1800)  # whole runs; a loaded machine (the point of the lease tests) is slow


def optimize(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**_env(), "PYTHONPATH": str(ROOT)})


def _env() -> dict:
    import os

    return dict(os.environ)


def test_relative_runs_dir_and_transcript_from_another_folder(tmp_path: Path) -> None:
    """The README's demo used a relative runs dir and broke: the worktree nested inside the repository."""
    repo = make_repo(tmp_path / "repo")
    work = tmp_path / "cwd"
    work.mkdir()
    transcript(work / "t.jsonl")
    r = optimize("--repo", "../repo", "--llm", "replay:t.jsonl", "--runs-dir", "runs", "--no-profile", cwd=work)
    assert r.returncode == 0, r.stderr
    listed = json.loads(optimize("runs", "--runs-dir", "runs", "--json", cwd=work).stdout)
    assert len(listed) == 1
    data = json.loads(optimize("show", listed[0]["run_id"], "--runs-dir", "runs", "--json", cwd=work).stdout)
    check_run(data, repo)
    assert Path(data["record"]).is_absolute() and Path(data["record"]).parent == work / "runs"
    assert not (repo / "runs").exists()  # nothing nested inside the user's repository


def test_runs_listing_skips_stray_files(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".gitkeep").write_text("")
    (runs / "notes.txt").write_text("my notes")
    (runs / "empty-folder").mkdir()
    r = optimize("runs", "--runs-dir", str(runs), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr
    r = optimize("runs", "--runs-dir", str(runs))
    assert r.returncode == 0 and "Traceback" not in r.stderr
    r = optimize("show", ".gitkeep", "--runs-dir", str(runs))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


HOLDER = """
import sys, time
from agent import lease
lease.owner = "run-of-someone-else"
with lease.exclusive("their measurement"):
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_a_lease_wait_names_the_holder_and_is_counted_apart(tmp_path: Path) -> None:
    from agent import lease

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "2.5"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        lines: list[str] = []
        lease.on_wait = lines.append
        before, t0 = lease.waited_s(), time.monotonic()
        with lease.exclusive("our measurement"):
            waited = time.monotonic() - t0
    finally:
        lease.on_wait = None
        holder.wait(timeout=30)
    assert waited > 1.0
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "run-of-someone-else" in lines[0]
    assert "their measurement" in lines[0]
    assert abs((lease.waited_s() - before) - waited) < 0.5
    assert not any(h["pid"] == holder.pid for h in lease.holders())  # its holder file went with it


def test_waiting_run_says_so_and_counts_the_wait(tmp_path: Path) -> None:
    """A whole run queued behind another process's measurement: a progress line names the holder, and the
    iteration's timing has the wait in its own column, not in harness overhead."""
    repo = make_repo(tmp_path / "repo")
    script = transcript(tmp_path / "t.jsonl")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "12"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = optimize("--repo", str(repo), "--llm", f"replay:{script}", "--runs-dir", str(tmp_path / "runs"),
                     "--no-profile", "--iterations", "1")
    finally:
        holder.wait(timeout=30)
    assert r.returncode == 0, r.stderr
    said = r.stdout + r.stderr
    assert "waiting for the host lease" in said and "run-of-someone-else" in said and f"pid {holder.pid}" in said
    events = [json.loads(line) for line in next((tmp_path / "runs").glob("*/events.jsonl")).read_text().splitlines()]
    timing = next(e for e in events if e.get("type") == "iteration")["timing"]
    assert set(timing) >= {"wall_s", "commands_s", "model_s", "wait_s", "harness_s"} and timing["harness_s"] >= 0


def test_show_pairs_the_headline_with_the_confirmation(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    runs = tmp_path / "runs"
    r = optimize("--repo", str(repo), "--llm", f"replay:{transcript(tmp_path / 't.jsonl')}", "--runs-dir", str(runs),
                 "--no-profile")
    assert r.returncode == 0, r.stderr
    data = show(runs)
    run_id = data["run_id"]
    assert [(i["verdict"], i["reason"]) for i in data["iterations"]] == EXPECTED
    events = [json.loads(line) for line in (runs / run_id / "events.jsonl").read_text().splitlines()]
    confirm = next(e for e in events if e.get("type") == "confirmation")
    baseline = next(e for e in events if e.get("type") == "baseline")
    assert data["baseline"]["value"] == confirm["baseline_value"] and data["best"]["value"] == confirm["best_value"]
    assert data["baseline"]["initial_value"] == baseline["value"]
    assert data["best"]["speedup"] == confirm["speedup"]
    text = optimize("show", run_id, "--runs-dir", str(runs)).stdout
    assert f"{confirm['baseline_value']:.4g}" in text and f"{confirm['best_value']:.4g}" in text
    # "best so far" on the console is the speedup the verdict used
    accepted = data["iterations"][0]["speedup"]
    assert f"best so far: {accepted:.2f}x the baseline" in r.stdout + r.stderr  # progress goes to stderr
