"""The repair phase (issue 18): make an old project build and pass its own tests on this machine's toolchain.

When the unmodified code fails to build or to pass its tests, the model gets the failing command, the cleaned
failure, the toolchain versions and the attempt tools on branch `optimize/<run>/setup`. The harness, not the
model, then decides whether the repair stands: it may change build configuration, toolchain flags and source
that does not compile or run; it may not touch protected paths (tests, benchmark, spec), skip, exclude or
weaken a test, and the repaired code must build, pass every declared test and run the benchmark with a valid
metric twice. An accepted repair becomes the run's baseline: every attempt branches from it and the
confirmation measures against it. Nothing here touches the user's checkout (the work is in a worktree).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.attempt import converse
from agent.baseline import measure as measure_baseline
from agent.llm import Cancelled, ReplayDiverged, ReplayExhausted, RequestRejected
from agent.records import NoteEvent
from agent.session import BaselineError, Session, Stop
from agent.target import EVALUATOR_FILES, Target, failure
from agent.toolbox import Toolbox
from agent.verify import failing_tests
from tools import gitops, sh, testreport
from tools.bench import metric_value

SYSTEM = """You are Nightshift's setup engineer. The project below does not build or does not pass its own tests
on this machine's toolchain as it is. Make the smallest changes that fix that: build configuration, toolchain
flags, dependency versions, and source code that no longer compiles or runs on this toolchain. A separate harness
checks your result and rejects it if any protected file changed (tests, benchmark, spec), if any test is newly
skipped, disabled, excluded or deselected (by code, by a build or test-runner configuration file, or by a marker),
if fewer tests run than the project declares, or if the build, the full test suite or the benchmark fails.
Never weaken a test to make it pass. When done, call `finish` with one line per fix, each starting with "- " and
saying which failure it addresses; call `give_up` if it cannot be done within these rules."""

BRIEF = """The unmodified code fails on this machine.

Failing step: {step}
Command: {cmd}
Failure:
{failure}

Toolchain on this machine:
{toolchain}

Protected (cannot change): {protected}
Tool-call budget: {budget}. Build with run_build, check with run_tests, then finish."""

# Markers that disable a test or take it out of the run, in code or in build / runner configuration.
# Counted per file before and after the repair: any file with more of one is a rejection.
SKIP_MARKERS = {
    "pytest.mark.skip": r"pytest\.mark\.skip", "pytest.skip(": r"pytest\.skip\(", "xfail": r"\bxfail\b",
    "unittest.skip": r"unittest\.skip|@skip(?:If|Unless)?\b", "SkipTest": r"\bSkipTest\b",
    "@Disabled": r"@Disabled\b", "@Ignore": r"@Ignore\b", "assume": r"\bassume(?:True|False|That)\s*\(",
    "skipTests": r"skipTests|maven\.test\.skip|skipITs", "testFailureIgnore": r"testFailureIgnore",
}
EXCLUDE_MARKERS = {
    "--ignore": r"--ignore(?:-glob)?\b", "--deselect": r"--deselect\b", "-k": r"(?:^|\s)-k(?:\s|=)",
    "collect_ignore": r"\bcollect_ignore", "deselect items": r"\.deselect\b|items\[:\]\s*=|items\.remove\(",
    "<exclude>": r"<excludes?>|<excludedGroups>|excludeTags|-Dtest=", "norecursedirs": r"\bnorecursedirs\b",
    "python_files": r"\bpython_(?:files|classes|functions)\b", "testpaths": r"\btestpaths\b",
}
_MARKERS = {**{k: (re.compile(v), "test-skipped") for k, v in SKIP_MARKERS.items()},
            **{k: (re.compile(v), "test-excluded") for k, v in EXCLUDE_MARKERS.items()}}
_TEXT = {".py", ".cfg", ".ini", ".toml", ".xml", ".gradle", ".kts", ".java", ".kt", ".properties", ".json",
         ".yml", ".yaml", ".sh", ".mk", ""}


class RepairFailed(Exception):
    """The repair could not be done, or the harness rejected it: `reason` is a code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Before:
    """What the unmodified code does, taken before the model changes anything."""

    step: str  # "build" or "tests"; "" when both pass
    cmd: str = ""
    text: str = ""  # the cleaned failure shown to the model and to the user
    first: str = ""  # its first error line, for the commit message
    passed: set[str] = field(default_factory=set)  # test ids that passed anyway
    declared: set[str] = field(default_factory=set)  # test names the project's test files define
    markers: Counter = field(default_factory=Counter)
    deselected: set[str] = field(default_factory=set)
    collected: bool = False  # whether the runner collected any test at all (not only collection errors)


@dataclass
class Setup:
    commit: str
    branch: str
    changes: list[str]
    files: list[str]
    tests: int  # tests that passed on the repaired code
    declared: int  # test names the project declares, every one seen passing
    headline: str  # "setup: 1 change to pass the tests on Python 3.11"


# --- the loop's entry -----------------------------------------------------------------------------------

def baseline(s: Session) -> None:
    """The baseline; when the unmodified code fails to build or to pass its tests (and --no-repair was not
    given), the repair phase first, then the baseline of the repaired code."""
    try:
        return measure_baseline(s)
    except BaselineError as e:
        if not getattr(s.options, "repair", True):
            raise BaselineError(f"{e}\n(the repair phase is off: --no-repair)") from None
        gitops.remove_worktree(s.repo, s.worktree("base"))
        setup = run(s, original_error=str(e))
        if setup is None:
            raise  # build and tests pass: the baseline failed for another reason (benchmark, noise)
    s.ui.log(f"{setup.headline}; the baseline is now the repaired code on {setup.branch}")
    measure_baseline(s)


def run(s: Session, original_error: str = "") -> Setup | None:
    """The repair phase on its own (`optimize repair`). None when the code builds and passes as it is;
    RepairFailed (as a BaselineError with the reason) when it cannot be repaired within the rules."""
    original = s.manifest.base_commit
    branch = s.prefix + "setup"
    wt = gitops.add_worktree(s.repo, s.worktree("setup"), original)  # detached: a branch only for an accepted repair
    try:
        s.ui.phase("repair: running the unmodified code")
        target = Target(s.spec, wt)
        before = probe(s, target)
        if not before.step:
            return None
        s.note(f"the {before.step} fail on the unmodified code; starting the repair phase", "warning")
        folder = s.store.path / "setup"
        folder.mkdir(exist_ok=True)
        (folder / "failure.txt").write_text(f"{before.step}: {before.cmd}\n{before.text}\n")
        setup = repair(s, target, before, original, branch)
    except RepairFailed as e:
        s.save_manifest(setup={"status": "rejected", "reason": e.reason, "detail": e.detail[:2000],
                               "record": str(s.store.path / "setup"), "original_commit": original})
        s.note(f"repair rejected ({e.reason}): {e.detail.splitlines()[0] if e.detail else ''}", "warning")
        raise BaselineError(
            f"{original_error or 'the unmodified code fails'}\n\nThe repair phase could not fix it ({e.reason}): "
            f"{e.detail}\nNothing in your repository was changed; the attempted repair and the failure it addressed "
            f"are in {s.store.path / 'setup'} for review (--no-repair skips the repair phase).") from None
    finally:
        gitops.remove_worktree(s.repo, wt)
    gitops.set_branch(s.repo, branch, setup.commit)
    s.manifest.base_commit = setup.commit
    s.save_manifest(setup={"status": "accepted", "branch": branch, "commit": setup.commit,
                           "original_commit": original, "changes": setup.changes, "files": setup.files,
                           "tests": setup.tests, "declared": setup.declared, "headline": setup.headline})
    s.store.append(NoteEvent(text=f"{setup.headline} ({setup.tests} tests pass, all {setup.declared} declared "
                                  f"test names among them); later attempts branch from {setup.commit[:10]}"))
    return setup


def probe(s: Session, target: Target) -> Before:
    """Build and test the unmodified code; what failed, in the words the model and the user get."""
    wt = target.worktree
    before = Before("", declared=declared_tests(wt), markers=markers(wt))
    build = target.build()
    if build is not None and failure(build, "build-failed"):
        before.step, before.cmd = "build", s.spec.build.cmd
        first = before.first = first_error(build.output)
        before.text = (f"first error: {first}\n" if first else "") + testreport.clean_tail(build.output)
        return before
    tests, report = target.test_run()
    before.passed, before.deselected = report.passed, set(report.deselected)
    before.collected = any(not i.endswith("(collection)") for i in report.cases)
    if failure(tests, "tests-failed") or report.failing:
        before.step, before.cmd = "tests", s.spec.test.cmd
        first = before.first = first_error(tests.output)
        before.text = (f"first error: {first}\n" if first else "") + failing_tests(tests, report).lstrip("; \n")
    return before


def repair(s: Session, target: Target, before: Before, original: str, branch: str) -> Setup:
    """The model's conversation, then the harness's checks of what it committed."""
    protected = list(dict.fromkeys([*s.spec.guard.protected, *EVALUATOR_FILES]))
    toolbox = Toolbox(target, protected, lambda: "(no profile: the code does not run yet)", lambda out: "")
    toolbox.protected = protected  # build and runner configuration stay editable here, unlike in attempts
    started = time.monotonic()
    budget_s = getattr(s.options, "repair_minutes", 45.0) * 60

    def before_call() -> None:
        if time.monotonic() - started > budget_s:
            raise Stop(f"the repair's time budget ({budget_s / 60:.0f} min) is spent")
        s.before_model_call()

    limit = getattr(s.options, "repair_tool_calls", 40)
    brief = BRIEF.format(step=before.step, cmd=before.cmd, failure=before.text[-6000:], toolchain=toolchain(),
                         protected=", ".join(protected), budget=limit)
    s.ui.phase("repair: the model is fixing the build")
    try:
        talk = converse(s.model, toolbox, SYSTEM, brief, tag="repair", max_tool_calls=limit, before_call=before_call,
                        on_reply=s.count, on_tool=lambda name, out: s.ui.step(name),
                        context_limit=s.options.context_limit)
    except Stop as stop:
        if stop.reason == "interrupted":
            raise
        raise RepairFailed("budget", stop.reason) from None
    except Cancelled:
        raise Stop("interrupted") from None
    except RequestRejected as e:
        raise RepairFailed("model-error", f"the endpoint rejected a request: {e.detail}") from None
    except ReplayExhausted:
        raise RepairFailed("budget", "the scripted transcript ended before the repair finished") from None
    except ReplayDiverged as e:  # a transcript written without a repair conversation
        raise RepairFailed("model-error", f"the scripted transcript has no repair conversation here ({e})") from None
    with s.lock:
        s.tool_calls += talk.tool_calls
    if talk.ended == "give_up":
        raise RepairFailed("model-gave-up", talk.message or "the model gave up")
    if talk.ended != "finish":
        raise RepairFailed("budget" if talk.ended == "budget" else "model-error",
                           f"the model did not finish the repair within {limit} tool calls ({talk.ended}: "
                           f"{talk.message or 'no finish'})")
    changes = [ln.lstrip("-* ").strip() for ln in talk.message.splitlines() if ln.strip().startswith(("-", "*"))]
    changes = changes or [talk.message.strip() or "repair"]
    label = toolchain_label(s)
    n = len(changes)
    headline = f"setup: {n} change{'s' if n != 1 else ''} to {'build' if before.step == 'build' else 'pass the tests'} on {label}"
    message = (headline + "\n\n" + "\n".join(f"- {c}" for c in changes)
               + f"\n\nFailure addressed ({before.step}, `{before.cmd}`): {(before.first or before.text.strip().splitlines()[0])[:300]}\n"
               "Made by the Nightshift repair phase; checked by the harness (no test skipped, excluded or "
               "weakened; build, full suite and benchmark green).")
    commit = gitops.commit_all(target.worktree, message)
    if commit is None:
        raise RepairFailed("no-change", "the repair left the code unchanged")
    files = gitops.changed_paths(s.repo, original, commit)
    # written before the checks: a rejected repair is reviewed from the record
    (s.store.path / "setup" / "diff.patch").write_text(gitops.diff_text(s.repo, original, commit))
    s.ui.phase("repair: checking the repaired code")
    tests = check(s, target, before, original, commit, protected, toolbox.protected_attempts)
    return Setup(commit, branch, changes, files, tests, len(before.declared), headline)


def check(s: Session, target: Target, before: Before, original: str, commit: str, protected: list[str],
          protected_attempts: list[str]) -> int:
    """The harness's rules for a repair; RepairFailed with the reason, else the number of passing tests."""
    touched = [p for p in gitops.changed_paths(s.repo, original, commit) if gitops.matches(p, protected)]
    if touched or protected_attempts:
        raise RepairFailed("protected-path", "changed or tried to write: " + ", ".join(sorted(set(touched + protected_attempts))))
    if weak := weakened(s.repo, original, commit):
        raise RepairFailed("test-weakened", "changes assertions in test sources (a repair may fix a test's imports "
                           "or annotations, never what it checks): " + "; ".join(weak[:5]))
    wt = target.worktree
    after = markers(wt)
    grown = sorted(k for k in after if after[k] > before.markers.get(k, 0))
    if grown:
        reason = _MARKERS[grown[0][1]][1]
        raise RepairFailed(reason, "adds " + ", ".join(f"'{m}' in {p}" for p, m in grown)
                           + " (a repair may not skip, disable or exclude a test)")
    gitops.clean_untracked(wt)
    build = target.build()
    if build is not None and (bad := failure(build, "build-failed")):
        raise RepairFailed(bad[0], f"the repaired build {bad[1]}\n{testreport.clean_tail(build.output)}")
    tests, report = target.test_run()
    if bad := failure(tests, "tests-failed"):
        raise RepairFailed(bad[0], f"the repaired tests {bad[1]}{failing_tests(tests, report)}")
    if report.failing:
        raise RepairFailed("tests-failed", f"tests still fail{failing_tests(tests, report)}")
    # A skip the original code already declares (a platform or optional-dependency skipif) may stay: its reason
    # is text of the original tree. Any other skip of a declared test, or of one that passed before, is the repair's.
    skipped = [c for c in report.cases.values() if c.outcome == "skipped"
               and (c.id in before.passed or test_name(c.id) in before.declared)]
    if new := sorted(c.id for c in skipped if c.id in before.passed or not _in_tree(s.repo, original, c.message)):
        raise RepairFailed("test-skipped", f"{len(new)} tests skipped: {', '.join(new[:5])}")
    lost = sorted(before.passed - report.passed)
    if lost:
        raise RepairFailed("test-excluded", f"{len(lost)} tests that passed before no longer run and pass: "
                           + ", ".join(lost[:5]))
    missing = sorted(before.declared - {test_name(i) for i in report.passed} - {test_name(c.id) for c in skipped})
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise RepairFailed("test-excluded", f"{len(report.passed)} tests passed, but {len(missing)} of the "
                           f"{len(before.declared)} test names the project declares did not run and pass: {shown}")
    config = testreport.runner_config([s.spec.test.cmd] + ([s.spec.build.cmd] if s.spec.build else []), report)
    changed_config = any(gitops.matches(p, config) for p in gitops.changed_paths(s.repo, original, commit))
    if (new := sorted(set(report.deselected) - before.deselected)) and (before.collected or changed_config):
        raise RepairFailed("test-excluded", f"{len(new)} tests deselected: {', '.join(new[:5])}")
    if not report.passed:
        raise RepairFailed("tests-failed", "the test runner reported no passing test: " + report.summary())
    for run_no in (1, 2):  # twice: a benchmark that works once by accident is not a baseline
        bench = target.bench(seed=run_no)
        if bad := failure(bench, "crashed"):
            raise RepairFailed("bench-failed", f"benchmark run {run_no} {bad[1]}\n{bench.tail()}")
        if s.spec.bench.metric:
            try:
                metric_value(bench.output, s.spec.bench.metric)
            except ValueError as e:
                raise RepairFailed("bench-failed", f"benchmark run {run_no} has no valid metric: {e}") from None
    return len(report.passed)


# --- inventories --------------------------------------------------------------------------------------------

def is_test_file(rel: str) -> bool:
    parts = Path(rel).parts
    name = parts[-1]
    if name.endswith(".py"):
        return name.startswith("test_") or name.endswith("_test.py") or any(p in ("test", "tests") for p in parts[:-1])
    return name.endswith((".java", ".kt")) and ("test" in parts[:-1] or name.endswith(("Test.java", "Tests.java")))


_JAVA_TEST = re.compile(  # a test annotation, other annotations (with arguments), modifiers, a type, the name
    r"@(?:Test|ParameterizedTest|RepeatedTest|TestFactory|TestTemplate)\b(?:\s*\([^)]*\))?"
    r"(?:\s*@[\w.]+(?:\s*\([^)]*\))?)*\s*(?:(?:public|protected|private|static|final)\s+)*[\w<>\[\].,? ]+?\s(\w+)\s*\(")


def declared_tests(worktree: Path) -> set[str]:
    """Names of the tests the project's test files define (pytest/unittest functions and methods named test*,
    JUnit methods annotated @Test): the reference when the unmodified suite cannot even be collected."""
    names: set[str] = set()
    for rel in gitops.tracked_files(worktree):
        if not is_test_file(rel) or not (worktree / rel).is_file():
            continue
        text = (worktree / rel).read_text(errors="replace")
        if rel.endswith(".py"):
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue  # a file this Python cannot parse: its tests show up as collection errors
            names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                      and n.name.startswith("test") and not n.name.startswith("test_support")}
        else:
            names |= set(_JAVA_TEST.findall(text))
    return names


_ASSERTION = re.compile(r"\bassert|\bexpect\w*\s*\(|\bverify\s*\(|\bfail\s*\(|\bshould\w*\s*\(|\braises\b", re.I)


def weakened(repo: Path, original: str, commit: str) -> list[str]:
    """Assertion lines a repair removed or rewrote in test sources (the spec may leave tests editable)."""
    hits, current = [], ""
    for line in gitops.diff_text(repo, original, commit).splitlines():
        if line.startswith("--- "):
            current = line[6:] if line.startswith("--- a/") else ""
        elif line.startswith("-") and not line.startswith("---") and current and is_test_file(current) \
                and _ASSERTION.search(line):
            hits.append(f"{current}: {line[1:].strip()[:100]}")
    return hits


def test_name(test_id: str) -> str:
    """The function or method name of a test id: pytest 'f.py::Cls::test_x[1]', JUnit 'pkg.Cls#testX(int)'."""
    bare = re.sub(r"[\[(].*$", "", test_id.split(" ")[0])  # parameters first: they may hold dots
    return re.split(r"::|#|\.", bare)[-1] if "::" in bare or "#" in bare else bare


def _in_tree(repo: Path, commit: str, message: str) -> bool:
    """Whether a skip reason is written in the original code (so the skip was there before the repair)."""
    reason = re.sub(r"^(?:Skipped|condition):\s*", "", message.strip())[:80].strip()
    if len(reason) < 4:
        return False
    done = subprocess.run(["git", "-C", str(repo), "grep", "-F", "-q", "-e", reason, commit, "--"], capture_output=True)
    return done.returncode == 0


def markers(worktree: Path) -> Counter:
    """(file, marker) -> occurrences, over every tracked text file (source, tests, build and runner config)."""
    found: Counter = Counter()
    for rel in gitops.tracked_files(worktree):
        path = worktree / rel
        if Path(rel).suffix not in _TEXT or not path.is_file() or path.is_symlink() or path.stat().st_size > 1_000_000:
            continue
        text = path.read_text(errors="replace")
        for name, (rx, _) in _MARKERS.items():
            if n := len(rx.findall(text)):
                found[(rel, name)] = n
    return found


# --- what the model and the reviewer are told ------------------------------------------------------------

_ERROR = re.compile(r"(?:^|\s)(?:\[ERROR\].*|error:.*|E\s{2,}\S.*|\w*(?:Error|Exception)\b:.*|FAILED .*)$", re.M)


def first_error(output: str) -> str:
    """The first compiler, JVM or Python error line of a failing step (ANSI codes and paddings stripped)."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", output)
    m = _ERROR.search(clean)
    return m.group(0).strip()[:400] if m else ""


def toolchain() -> str:
    """The versions of the toolchains on this machine (the model cannot guess which JDK or Python it has)."""
    lines = []
    for exe, args in (("python3", ["--version"]), ("java", ["-version"]), ("mvn", ["-v"]), ("gradle", ["-v"]),
                      ("gcc", ["--version"]), ("cargo", ["--version"]), ("go", ["version"]), ("zig", ["version"])):
        if shutil.which(exe) is None:
            continue
        try:
            done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20, env=sh.clean_env({}))
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if first:
            lines.append(f"{exe}: {first}")
    return "\n".join(lines) or "(none found)"


def toolchain_label(s: Session) -> str:
    cmds = " ".join(filter(None, [s.spec.test.cmd, s.spec.build.cmd if s.spec.build else ""]))
    if re.search(r"\b(mvn|gradle|java|javac)\b", cmds) and shutil.which("java"):
        done = subprocess.run(["java", "-version"], capture_output=True, text=True)
        m = re.search(r'version "(\d+)', done.stderr)
        return f"JDK {m.group(1)}" if m else "this JDK"
    if re.search(r"\b(python3?|pytest)\b", cmds):
        import sys

        return f"Python {sys.version_info.major}.{sys.version_info.minor}"
    return "this machine's toolchain"
