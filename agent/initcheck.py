"""`optimize init --check`: run a guessed (or written) spec once, on a copy of the project, and say
what works: the build, the tests and how many the harness can identify, the metric, the hold-out.
A JDK module-access failure comes back with the `--add-opens` flags that fix it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from agent import verify
from agent.config import TargetSpec
from agent.target import Target, failure
from agent.verify import Arm
from tools import detect, testreport
from tools.bench import metric_value

COPY_IGNORE = shutil.ignore_patterns(".git", "target", "build", "__pycache__", "node_modules", ".venv", ".tox")


def check(spec: TargetSpec, repo: Path) -> tuple[bool, list[str]]:
    """(everything worked, one line per step). The user's checkout is never written: a copy is used."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nightshift-init-") as tmp:
        copy = Path(tmp) / repo.resolve().name
        shutil.copytree(repo, copy, symlinks=True, ignore=COPY_IGNORE)
        target = Target(spec, copy)
        steps = []
        if spec.build is not None:
            steps.append(("build", spec.build.cmd, target.build))
        for name, cmd, run in steps:
            result = run()
            if bad := failure(result, "failed"):
                return False, lines + [f"✗ {name} ({cmd}): {bad[1]}", *_advice(result.output),
                                       testreport.clean_tail(result.output, 20)]
            lines.append(f"✓ {name} ({cmd}): {result.wall_s:.1f}s")
        tests, inventory = target.test_run()
        if bad := failure(tests, "failed"):
            return False, lines + [f"✗ tests ({spec.test.cmd}): {bad[1]}{verify.failing_tests(tests, inventory)}",
                                   *_advice(tests.output)]
        gate, weak = verify.gate_summary(spec, tests, inventory)
        lines.append(f"{'!' if weak else '✓'} tests ({spec.test.cmd}): {tests.wall_s:.1f}s, test gate {gate}")
        bench = target.bench()
        if bad := failure(bench, "failed"):
            return False, lines + [f"✗ bench ({spec.bench.cmd}): {bad[1]}", *_advice(bench.output),
                                   testreport.clean_tail(bench.output, 20)]
        if spec.bench.metric:
            try:
                value = metric_value(bench.output, spec.bench.metric)
            except ValueError as e:
                return False, lines + [f"✗ bench ({spec.bench.cmd}): no metric: {e}", testreport.clean_tail(bench.output, 20)]
            lines.append(f"✓ bench ({spec.bench.cmd}): {value:g} {spec.bench.metric.unit} in {bench.wall_s:.1f}s")
        else:
            lines.append(f"✓ bench ({spec.bench.cmd}): {bench.wall_s:.1f}s wall time (no metric)")
        checked = verify.expected_lines(spec, bench.output)
        if spec.bench.same_output:
            lines.append(f"{'✓' if checked else '!'} same_output: {len(checked)} checked line(s)"
                         + ("" if checked else ": no line matches; nothing will be compared"))
        error, warning = verify.holdout_baseline(spec, Arm("", copy))
        if error:
            return False, lines + [f"✗ hold-out: {error}"]
        if spec.bench.holdout:
            lines.append(f"{'!' if warning else '✓'} hold-out ({spec.bench.holdout.command(spec.bench.cmd)})"
                         + (f": {warning}" if warning else ": runs and its checked lines change with the seed"))
    return True, lines


def _advice(output: str) -> list[str]:
    if flags := detect.add_opens(output):
        joined = " ".join(flags)
        return [f"  the JDK refused reflective access: add `-DargLine=\"{joined}\"` to the Maven test command "
                f"(or <argLine>{joined}</argLine> in surefire's configuration; for Gradle: jvmArgs)"]
    return []
