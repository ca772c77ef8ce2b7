"""Test inventories and failures from real runners: pytest (through the probe), Maven Surefire, libtest,
`go test -json`; the identity gate and the cleaned log tail."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from agent import verify
from agent.config import parse_spec
from agent.target import Target, protected_globs
from agent.verify import Arm
from tests.test_maven import POM, needs_maven
from tools import gitops, testreport
from tools.testreport import Case, Report

PY = sys.executable

PYTEST_FILES = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "pytest.ini": "[pytest]\naddopts = -q\n",
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef two():\n    return 2\n",
    "tests/test_calc.py": (
        "import pytest\n\nfrom calc import add\n\n\n"
        "def test_adds(two):\n    assert add(two, two) == 4\n\n\n"
        "def test_wrong(two):\n    assert add(two, 3) == 6, 'two plus three'\n\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\ndef test_param(n):\n    assert add(n, 0) == n\n"
    ),
}


def repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Arm]:
    src = tmp_path / "src"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    commit = gitops.snapshot(src, tmp_path / "git")
    return tmp_path / "git", Arm(commit, gitops.add_worktree(tmp_path / "git", tmp_path / "wt", commit))


def pytest_spec(cmd: str = f"{PY} -m pytest -p no:cacheprovider tests") -> object:
    return parse_spec({"test": {"cmd": cmd, "timeout": 60}, "bench": {"cmd": "true"},
                       "guard": {"protected": ["tests/**"]}}, "test")


def test_pytest_run_reports_every_test_by_id_with_first_failure_line(tmp_path: Path) -> None:
    _, arm = repo(tmp_path, PYTEST_FILES)
    result, report = Target(pytest_spec(), arm.worktree).test_run(seed=1)
    assert result.returncode == 1
    assert report.sources == ["pytest"]
    outcomes = {cid: c.outcome for cid, c in report.cases.items()}
    assert outcomes == {"tests/test_calc.py::test_adds": "passed", "tests/test_calc.py::test_wrong": "failed",
                        "tests/test_calc.py::test_skipped": "skipped", "tests/test_calc.py::test_param[1]": "passed",
                        "tests/test_calc.py::test_param[2]": "passed"}
    wrong = report.cases["tests/test_calc.py::test_wrong"]
    assert wrong.message.startswith("AssertionError: two plus three")
    assert report.cases["tests/test_calc.py::test_skipped"].message == "not today"
    assert "pytest.ini" in report.config and "tests/conftest.py" in report.plugins
    # the probe wrote outside the worktree: nothing of it is left for a commit to pick up
    assert gitops.dirty_paths(arm.worktree) == []


def test_pytest_failure_detail_names_the_failing_test_and_no_seed_when_unused(tmp_path: Path) -> None:
    _, arm = repo(tmp_path, PYTEST_FILES)
    spec = pytest_spec()
    result, report = Target(spec, arm.worktree).test_run(seed=4242)
    reason, detail = verify.test_gate(spec, arm, result, report, seed=4242)
    assert reason == "tests-failed"
    assert "tests/test_calc.py::test_wrong: failed: AssertionError: two plus three" in detail
    assert "1 failed" in detail and "seed" not in detail and "4242" not in detail


def test_seed_is_named_when_the_test_command_uses_it(tmp_path: Path) -> None:
    files = {**PYTEST_FILES, "tests/conftest.py": PYTEST_FILES["tests/conftest.py"]
             + "\n\ndef pytest_addoption(parser):\n    parser.addoption('--seed', type=int)\n"}
    _, arm = repo(tmp_path, files)
    spec = pytest_spec(f"{PY} -m pytest -p no:cacheprovider tests --seed {{seed}}")
    result, report = Target(spec, arm.worktree).test_run(seed=4242)
    reason, detail = verify.test_gate(spec, arm, result, report, seed=4242)
    assert reason == "tests-failed" and "(seed 4242)" in detail


def test_pytest_through_make_and_nested_pytest_sessions(tmp_path: Path) -> None:
    # the probe rides in the environment, so a wrapper (a shell script) is seen through; a test that
    # runs pytest itself does not add the inner session's tests
    inner = ("import subprocess, sys\n\n\ndef test_runs_pytest(tmp_path):\n"
             "    (tmp_path / 'test_inner.py').write_text('def test_inner():\\n    pass\\n')\n"
             "    subprocess.run([sys.executable, '-m', 'pytest', '-q', str(tmp_path)], check=True)\n")
    _, arm = repo(tmp_path, {"run_tests.sh": f"cd tests && {PY} -m pytest -q -p no:cacheprovider .\n",
                             "tests/test_outer.py": inner})
    spec = parse_spec({"test": {"cmd": "sh run_tests.sh", "timeout": 60}, "bench": {"cmd": "true"}}, "t")
    result, report = Target(spec, arm.worktree).test_run(seed=1)
    assert result.returncode == 0, result.output
    assert set(report.cases) == {"test_outer.py::test_runs_pytest"}
    # the runner was seen in the reports, so its configuration files are frozen too
    assert "**/conftest.py" in protected_globs(spec, report) and "**/conftest.py" not in protected_globs(spec)


def test_gate_by_identity_new_tests_do_not_compensate() -> None:
    best = Report({c: Case(c, "passed") for c in ("a", "b", "c")}, ["pytest"])
    cand = Report({"a": Case("a", "passed"), "b": Case("b", "skipped", "flaky on CI"),
                   "x": Case("x", "passed"), "y": Case("y", "passed")}, ["pytest"], deselected=["c"])
    missing = testreport.required_missing(best, cand)
    assert [(c.id, c.outcome, c.message) for c in missing] == [("b", "skipped", "flaky on CI"),
                                                                ("c", "missing", "deselected")]
    assert testreport.required_missing(best, Report({**best.cases, **cand.cases, "b": Case("b", "passed"),
                                                     "c": Case("c", "passed")})) == []


def test_worst_outcome_of_a_repeated_id_counts() -> None:
    r = Report()
    r.add(Case("t", "skipped"))
    r.add(Case("t", "passed"))  # a second report cannot turn a skip into a pass
    assert r.cases["t"].outcome == "skipped"


def test_clean_tail_drops_escape_codes_and_repeated_banners() -> None:
    banner = "\x1b[36m┌──────────────────────────────────────┐\x1b[0m\n\x1b[36m│ Share your Cucumber Report │\x1b[0m\n"
    log = (banner * 4 + "\x1b[1;31m[ERROR] Tests run: 12, Failures: 2\x1b[0m\n\n\n\nprogress 10%\rprogress 100%\n"
           + banner * 2 + "[ERROR] BUILD FAILURE\n")
    tail = testreport.clean_tail(log)
    assert "\x1b" not in tail and "Cucumber" not in tail and "┌" not in tail
    assert "[ERROR] Tests run: 12, Failures: 2" in tail and "[ERROR] BUILD FAILURE" in tail
    assert "progress 100%" in tail and "progress 10%" not in tail and "\n\n\n" not in tail
    assert tail.startswith("[12 repeated lines")


def test_runner_config_is_derived_from_the_commands() -> None:
    assert "**/pom.xml" in testreport.runner_config(["mvn -B -q -o test"])
    assert ".mvn/**" in testreport.runner_config(["./mvnw test"])
    assert "Cargo.toml" in testreport.runner_config(["cargo test --release"])
    assert "go.mod" in testreport.runner_config(["go test -json ./..."])
    assert "Makefile" in testreport.runner_config(["make test"])
    assert testreport.runner_config(["./run-checks"]) == []
    spec = parse_spec({"test": {"cmd": "cargo test"}, "bench": {"cmd": "cargo run --release"},
                       "guard": {"editable_config": ["Cargo.toml"]}}, "t")
    globs = protected_globs(spec)
    assert "Cargo.toml" not in globs and "**/Cargo.toml" not in globs and ".cargo/**" in globs


MAVEN_TEST = """package t;
import static org.junit.jupiter.api.Assertions.assertEquals;
import org.junit.jupiter.api.Disabled;
import org.junit.jupiter.api.Test;
class MathTest {
    @Test void adds() { assertEquals(4, 2 + 2); }
    @Test void multiplies() { assertEquals(5, 2 * 2, "two times two"); }
    @Test @Disabled("later") void later() { }
}
"""


@pytest.mark.slow
@needs_maven
def test_quiet_maven_failure_is_named_from_surefire_reports(tmp_path: Path) -> None:
    fake = '<testsuite><testcase classname="t.Fake" name="committed"/></testsuite>'
    _, arm = repo(tmp_path, {"pom.xml": POM, "src/test/java/t/MathTest.java": MAVEN_TEST,
                             "target/surefire-reports/TEST-t.Fake.xml": fake})
    # neither a stale report nor a committed one counts: only this run's reports are read
    stale = arm.worktree / "target/surefire-reports/TEST-t.Stale.xml"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text('<testsuite><testcase classname="t.Stale" name="ghost"/></testsuite>')
    spec = parse_spec({"test": {"cmd": "mvn -B -q -o test", "timeout": 300}, "bench": {"cmd": "true"}}, "t")
    result, report = Target(spec, arm.worktree).test_run(seed=1)
    assert result.returncode != 0
    assert report.sources == ["surefire"]
    assert {cid: c.outcome for cid, c in report.cases.items()} == {
        "t.MathTest#adds": "passed", "t.MathTest#multiplies": "failed", "t.MathTest#later": "skipped"}
    assert (arm.worktree / "target/surefire-reports/TEST-t.Fake.xml").read_text() == fake  # tracked: left alone
    reason, detail = verify.test_gate(spec, arm, result, report, seed=1)
    assert reason == "tests-failed"
    assert "t.MathTest#multiplies: failed: two times two ==> expected: <5> but was: <4>" in detail
    assert "seed" not in detail and "\x1b" not in detail
    assert "**/pom.xml" in protected_globs(spec, report)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("cargo"), reason="cargo is not installed")
def test_cargo_libtest_lines_give_the_inventory(tmp_path: Path) -> None:
    # (not with -q: libtest's terse format names no passing test, and the run says the gate is weak)
    lib = ("pub fn add(a: i32, b: i32) -> i32 { a + b }\n#[cfg(test)]\nmod tests {\n    use super::*;\n"
           "    #[test] fn adds() { assert_eq!(add(2, 2), 4); }\n"
           "    #[test] fn wrong() { assert_eq!(add(2, 2), 5, \"two and two\"); }\n"
           "    #[test] #[ignore] fn slow() {}\n}\n")
    _, arm = repo(tmp_path, {"Cargo.toml": '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n',
                             "src/lib.rs": lib, ".gitignore": "target/\n"})
    spec = parse_spec({"test": {"cmd": "cargo test --offline 2>&1", "timeout": 300}, "bench": {"cmd": "true"}}, "t")
    result, report = Target(spec, arm.worktree).test_run(seed=1)
    assert "libtest" in report.sources, result.output
    outcomes = {cid.rsplit("::", 2)[-2] + "::" + cid.rsplit("::", 1)[-1]: c.outcome for cid, c in report.cases.items()}
    assert outcomes == {"tests::adds": "passed", "tests::wrong": "failed", "tests::slow": "skipped"}
    wrong = next(c for c in report.cases.values() if c.id.endswith("tests::wrong"))
    assert "two and two" in wrong.message or "left == right" in wrong.message, result.output


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("go"), reason="go is not installed")
def test_go_test_json_gives_the_inventory(tmp_path: Path) -> None:
    test = ('package tiny\n\nimport "testing"\n\nfunc TestAdds(t *testing.T) {\n\tif 2+2 != 4 {\n\t\tt.Fatal("no")\n\t}\n}\n\n'
            'func TestWrong(t *testing.T) {\n\tt.Fatalf("two and two is %d", 4)\n}\n\n'
            'func TestSkipped(t *testing.T) {\n\tt.Skip("later")\n}\n')
    _, arm = repo(tmp_path, {"go.mod": "module example.com/tiny\n\ngo 1.21\n", "tiny_test.go": test})
    spec = parse_spec({"test": {"cmd": "GOFLAGS=-mod=mod go test -json ./...", "timeout": 300},
                       "bench": {"cmd": "true"}}, "t")
    result, report = Target(spec, arm.worktree).test_run(seed=1)
    assert report.sources == ["go test -json"], result.output[-2000:]
    assert {cid: c.outcome for cid, c in report.cases.items()} == {
        "example.com/tiny.TestAdds": "passed", "example.com/tiny.TestWrong": "failed",
        "example.com/tiny.TestSkipped": "skipped"}
    assert "two and two is 4" in report.cases["example.com/tiny.TestWrong"].message


def test_ids_do_not_depend_on_where_the_worktree_is(tmp_path: Path) -> None:
    """An ini file above the worktrees (the demo's runs/ inside a project with a pytest config) makes pytest's
    rootdir that folder; the ids must still be the same for the best's worktree and the candidate's."""
    outer = tmp_path / "project"
    (outer / "runs").mkdir(parents=True)
    (outer / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    files = {k: v for k, v in PYTEST_FILES.items() if k != "pytest.ini"}  # the target has no ini file of its own
    git, arm = repo(outer / "runs", files)
    other = gitops.add_worktree(git, outer / "runs" / "wt2", arm.commit)
    ids = [set(Target(pytest_spec(), wt).test_run(seed=1)[1].cases) for wt in (arm.worktree, other)]
    assert ids[0] == ids[1] and "tests/test_calc.py::test_adds" in ids[0]
