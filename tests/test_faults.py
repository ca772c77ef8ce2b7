"""Fault injection: SIGKILL the run at ten different points (planning, editing, build, tests, benchmark,
record writing) and resume each; the end state must match an uninterrupted run of the same transcript."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_loop import optimize
from tests.tiny_target import SPEC, git, make_repo, transcript

ROOT = Path(__file__).resolve().parent.parent
FAST_SPEC = SPEC.replace("looks = [4, 8]", "looks = [3, 6]").replace("calibration_pairs = 4", "calibration_pairs = 3") \
    .replace("confirm_pairs = 4", "confirm_pairs = 3")
# (file whose line count triggers the kill, count) or ("time", seconds after start): ten points, one in
# each phase (baseline, plan, each attempt's edits, evaluation, keep-or-drop, confirmation); every point costs
# a whole run and its resume, so CI time decides how many.
POINTS = [("events.jsonl", n) for n in (1, 2, 3, 5, 7, 9)] + [("llm.jsonl", n) for n in (1, 3, 5)] + [("time", 1.5)]


def outcome(runs: Path, repo: Path) -> list[tuple]:
    run_id = json.loads(optimize("runs", "--runs-dir", str(runs), "--json").stdout)[0]["run_id"]
    data = json.loads(optimize("show", run_id, "--runs-dir", str(runs), "--json").stdout)
    assert data["status"] == "finished"
    assert len(git(repo, "worktree", "list").splitlines()) == 1, "stray worktrees"
    assert git(repo, "status", "--porcelain") == "" and git(repo, "branch", "--show-current").strip() == "main"
    prefix = f"optimize/{run_id}/"
    branches = sorted(b.removeprefix(prefix) for b in
                      git(repo, "branch", "--list", prefix + "*", "--format=%(refname:short)").split())
    return [(i["index"], i["verdict"], i["reason"], i["branch"].removeprefix(prefix)) for i in data["iterations"]] + \
        [tuple(branches), data["best"]["commit"] is not None]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def start(repo: Path, script: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm", f"replay:{script}",
                             "--runs-dir", str(runs), "--no-profile", "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    tmp = tmp_path_factory.mktemp("reference")
    repo = make_repo(tmp / "repo", spec=FAST_SPEC)
    proc = start(repo, transcript(tmp / "t.jsonl"), tmp / "runs")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    return outcome(tmp / "runs", repo)


@pytest.mark.slow
@pytest.mark.parametrize("where,when", POINTS, ids=[f"{w}-{n}" for w, n in POINTS])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, reference: list[tuple], where: str,
                                                       when: float) -> None:
    repo = make_repo(tmp_path / "repo", spec=FAST_SPEC)
    runs = tmp_path / "runs"
    proc = start(repo, transcript(tmp_path / "t.jsonl"), runs)
    started = time.monotonic()
    while proc.poll() is None:
        run_dirs = list(runs.glob("*/run.json"))
        if where == "time":
            due = time.monotonic() - started >= when
        else:
            due = bool(run_dirs) and lines(run_dirs[0].parent / where) >= when
        if due:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    run_dirs = list(runs.glob("*/run.json"))
    if not run_dirs:  # killed before the record existed: nothing to resume, a new run starts from scratch
        assert optimize("--repo", str(repo), "--llm", f"replay:{tmp_path / 't.jsonl'}", "--runs-dir", str(runs),
                        "--no-profile").returncode == 0
    elif proc.returncode != 0:
        run_id = json.loads(run_dirs[0].read_text())["run_id"]
        r = optimize("resume", run_id, "--runs-dir", str(runs), "--quiet")
        assert r.returncode == 0 or "already finished" in r.stderr, r.stderr
        for record in runs.glob("*/events.jsonl"):  # every line of the record is still valid JSON
            assert all(json.loads(line) for line in record.read_text().splitlines())
    assert outcome(runs, repo) == reference


# ----------------------------------------------------------------------------- endpoint outages (fake server)


class Outage:
    """Serves a transcript's replies; from the `after`-th request on, answers 503 until `restore()`."""

    def __init__(self, script: Path, after: int) -> None:
        from tests.fakes.openai_server import load_script

        self.replies, self.after, self.seen, self.down = load_script(script), after, 0, False

    def __call__(self, body: dict) -> object:
        from tests.fakes.openai_server import Fault

        if self.seen >= self.after and not self.restored:
            self.down = True
            return Fault(503, message="server restarting")
        if self.seen >= len(self.replies):
            return Fault(400, message="fake server: script exhausted")
        self.seen += 1
        return self.replies[self.seen - 1]

    restored = False

    def restore(self) -> None:
        self.restored = True


def live_run(repo: Path, url: str, runs: Path, *extra: str) -> subprocess.Popen:
    """A run against the fake server. Its budget is the transcript's three attempts: a live server whose
    script is spent answers 400, which a live run takes for a bad answer and carries on until its budget."""
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm", url,
                             "--runs-dir", str(runs), "--no-profile", "--quiet", "--iterations", "3", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two runs of the tiny target; each up to 10 min on a busy machine
def test_an_outage_is_waited_out_and_the_run_continues_where_it_was(tmp_path: Path, fake_openai) -> None:
    repo = make_repo(tmp_path / "repo", spec=FAST_SPEC)
    outage = Outage(transcript(tmp_path / "t.jsonl"), after=2)
    srv = fake_openai(outage)
    proc = live_run(repo, srv.base_url, tmp_path / "runs", "--endpoint-backoff", "0.2s", "--endpoint-patience", "5m")
    deadline = time.monotonic() + 1200  # the baseline alone can take minutes on a busy machine
    while not (outage.down and len(srv.requests) >= outage.after + 10):  # more than the old client's 7 tries
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    outage.restore()
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err
    assert outage.down and "Traceback" not in err
    runs = tmp_path / "runs"
    assert outcome(runs, repo) == outcome_of_reference(tmp_path)
    events = (next(runs.glob("*/events.jsonl"))).read_text()
    assert "endpoint down since" in events and "endpoint back after" in events


def outcome_of_reference(tmp_path: Path) -> list[tuple]:
    """The same transcript replayed without any outage."""
    repo = make_repo(tmp_path / "ref-repo", spec=FAST_SPEC)
    proc = start(repo, transcript(tmp_path / "ref.jsonl"), tmp_path / "ref-runs")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    return outcome(tmp_path / "ref-runs", repo)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two runs of the tiny target; each up to 10 min on a busy machine
def test_patience_spent_leaves_a_resumable_run_then_resume_finishes_it(tmp_path: Path, fake_openai) -> None:
    repo = make_repo(tmp_path / "repo", spec=FAST_SPEC)
    # down right after the plan: the resumed run redoes attempt 1 from its first reply, which the server
    # still has to give (a live server has no memory of the conversation either)
    outage = Outage(transcript(tmp_path / "t.jsonl"), after=1)
    srv = fake_openai(outage)
    runs = tmp_path / "runs"
    proc = live_run(repo, srv.base_url, runs, "--endpoint-backoff", "0.2s", "--endpoint-patience", "2s")
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 3, err
    run_dir = next(runs.glob("*/run.json")).parent
    manifest = json.loads((run_dir / "run.json").read_text())
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "endpoint patience" in last, err
    assert f"optimize resume {manifest['run_id']}" in last
    assert (manifest["status"], manifest["stop_reason"]) == ("interrupted", "endpoint unusable")
    assert not (run_dir / "run.lock").exists()
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    outage.restore()
    r = subprocess.run([sys.executable, "-m", "agent.cli", "resume", manifest["run_id"], "--runs-dir", str(runs),
                        "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr
    data = json.loads(subprocess.run([sys.executable, "-m", "agent.cli", "show", manifest["run_id"], "--runs-dir",
                                      str(runs), "--json"], cwd=ROOT, capture_output=True, text=True).stdout)
    assert data["status"] == "finished" and len(data["iterations"]) == 3
