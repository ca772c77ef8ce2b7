"""The matching-engine target: build it, run its JUnit suite and its benchmark on the small preset;
check that the showcase transcript's edits apply whatever the harness decides about each attempt.

Real Maven and JVM subprocesses, offline (`make -C targets/matching-engine setup` fetches everything)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_spec
from tools.maven import surefire_failures

TARGET = Path(__file__).resolve().parents[1] / "targets/matching-engine"
M2 = Path.home() / ".m2/repository"
MAIN = "dev.nightshift.exchange.bench.ThroughputBenchmark"

SHOWCASE = TARGET / "showcase"
needs_maven = pytest.mark.skipif(
    not shutil.which("mvn") or not (M2 / "com/lmax/disruptor").is_dir(),
    reason="Maven artifacts missing: run make -C targets/matching-engine setup",
)


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def copy_target(dest: Path) -> Path:
    shutil.copytree(TARGET, dest, ignore=shutil.ignore_patterns("target", "showcase", "showcase.jsonl"))
    return dest


def showcase_module(name: str):
    sys.path.insert(0, str(SHOWCASE))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(SHOWCASE))


def test_showcase_edits_apply_whatever_the_earlier_verdicts(tmp_path: Path) -> None:
    """A rejected attempt vanishes and the next starts from the current best: every subset of
    earlier attempts may have been kept, and each attempt's edits must still apply."""
    transcript = showcase_module("make_transcript")
    apply = showcase_module("verify").apply
    attempts = transcript.ATTEMPTS
    for n, kept in enumerate(itertools.product([False, True], repeat=len(attempts) - 1)):
        tree = tmp_path / str(n)
        shutil.copytree(TARGET / "src", tree / "src")
        for keep, steps in zip(kept, attempts[:-1], strict=True):
            if keep:
                apply(tree, steps)
        apply(tree, attempts[-1])  # raises when an `old` text is missing
    for i, later in enumerate(attempts):
        writes = {a["path"] for _, calls in later for name, a in calls if name == "write_file"}
        for earlier in attempts[:i]:
            touched = {a["path"] for _, calls in earlier for name, a in calls if name in ("write_file", "edit_file")}
            assert not writes & touched, f"attempt {i + 1} overwrites files an earlier attempt edits: {writes & touched}"


def test_showcase_jsonl_is_what_make_transcript_writes(tmp_path: Path) -> None:
    transcript = showcase_module("make_transcript")
    lines = [json.loads(ln) for ln in (TARGET / "showcase.jsonl").read_text().splitlines()]
    assert lines[0]["transcript"] == "scripted"
    plan = json.loads(lines[1]["response"]["content"])["strategies"]
    assert [p["title"] for p in plan] == [p["title"] for p in transcript.PLAN]
    attempt_tags = sorted({ln["tag"] for ln in lines[2:]})
    assert attempt_tags == [f"attempt-{i:03d}" for i in range(1, len(transcript.ATTEMPTS) + 1)]
    assert len(transcript.ACCEPTED) == len(transcript.ATTEMPTS) == len(plan)
    calls = [c for ln in lines[2:] for c in ln["response"]["tool_calls"]]
    expected = [(name, args) for steps in transcript.ATTEMPTS for _, cs in steps for name, args in cs]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == expected


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy (other tests may build the real folder at the same time)."""
    tree = copy_target(tmp_path_factory.mktemp("me") / "matching-engine")
    proc = run(["mvn", "-B", "-q", "-o", "-DskipTests", "package"], tree)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tree


def bench(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["java", "-cp", "target/classes:target/lib/*", MAIN, "small", *args], tree, timeout=120)


@pytest.mark.slow
@needs_maven
def test_benchmark_output_matches_the_spec(built: Path) -> None:
    spec = load_spec(TARGET / "optimize.toml")
    proc = bench(built)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"warm-up: [0-9]+\.[0-9]{3} MT/s", lines[1])
    assert re.fullmatch(r"1\. [0-9]+\.[0-9]{3} MT/s", lines[2])
    average = re.findall(spec.bench.metric.regex, proc.stdout)
    assert len(average) == 1 and float(average[0]) > 0
    checksums = [ln for ln in lines if re.match(spec.bench.same_output[0], ln)]
    assert len(checksums) == 1 and re.fullmatch(r"checksum: [0-9a-f]{16}/[0-9]+", checksums[0])


@pytest.mark.slow
@needs_maven
def test_final_state_is_the_same_for_every_topology(built: Path) -> None:
    outputs = [bench(built, "--me", me, "--re", re_, "--wait", wait, "--iterations", "1")
               for me, re_, wait in [("1", "1", "blocking"), ("2", "1", "yielding"), ("4", "2", "busy_spin")]]
    assert all(p.returncode == 0 for p in outputs), [p.stderr for p in outputs]
    sums = {re.search(r"checksum: .*", p.stdout).group(0) for p in outputs}
    assert len(sums) == 1


@pytest.mark.slow
@needs_maven
def test_junit_suite_passes(built: Path) -> None:
    proc = run(["mvn", "-B", "-q", "-o", "test"], built)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert surefire_failures(built) == []
    assert len(list((built / "target/surefire-reports").glob("TEST-*.xml"))) >= 2


@pytest.mark.slow
@needs_maven
def test_a_broken_matching_rule_is_caught(tmp_path: Path) -> None:
    """Give the newest order priority within a level: the benchmark's reference check and the
    JUnit suite must both notice."""
    tree = copy_target(tmp_path / "broken")
    book = tree / "src/main/java/dev/nightshift/exchange/OrderBook.java"
    body = book.read_text()
    assert body.count(".addLast(order)") == 1
    book.write_text(body.replace(".addLast(order)", ".addFirst(order)"))
    assert run(["mvn", "-B", "-q", "-o", "-DskipTests", "package"], tree).returncode == 0
    proc = bench(tree, "--iterations", "1")
    assert proc.returncode != 0
    assert "differs from the reference" in proc.stderr
    assert run(["mvn", "-B", "-q", "-o", "test"], tree).returncode != 0
    failed = surefire_failures(tree)
    assert any("restingOrdersAreSortedByPriceThenTime" in f for f in failed), failed
