"""What a test run ran, by test identity: the runner's own reports, read after the run.

Sources, all read by the harness (none trusted to the spec):
- pytest: `tools/pytest_probe/nightshift_probe.py`, loaded into every pytest process the test
  command starts through PYTEST_ADDOPTS (so `make test`, shell scripts and `python -m pytest` alike);
  it also names the configuration file pytest read and every plugin it loaded from the tree.
- JUnit XML that JVM runners write anyway: Maven Surefire/Failsafe (`target/*-reports/TEST-*.xml`,
  however quiet the console is) and Gradle (`build/test-results/**/*.xml`); stale files are removed
  before the run.
- the console output of Rust's libtest (`test NAME ... ok`) and of `go test -json`.

`required_missing` is the gate: every test that passed on the reference run must be collected and
pass again; a test that disappears, is deselected or skipped fails the gate, and new tests do not
make up for it. `runner_config` names the files each detected runner reads as configuration, which
the harness freezes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent / "pytest_probe"
JUNIT_DIRS = ("target/surefire-reports", "target/failsafe-reports", "build/test-results")
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


@dataclass(frozen=True)
class Case:
    id: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""  # first line of the failure or skip reason


@dataclass
class Report:
    cases: dict[str, Case] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # runners whose reports were read: pytest, surefire, ...
    config: list[str] = field(default_factory=list)  # configuration files the runner read (worktree-relative)
    plugins: list[str] = field(default_factory=list)  # runner plugins loaded from the worktree (conftest.py, ...)
    deselected: list[str] = field(default_factory=list)

    def add(self, case: Case) -> None:
        """The same id seen twice (two modules, a rerun) keeps its worst outcome."""
        old = self.cases.get(case.id)
        if old is None or SEVERITY[case.outcome] > SEVERITY[old.outcome]:
            self.cases[case.id] = case

    @property
    def passed(self) -> set[str]:
        return {c.id for c in self.cases.values() if c.outcome == "passed"}

    @property
    def failing(self) -> list[Case]:
        return [c for c in self.cases.values() if c.outcome in ("failed", "error")]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for c in self.cases.values():
            counts[c.outcome] = counts.get(c.outcome, 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
        return f"{shown} (from {', '.join(self.sources)})" if self.sources else "no test report"


# --- running: what the harness adds to the test command's environment -----------------------------

def environment(reports: Path, base: dict[str, str]) -> dict[str, str]:
    """Variables that make every pytest process of the test command load the probe, which writes into `reports`."""
    addopts = " ".join(filter(None, [base.get("PYTEST_ADDOPTS", ""), "-p nightshift_probe"]))
    pythonpath = os.pathsep.join(filter(None, [base.get("PYTHONPATH", ""), str(PROBE_DIR)]))
    return {"PYTEST_ADDOPTS": addopts, "PYTHONPATH": pythonpath, "NIGHTSHIFT_TEST_REPORTS": str(reports)}


def junit_files(worktree: Path) -> list[Path]:
    """JUnit XML reports under the worktree that git does not track (a committed "report" is not one),
    symlinks not followed (a planted link must not lead out of the worktree)."""
    found = []
    for folder, dirs, files in os.walk(worktree):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        where = f"/{Path(folder).relative_to(worktree).as_posix()}/"
        if any(f"/{d}/" in where for d in JUNIT_DIRS):
            found += [Path(folder) / f for f in files if f.endswith(".xml") and f.startswith("TEST-")]
    if not found:
        return []
    listed = subprocess.run(["git", "ls-files", "-z", "--", *(str(p.relative_to(worktree)) for p in found)],
                            cwd=worktree, capture_output=True)
    tracked = {worktree / p for p in listed.stdout.decode(errors="surrogateescape").split("\0") if p}
    return sorted(p for p in found if p not in tracked)


def clear_junit(worktree: Path) -> None:
    """Remove reports left by an earlier run: only this run's may count."""
    for path in junit_files(worktree):
        path.unlink(missing_ok=True)


def collect(worktree: Path, reports: Path, output: str, seen_as: Path | None = None) -> Report:
    """Everything this run's runners reported: probe files in `reports`, JUnit XML in the worktree, console
    lines. `seen_as`: where the runner saw the worktree, when the sandbox showed a copy at another path."""
    report = Report()
    roots = [r.resolve() for r in (seen_as, worktree) if r is not None]
    for path in sorted(reports.glob("pytest-*.json")) if reports.is_dir() else []:
        _read_probe(report, path, roots)
    xmls = junit_files(worktree)
    for path in xmls:
        _read_junit(report, path)
    if xmls:
        kinds = sorted({"gradle" if "build/test-results" in p.as_posix() else p.parent.name.removesuffix("-reports")
                        for p in xmls})
        report.sources += kinds
    if _read_libtest(report, output):
        report.sources.append("libtest")
    if _read_go_json(report, output):
        report.sources.append("go test -json")
    return report


def _inside(path: str, roots: list[Path]) -> str | None:
    for root in roots:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            continue
    return None


def _read_probe(report: Report, path: Path, roots: list[Path]) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        report.sources.append("pytest (unreadable probe report)")
        return
    if "pytest" not in report.sources:
        report.sources.append("pytest")
    results = data.get("results", {})
    for nodeid in data.get("collected", []):
        r = results.get(nodeid, {"outcome": "error", "message": "collected but never reported"})
        report.add(Case(nodeid, r.get("outcome", "error"), r.get("message", "")))
    for nodeid, r in results.items():  # reported without being collected: keep what it says
        if nodeid not in report.cases:
            report.add(Case(nodeid, r.get("outcome", "error"), r.get("message", "")))
    for err in data.get("errors", []):
        report.add(Case(f"{err.get('id')} (collection)", "error", err.get("message", "")))
    report.deselected += data.get("deselected", [])
    for key, out in (("config", report.config), ("plugins", report.plugins)):
        for src in data.get(key, []):
            if (rel := _inside(src, roots)) and rel not in out:
                out.append(rel)


def _first(text: str | None) -> str:
    return next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")


def _read_junit(report: Report, path: Path) -> None:
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError):
        report.add(Case(f"{path.name} (unreadable report)", "error", "the JUnit XML report could not be parsed"))
        return
    for case in tree.getroot().iter("testcase"):
        cid = f"{case.get('classname', '?')}#{case.get('name', '?')}"
        outcome, message = "passed", ""
        for kind, name in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
            node = case.find(kind)
            if node is not None:
                outcome = name
                message = _first(node.get("message")) or _first(node.text) or node.get("type", kind)
                break
        report.add(Case(cid, outcome, message))


_LIBTEST_BINARY = re.compile(r"^\s*Running (.+?)(?: \(.*\))?\s*$")
_LIBTEST_CASE = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)\b")


def _read_libtest(report: Report, output: str) -> bool:
    binary, found, panics = "", False, _libtest_panics(output)
    for line in output.splitlines():
        if m := _LIBTEST_BINARY.match(line):
            binary = m.group(1)
        elif m := _LIBTEST_CASE.match(line):
            found = True
            outcome = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}[m.group(2)]
            report.add(Case(f"{binary}::{m.group(1)}" if binary else m.group(1), outcome,
                            panics.get(m.group(1), "") if outcome == "failed" else ""))
    return found


def _libtest_panics(output: str) -> dict[str, str]:
    """name -> the panic message in its '---- name stdout ----' section (the line after
    "panicked at FILE:LINE:COL:", or the quoted message of older Rust versions)."""
    out, lines = {}, output.splitlines()
    for i, line in enumerate(lines):
        if not (m := re.match(r"^---- (\S+) stdout ----$", line)):
            continue
        for j in range(i + 1, min(i + 8, len(lines))):
            if "panicked at" in lines[j]:
                rest = lines[j].split("panicked at", 1)[1].strip()
                out[m.group(1)] = lines[j + 1].strip() if rest.endswith(":") and j + 1 < len(lines) else rest
                break
    return out


def _read_go_json(report: Report, output: str) -> bool:
    found, failure_lines = False, {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict) or not ev.get("Test"):
            continue
        cid = f"{ev.get('Package', '')}.{ev['Test']}"
        action = ev.get("Action")
        if action == "output" and "_test.go:" in ev.get("Output", "") and cid not in failure_lines:
            failure_lines[cid] = ev["Output"].strip()
        elif action in ("pass", "fail", "skip"):
            found = True
            outcome = {"pass": "passed", "fail": "failed", "skip": "skipped"}[action]
            report.add(Case(cid, outcome, failure_lines.get(cid, "") if outcome == "failed" else ""))
    return found


# --- judging ---------------------------------------------------------------------------------------

def required_missing(required: Report, got: Report) -> list[Case]:
    """Tests that passed in `required` and did not pass in `got`: missing (not collected, deselected),
    skipped or failing. Tests only `got` has are ignored: new tests do not compensate."""
    out = []
    for cid in sorted(required.passed):
        case = got.cases.get(cid)
        if case is None:
            why = "deselected" if cid in got.deselected else "not run"
            out.append(Case(cid, "missing", why))
        elif case.outcome != "passed":
            out.append(case)
    return out


def describe(cases: list[Case], limit: int = 10) -> str:
    """One line per test: id, what happened, the first line of its message."""
    lines = [f"  {c.id}: {c.outcome}" + (f": {c.message[:200]}" if c.message else "") for c in cases[:limit]]
    if len(cases) > limit:
        lines.append(f"  ... and {len(cases) - limit} more")
    return "\n".join(lines)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def clean_tail(output: str, lines: int = 40, width: int = 300) -> str:
    """The end of a log a reviewer can read: no escape codes or carriage-return redraws, no line that
    the log repeats three times or more (banners, progress), no runs of blank lines."""
    text = _ANSI.sub("", output).replace("\r\n", "\n")
    rows = [row.rsplit("\r", 1)[-1].rstrip() for row in text.split("\n")]
    counts: dict[str, int] = {}
    for row in rows:
        if row.strip():
            counts[row.strip()] = counts.get(row.strip(), 0) + 1
    kept: list[str] = []
    dropped = 0
    for row in rows:
        if row.strip() and counts[row.strip()] >= 3:
            dropped += 1
            continue
        if not row.strip() and (not kept or not kept[-1].strip()):
            continue
        kept.append(row if len(row) <= width else row[:width] + " [...]")
    tail = kept[-lines:]
    while tail and not tail[0].strip():
        tail.pop(0)
    note = [f"[{dropped} repeated lines (banners, progress) left out]"] if dropped else []
    return "\n".join(note + tail).rstrip()


# --- configuration the runners read ----------------------------------------------------------------

_PYTEST_INI = ["pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "pyproject.toml", "tox.ini", "setup.cfg"]
_JUNIT_PLATFORM = ["**/junit-platform.properties", "**/META-INF/services/org.junit.*"]

# Where each runner looks for configuration, including files that would take effect if created
# (a new pytest.ini above the tests, a new conftest.py, a new .mvn/maven.config).
RUNNER_CONFIG: dict[str, list[str]] = {
    "pytest": [*_PYTEST_INI, *(f"**/{n}" for n in _PYTEST_INI), "conftest.py", "**/conftest.py",
               "sitecustomize.py", "usercustomize.py"],
    "maven": ["pom.xml", "**/pom.xml", ".mvn/**", "mvnw", *_JUNIT_PLATFORM],
    "gradle": ["build.gradle", "build.gradle.kts", "**/build.gradle", "**/build.gradle.kts", "settings.gradle",
               "settings.gradle.kts", "gradle.properties", "gradle/**", "buildSrc/**", "gradlew", *_JUNIT_PLATFORM],
    "cargo": ["Cargo.toml", "**/Cargo.toml", ".cargo/**", "build.rs", "**/build.rs", "rust-toolchain",
              "rust-toolchain.toml"],
    "go": ["go.mod", "**/go.mod", "go.work"],
    "make": ["Makefile", "makefile", "GNUmakefile", "**/*.mk"],
    "npm": ["package.json", "jest.config.*", "vitest.config.*", ".mocharc*"],
    "tox": ["tox.ini"],
    "nox": ["noxfile.py"],
    "zig": ["build.zig", "build.zig.zon"],
}
_COMMAND_WORDS = {
    "pytest": r"\bpy\.?test\b", "maven": r"\bmvnw?\b", "gradle": r"\bgradlew?\b", "cargo": r"\bcargo\b",
    "go": r"\bgo\s+(test|build|run|vet)\b", "make": r"(^|[\s;&|(])make\b", "npm": r"\b(npm|yarn|pnpm|npx)\b",
    "tox": r"\btox\b", "nox": r"\bnox\b", "zig": r"\bzig(lang)?\s+build\b",
}
_SOURCE_RUNNER = {"pytest": "pytest", "surefire": "maven", "failsafe": "maven", "gradle": "gradle",
                  "libtest": "cargo", "go test -json": "go"}


def runners(commands: list[str], report: Report | None = None) -> set[str]:
    """Runners named by the commands (test, build) or seen in a run's reports."""
    found = {name for name, rx in _COMMAND_WORDS.items() if any(re.search(rx, c) for c in commands)}
    if report is not None:
        found |= {_SOURCE_RUNNER[s] for s in report.sources if s in _SOURCE_RUNNER}
    return found


def runner_config(commands: list[str], report: Report | None = None) -> list[str]:
    """Globs of every file the detected runners read as configuration, plus the exact files a run
    reported reading (pytest's ini file, conftest.py files, plugins loaded from the tree)."""
    globs = [g for name in sorted(runners(commands, report)) for g in RUNNER_CONFIG[name]]
    if report is not None:
        globs += report.config + report.plugins
    return list(dict.fromkeys(globs))
