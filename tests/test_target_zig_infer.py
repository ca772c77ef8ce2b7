"""The zig-infer target: its spec validates, the engine builds, and its correctness suite passes.

Real subprocesses throughout: Zig build, weight generation, the target's own pytest suite, bench.py.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_spec

TARGET = Path(__file__).resolve().parent.parent / "targets" / "zig-infer"


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=TARGET, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built() -> None:
    r = run([sys.executable, "make_weights.py", "tiny"])
    assert r.returncode == 0, r.stderr
    r = run([sys.executable, "-m", "ziglang", "build", "-Doptimize=ReleaseFast"], timeout=600)
    assert r.returncode == 0, r.stderr


def test_spec_is_valid() -> None:
    spec = load_spec(TARGET / "optimize.toml")
    assert spec.bench.metric and spec.bench.metric.better == "higher"
    assert re.search(spec.bench.metric.regex or "", "decode: 123.45 tok/s").group(1) == "123.45"
    assert "tests/**" in spec.guard.protected and "bench.py" in spec.guard.protected


@pytest.mark.slow
def test_correctness_suite_passes(built: None) -> None:
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert re.search(r"\b9 passed\b", r.stdout), r.stdout[-500:]


@pytest.mark.slow
def test_bench_prints_metric_lines_on_tiny(built: None) -> None:
    r = run([sys.executable, "bench.py", "--model", "weights/tiny", "--steps", "100"])
    assert r.returncode == 0, r.stderr
    assert float(re.search(r"^decode: ([0-9.]+) tok/s$", r.stdout, re.M).group(1)) > 0
    assert re.search(r"^prefill: [0-9.]+ tok/s$", r.stdout, re.M)
    tokens = re.search(r"^tokens: (.*)$", r.stdout, re.M).group(1).split()
    ref = run([sys.executable, "reference.py", "--model", "weights/tiny", "--steps", "100"])
    assert ref.returncode == 0, ref.stderr
    assert re.search(r"^tokens: (.*)$", ref.stdout, re.M).group(1).split() == tokens


def test_transcript_is_current(tmp_path: Path) -> None:
    # The committed showcase.jsonl must be what make_transcript.py writes from the variants.
    r = run([sys.executable, "showcase/make_transcript.py", str(tmp_path / "t.jsonl")])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.jsonl").read_text() == (TARGET / "showcase.jsonl").read_text()


def _attempt_calls() -> list[list[dict]]:
    attempts: dict[str, list[dict]] = {}
    for line in (TARGET / "showcase.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("tag", "").startswith("attempt-"):
            attempts.setdefault(rec["tag"], []).extend(rec["response"]["tool_calls"])
    return [attempts[tag] for tag in sorted(attempts)]


def _apply(files: dict[str, str], calls: list[dict]) -> None:
    for call in calls:
        args = json.loads(call["arguments"])
        if call["name"] == "write_file":
            files[args["path"]] = args["content"]
        elif call["name"] == "edit_file":
            text = files.get(args["path"], "")
            assert text.count(args["old"]) == 1, f"{args['path']}: edit does not match exactly once"
            files[args["path"]] = text.replace(args["old"], args["new"])


def test_showcase_edits_apply_whatever_the_earlier_verdicts() -> None:
    # A rejected attempt vanishes and the next one starts from the current best, so each attempt's
    # edits must apply on top of every combination of earlier accepted attempts.
    base = {f"src/{p.name}": p.read_text() for p in (TARGET / "src").glob("*.zig")}
    attempts = _attempt_calls()
    assert len(attempts) >= 5
    for i, calls in enumerate(attempts):
        for kept in itertools.product([False, True], repeat=i):
            files = dict(base)
            for keep, earlier in zip(kept, attempts[:i], strict=True):
                if keep:
                    _apply(files, earlier)
            _apply(files, calls)
