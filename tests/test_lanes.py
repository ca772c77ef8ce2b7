"""Several attempts in flight at once (`--lanes`): concurrent conversations, stacked wins, conflicts.

A tiny real target with two independent slow functions. Three strategies run side by side from the
same base: one fixes `squares`, one fixes `cubes`, one fixes `squares` differently. Measurements are
one at a time, so the wins are decided in some order: the first is accepted as it is, a later one is
rebased onto the new best and verified again there, and the second fix of `squares` conflicts with the
first and is recorded as `superseded`, whichever order the lanes finished in.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.transcript import Transcript
from tests.test_loop import optimize, show
from tests.tiny_target import FAST, SLOW, git, make_repo, transcript
from tests.tiny_target import SPEC as TINY_SPEC

CUBES_SLOW = '''def sum_of_cubes(n: int) -> int:
    total = 0
    for i in range(n):
        total = total + i * i * i
    return total
'''
CUBES_FAST = '''def sum_of_cubes(n: int) -> int:
    return ((n - 1) * n // 2) ** 2
'''
SQUARES_OTHER = '''def sum_of_squares(n: int) -> int:
    m = n - 1
    return m * (m + 1) * (2 * m + 1) // 6
'''
BENCH = '''import time
from cubes import sum_of_cubes
from work import sum_of_squares

start = time.perf_counter()
result = (sum_of_squares(1_000_000), sum_of_cubes(1_000_000))
time.sleep(0.05)  # the rest of the timed work: caps the speedup near 6x, as in a real program
elapsed = time.perf_counter() - start
print(f"result: {result}")
print(f"rate: {1.0 / max(elapsed, 1e-6):.3f} Mops/s")
'''
TEST = '''from cubes import sum_of_cubes
from work import sum_of_squares


def test_squares() -> None:
    assert [sum_of_squares(n) for n in range(200)] == [sum(i * i for i in range(n)) for n in range(200)]


def test_cubes() -> None:
    assert [sum_of_cubes(n) for n in range(200)] == [sum(i ** 3 for i in range(n)) for n in range(200)]
'''
SPEC = TINY_SPEC.replace('name = "tiny"', 'name = "two-hot-spots"')  # same test, bench and decide settings
STRATEGIES = [("Closed-form sum of squares", "work.py", FAST), ("Closed-form sum of cubes", "cubes.py", CUBES_FAST),
              ("Sum of squares via m = n - 1", "work.py", SQUARES_OTHER)]


def script(path: Path) -> Path:
    t = Transcript(note="lanes test transcript")
    t.plan([{"title": title, "hypothesis": "the loop is the hot spot", "files": [file], "expected_gain": "2x"}
            for title, file, _ in STRATEGIES])
    for _, file, code in STRATEGIES:
        t.attempt([("Rewrite it.", [("write_file", {"path": file, "content": code})]),
                   ("Done.", [("finish", {"summary": f"closed form in {file}"})])])
    t.write(path)
    return path


def test_three_lanes_stack_wins_and_supersede_a_conflict(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "cubes.py").write_text(CUBES_SLOW)
    repo = make_repo(root, spec=SPEC, work=SLOW, bench=BENCH, test=TEST)
    runs = tmp_path / "runs"
    r = optimize("--repo", str(repo), "--llm", f"replay:{script(tmp_path / 't.jsonl')}", "--runs-dir", str(runs),
                 "--no-profile", "--lanes", "3")
    assert r.returncode == 0, r.stderr
    assert "lanes: #001 " in r.stderr and "#003 " in r.stderr  # the progress line shows the lanes in flight
    data = show(runs)
    its = data["iterations"]
    assert sorted(i["reason"] for i in its) == ["faster", "faster", "superseded"], [(i["reason"], i["detail"]) for i in its]
    superseded = next(i for i in its if i["reason"] == "superseded")
    assert superseded["strategy"] != STRATEGIES[1][0] and "conflicts with the new best" in superseded["detail"]

    events = [json.loads(line) for line in (Path(data["record"]) / "events.jsonl").read_text().splitlines()]
    started = [e for e in events if e["type"] == "attempt-started"]
    base = next(e for e in events if e["type"] == "baseline")["commit"]
    assert len(started) == 3 and {e["base_commit"] for e in started} == {base}  # all three ran side by side
    first_decision = next(i for i, e in enumerate(events) if e["type"] == "iteration")
    assert all(events.index(e) < first_decision for e in started)
    # the second win was rebased onto the first and measured again there
    restacked = [i for i in its if i["verdict"] == "accepted" and i["base_commit"] != base]
    assert len(restacked) == 1 and "verified again on top of it" in restacked[0]["detail"]

    best = data["best"]["branch"]
    assert "** 2" in git(repo, "show", f"{best}:cubes.py") and "for i in" not in git(repo, "show", f"{best}:work.py")
    assert data["best"]["speedup"] > 1.5 and data["best"]["ci"][0] > 1
    assert git(repo, "branch", "--show-current").strip() == "main" and git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_a_run_killed_during_verification_resumes_just_that_evaluation(tmp_path: Path) -> None:
    """The model's work is committed before verification starts: resume verifies that commit again
    instead of asking the model to redo the attempt."""
    repo = make_repo(tmp_path / "repo")
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm",
                             f"replay:{transcript(tmp_path / 't.jsonl')}", "--runs-dir", str(runs), "--no-profile"],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        events = runs.glob("*/events.jsonl")
        if any('"evaluation-started"' in e.read_text() for e in events):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-verification, no chance to clean up
    proc.wait(60)
    run_id = json.loads(optimize("runs", "--runs-dir", str(runs), "--json").stdout)[0]["run_id"]
    r = optimize("resume", run_id, "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    assert "evaluation resumed" in r.stderr
    data = show(runs)
    assert [(i["verdict"], i["reason"]) for i in data["iterations"]] == [
        ("accepted", "faster"), ("rejected", "tests-failed"), ("rejected", "protected-path")]
    record = Path(data["record"])
    discarded = record / "llm.discarded.jsonl"
    assert not discarded.exists() or "attempt-001" not in discarded.read_text()  # its conversation was kept
    def replies(path: Path, tag: str) -> int:
        return sum(json.loads(line).get("tag") == tag for line in path.read_text().splitlines() if line.strip())

    assert replies(record / "llm.jsonl", "attempt-001") == replies(tmp_path / "t.jsonl", "attempt-001")  # not redone
    assert len(git(repo, "worktree", "list").splitlines()) == 1
