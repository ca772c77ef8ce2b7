"""Maven helpers for any Java target: failing tests from surefire reports, test selection, versions."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path


def surefire_failures(worktree: Path) -> list[str]:
    """Failing or erroring tests as 'Class#method: first line of message', from every module's
    target/surefire-reports/TEST-*.xml (empty when there are no reports or nothing failed)."""
    found: list[str] = []
    for report in sorted(worktree.glob("**/target/surefire-reports/TEST-*.xml")):
        try:
            root = ET.parse(report).getroot()
        except ET.ParseError:
            found.append(f"{report.name}: unreadable surefire report")
            continue
        for case in root.iter("testcase"):
            for kind in ("failure", "error"):
                problem = case.find(kind)
                if problem is None:
                    continue
                message = problem.get("message") or (problem.text or "").strip() or problem.get("type", kind)
                first = message.strip().splitlines()[0] if message.strip() else kind
                found.append(f"{case.get('classname', '?')}#{case.get('name', '?')}: {first}")
    return found


def test_selection_flag(tests: list[str]) -> str:
    """`-Dtest=A#m1+m2,B` for surefire from names like 'pkg.A#m1', 'A#m2', 'B' (simple class names)."""
    methods: dict[str, list[str]] = {}
    for name in tests:
        cls, _, method = name.partition("#")
        cls = cls.rsplit(".", 1)[-1]
        method = re.sub(r"[(\[].*$", "", method)  # parameterised names: 'm(int)[1]' -> 'm'
        entry = methods.setdefault(cls, [])
        if method and method not in entry:
            entry.append(method)
    parts = [cls + ("#" + "+".join(ms) if ms else "") for cls, ms in methods.items()]
    return "-Dtest=" + ",".join(parts)


def jvm_versions() -> dict[str, str | None]:
    """First lines of `java -version` and `mvn -v` (None when the tool is missing)."""
    return {"java": _first_line(["java", "-version"]), "maven": _first_line(["mvn", "-v"])}


def _first_line(argv: list[str]) -> str | None:
    if not shutil.which(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).strip()  # mvn colours its banner
    return text.splitlines()[0] if text else None
