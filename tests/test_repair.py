"""The repair phase on a real old project: cachetools 2.0.1 as released on PyPI, whose every test module fails
to import on Python 3.11 (collections.MutableMapping). Driven through the public CLI with scripted repairs:
the honest fix makes a green baseline with all 99 declared tests, and attempts build on top of it; each
dishonest repair is rejected for its own reason, and the user's checkout is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.transcript import Transcript
from tests.repair.project import (
    CHEATS,
    FIX,
    SDIST,
    cheat_transcript,
    declared_count,
    git,
    honest_repair,
    make_project,
)

pytestmark = [pytest.mark.repair, pytest.mark.slow,
              pytest.mark.skipif(not SDIST.is_file(), reason=f"{SDIST} missing: run `make repair-fixture`")]

ROOT = Path(__file__).resolve().parent.parent
LRU_GET = '''
    def get(self, key, default=None):
        # "a miss answers without raising KeyError": so does a hit, which breaks the tests
        return default
'''


def optimize(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = optimize_async(*args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def optimize_async(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.Popen([sys.executable, "-m", "agent.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**env, "COLUMNS": "250"})


def manifest(runs: Path) -> dict:
    (run,) = [p for p in runs.iterdir() if (p / "run.json").is_file()]
    return json.loads((run / "run.json").read_text())


def checkout_state(repo: Path) -> tuple[str, str, str]:
    return (git(repo, "rev-parse", "HEAD").strip(), git(repo, "symbolic-ref", "HEAD").strip(),
            git(repo, "status", "--porcelain"))


def test_failing_baseline_is_repaired_then_optimised(tmp_path: Path) -> None:
    declared = declared_count(tmp_path / "oracle")
    assert declared == 99  # what cachetools 2.0.1's suite declares
    repo = make_project(tmp_path / "project")
    before = checkout_state(repo)
    t = honest_repair(Transcript(note="repair test"))
    t.plan([{"title": "LRUCache.get without an exception per miss (wrong)", "files": ["cachetools/lru.py"]}])
    t.attempt([("add get", [("edit_file", {"path": "cachetools/lru.py", "old": "    def popitem(self):",
                                           "new": LRU_GET.lstrip("\n") + "\n    def popitem(self):"})]),
               ("done", [("finish", {"summary": "get() without KeyError on a miss"})])])
    script = tmp_path / "script.jsonl"
    t.write(script)
    runs = tmp_path / "runs"

    done = optimize("--repo", str(repo), "--llm", f"replay:{script}", "--runs-dir", str(runs), "--no-profile",
                    "--iterations", "1", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    m = manifest(runs)
    setup = m["summary"]["setup"]
    assert setup["status"] == "accepted"
    assert setup["tests"] == declared  # the repaired baseline runs and passes every declared test
    assert setup["headline"] == "setup: 1 change to pass the tests on Python 3.11"
    assert setup["files"] == ["cachetools/abc.py"]
    run_id = m["run_id"]
    setup_branch = f"optimize/{run_id}/setup"
    assert git(repo, "rev-parse", setup_branch).strip() == setup["commit"] == m["base_commit"]
    assert git(repo, "rev-parse", f"{setup['commit']}^").strip() == setup["original_commit"] == before[0]
    message = git(repo, "log", "-1", "--format=%B", setup_branch)
    assert message.startswith("setup: 1 change") and "collections.MutableMapping was removed" in message
    assert "--- " not in git(repo, "diff", setup["original_commit"], setup["commit"], "--", "tests", "bench.py")

    shown = json.loads(optimize("show", run_id, "--runs-dir", str(runs), "--json").stdout)
    (attempt,) = shown["iterations"]
    assert attempt["base_commit"] == setup["commit"]  # attempts branch from the repaired baseline
    assert (attempt["verdict"], attempt["reason"]) == ("rejected", "tests-failed"), attempt
    assert setup["commit"] in git(repo, "rev-list", attempt["commit"])
    assert shown["setup"]["changes"] == [FIX.removeprefix("- ")]
    text = optimize("show", run_id, "--runs-dir", str(runs)).stdout
    assert text.lstrip().startswith("setup: 1 change to pass the tests on Python 3.11"), text[:500]
    events = [json.loads(line) for line in (runs / run_id / "events.jsonl").read_text().splitlines()]
    assert any("setup: 1 change" in e.get("text", "") for e in events)
    assert "repaired baseline" in shown["best"]["basis"]  # what the headline compares against, said
    assert "setup: 1 change to pass the tests on Python 3.11" in (runs / run_id / "report.html").read_text()
    assert (runs / run_id / "setup" / "diff.patch").read_text().count("collections.abc.MutableMapping") == 1
    assert checkout_state(repo) == before  # the user's branch, HEAD and working tree untouched


BUDGETS = {"tool-call-budget": ["--tool-calls", "2"], "time-budget": ["--minutes", "0"]}  # the honest repair, cut off


@pytest.fixture(scope="module")
def cheat_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess, Path, tuple, Path]]:
    """Every dishonest repair through `optimize repair`, all at once (each is its own project and run)."""
    started = {}
    for name, (reason, _) in CHEATS.items():
        root = tmp_path_factory.mktemp(name)
        repo = make_project(root / "project")
        spec = []
        if reason == "test-weakened":  # a user spec that leaves the tests editable: the harness still guards them
            loose = root / "loose.toml"
            loose.write_text((repo / "optimize.toml").read_text().replace('"tests/**", ', ""))
            spec = ["--target", str(loose)]
        args = ["repair", "--repo", str(repo), *spec, "--llm", f"replay:{cheat_transcript(name, root / 's.jsonl')}",
                "--runs-dir", str(root / "runs"), "--quiet"]
        started[name] = (optimize_async(*args), repo, checkout_state(repo), root / "runs")
    honest = tmp_path_factory.mktemp("budgets")
    honest_repair(Transcript(note="honest, but out of budget")).write(honest / "s.jsonl")
    for name, flags in BUDGETS.items():
        repo = make_project(honest / name)
        args = ["repair", "--repo", str(repo), *flags, "--llm", f"replay:{honest / 's.jsonl'}",
                "--runs-dir", str(honest / name / "runs"), "--quiet"]
        started[name] = (optimize_async(*args), repo, checkout_state(repo), honest / name / "runs")
    done = {}
    for name, (proc, repo, before, runs) in started.items():
        out, err = proc.communicate(timeout=600)
        done[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), repo, before, runs)
    return done


@pytest.mark.parametrize("name", sorted(CHEATS) + sorted(BUDGETS))
def test_dishonest_or_unfinished_repair_is_rejected(cheat_runs: dict, name: str) -> None:
    done, repo, before, runs = cheat_runs[name]
    reason = CHEATS[name][0] if name in CHEATS else "budget"
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"could not fix it ({reason})" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    m = manifest(runs)
    assert m["status"] == "failed" and m["summary"]["setup"]["reason"] == reason
    assert checkout_state(repo) == before
    assert "optimize/" not in git(repo, "for-each-ref")  # exit 2: nothing in the repository changed
    assert (runs / m["run_id"] / "setup" / "failure.txt").is_file()  # what failed, for review


def test_no_repair_refuses_with_the_failing_tests(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "project")
    script = tmp_path / "s.jsonl"
    honest_repair(Transcript(note="unused")).write(script)
    done = optimize("--repo", str(repo), "--llm", f"replay:{script}", "--runs-dir", str(tmp_path / "runs"),
                    "--no-repair", "--quiet")
    assert done.returncode == 2
    assert "the tests fail on the unmodified code" in done.stderr and "--no-repair" in done.stderr
    assert "MutableMapping" in done.stderr  # the cleaned failure names the error


def test_inventory_reads_declared_tests_ids_and_first_errors(tmp_path: Path) -> None:
    from agent.repair import declared_tests, first_error, markers, test_name

    repo = tmp_path / "r"
    (repo / "src/test/java/x").mkdir(parents=True)
    (repo / "src/test/java/x/BookTest.java").write_text(
        "class BookTest {\n  @Test\n  public void addsOrder() {}\n  @ParameterizedTest\n  @ValueSource(ints = {1})\n"
        "  void cancels(int n) {}\n  @Disabled(\"slow\") @Test void skipped() {}\n  void helper() {}\n}\n")
    (repo / "tests").mkdir()
    (repo / "tests/test_a.py").write_text("import pytest\n\n\nclass T:\n    def test_x(self):\n        assert 1\n\n\n"
                                          "@pytest.mark.skip\ndef test_y():\n    pass\n\n\ndef helper():\n    pass\n")
    (repo / "pom.xml").write_text("<plugin><configuration><excludes><exclude>**/Slow*</exclude></excludes>"
                                  "<skipTests>false</skipTests></configuration></plugin>\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    assert declared_tests(repo) == {"addsOrder", "cancels", "skipped", "test_x", "test_y"}
    found = markers(repo)
    assert found[("src/test/java/x/BookTest.java", "@Disabled")] == 1
    assert found[("tests/test_a.py", "pytest.mark.skip")] == 1
    assert found[("pom.xml", "<exclude>")] == 2 and found[("pom.xml", "skipTests")] == 2  # tags counted, open and close
    assert [test_name(i) for i in ("tests/test_a.py::T::test_x", "x.BookTest#cancels(int)[1]", "t.py::test_p[1.5-a]")] \
        == ["test_x", "cancels", "test_p"]
    assert first_error("[INFO] ok\n[ERROR] Foo.java:[3,8] package javax.annotation does not exist\n[ERROR] x") \
        == "[ERROR] Foo.java:[3,8] package javax.annotation does not exist"
