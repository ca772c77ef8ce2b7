"""The verification pipeline: the harness's judgement of a candidate, never the model's.

guard (protected paths) → restore protected files → clean build → tests with a fresh seed →
interleaved A/B against the current best, every candidate sample checked for the same output →
guard metrics → verdict with a reason code and hack flags.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import TargetSpec
from agent.target import BENCH_SANDBOX, Target, failure
from tools import gitops, stats
from tools.bench import Sample, SampleError, run_sample

CACHE_HINTS = re.compile(r"lru_cache|functools\.cache|pickle\.dump|shelve|memo|\bcache\s*[\[=]|open\(.*['\"][wa]b?['\"]")


@dataclass
class Arm:
    """A built checkout the harness can measure."""

    commit: str
    worktree: Path
    cmd: str | None = None  # another command than the spec's benchmark (a reference implementation)


@dataclass
class Outcome:
    verdict: str  # accepted | rejected | error
    reason: str
    detail: str = ""
    speedup: float | None = None
    ci: tuple[float, float] | None = None
    pairs: int = 0
    value: float | None = None
    flags: list[str] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)


@dataclass
class Measurement:
    decision: stats.Decision
    a: list[Sample]
    b: list[Sample]

    def mean(self, arm: str) -> float:
        values = [s.value for s in (self.a if arm == "a" else self.b)]
        return math.exp(sum(math.log(v) for v in values) / len(values))


class OutputMismatch(Exception):
    pass


def expected_lines(spec: TargetSpec, output: str) -> list[str]:
    """The output lines the candidate must reproduce exactly (checksums, counts, token ids)."""
    patterns = [re.compile(p) for p in spec.bench.same_output]
    return [ln for ln in output.splitlines() if any(p.search(ln) for p in patterns)]


def measure(spec: TargetSpec, a: Arm, b: Arm, *, looks: list[int], min_effect: float,
            expected: list[str] | None = None, on_pair=None) -> Measurement:
    """Interleaved pairs of fresh processes; raises SampleError or OutputMismatch from arm B."""
    metric, samples_a, samples_b = spec.bench.metric, [], []

    def sample(arm: Arm, name: str, store: list[Sample]):
        def one(round_: int) -> float:
            s, output = run_sample(arm.cmd or spec.bench.cmd, arm.worktree, metric=metric, timeout=spec.bench.timeout,
                                   arm=name, round=round_, sandbox=BENCH_SANDBOX, pin_cpu=spec.decide.pin_cpu)
            if expected is not None and expected_lines(spec, output) != expected:
                raise OutputMismatch(_mismatch(expected, expected_lines(spec, output)))
            store.append(s)
            return s.value
        return one

    decision, _ = stats.interleaved(
        sample(a, "a", samples_a), sample(b, "b", samples_b),
        better=metric.better if metric else "lower", min_effect=min_effect, alpha=spec.decide.alpha,
        looks=looks, order="abba", on_pair=on_pair)
    return Measurement(decision, samples_a, samples_b)


def _mismatch(expected: list[str], got: list[str]) -> str:
    for want, have in zip(expected, got, strict=False):
        if want != have:
            return f"expected {want[:120]!r}, got {have[:120]!r}"
    return f"expected {len(expected)} checked lines, got {len(got)}"


def verify(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, *, min_effect: float, expected: list[str],
           protected_attempts: list[str], logs: Path) -> Outcome:
    protected = spec.guard.protected
    touched = [p for p in gitops.changed_paths(repo, best.commit, cand.commit) if gitops.matches(p, protected)]
    if touched or protected_attempts:
        return Outcome("rejected", "protected-path", "changed " + ", ".join(sorted(set(touched + protected_attempts))))
    if best.commit == cand.commit or not gitops.changed_paths(repo, best.commit, cand.commit):
        return Outcome("rejected", "no-change", "the attempt left the code unchanged")
    gitops.clean_untracked(cand.worktree)
    gitops.restore_protected(cand.worktree, best.commit, protected)  # belt and braces
    target = Target(spec, cand.worktree)
    build = target.build()
    if build is not None:
        (logs / "build.log").write_text(build.output)
        if bad := failure(build, "build-failed"):
            return Outcome("rejected", bad[0], f"{bad[1]}\n{build.tail()}")
    tests = target.test()
    (logs / "test.log").write_text(tests.output)
    if bad := failure(tests, "tests-failed"):
        return Outcome("rejected", bad[0], f"{bad[1]}\n{tests.tail()}")
    try:
        m = measure(spec, best, cand, looks=spec.decide.looks, min_effect=min_effect, expected=expected)
    except OutputMismatch as e:
        return Outcome("rejected", "output-mismatch", str(e))
    except SampleError as e:
        reason = {"metric-missing": "metric-missing", "timeout": "timeout"}.get(e.kind, "crashed")
        return Outcome("rejected", reason, f"{e}\n{e.output_tail}")
    return judge(spec, repo, best, cand, m, min_effect)


def judge(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, m: Measurement, min_effect: float) -> Outcome:
    d = m.decision
    samples = [s.model_dump() for s in m.a + m.b]
    base = dict(speedup=d.speedup, ci=d.ci, pairs=d.pairs, value=m.mean("b"), samples=samples)
    flags = hack_flags(spec, repo, best, cand, m)
    if d.verdict != "better":
        reason = {"worse": "slower", "same": "not-significant"}.get(d.verdict, "not-significant")
        detail = f"{d.verdict}: speedup {d.speedup:.3f} [{d.ci[0]:.3f}, {d.ci[1]:.3f}] after {d.pairs} pairs"
        return Outcome("rejected", reason, detail, flags=flags, **base)
    if problem := guard_metrics(spec, m):
        return Outcome("rejected", "guard-metric", problem, flags=flags, **base)
    return Outcome("accepted", "faster", f"speedup {d.speedup:.3f} [{d.ci[0]:.3f}, {d.ci[1]:.3f}]", flags=flags, **base)


def _ratio(m: Measurement, attr: str) -> float:
    """Geometric mean of per-pair B/A ratios of a process measurement (>1: B uses more)."""
    pairs = list(zip(m.a, m.b, strict=False))
    logs = [math.log(max(getattr(b, attr), 1e-9) / max(getattr(a, attr), 1e-9)) for a, b in pairs]
    return math.exp(sum(logs) / len(logs))


def guard_metrics(spec: TargetSpec, m: Measurement) -> str | None:
    for g in spec.guard.metrics:
        ratio = _ratio(m, "max_rss_kb" if g.name == "peak_rss" else "cpu_s")
        if ratio > 1 + g.max_regression:
            return f"{g.name} grew {ratio - 1:+.1%} (allowed {g.max_regression:.0%})"
    if spec.bench.metric is not None and _ratio(m, "wall_s") > 1.0 + spec.decide.min_effect:
        # The metric says faster but the whole process is not: work moved out of the timed region.
        return f"metric improved {m.decision.speedup:.2f}x but the benchmark process got slower ({_ratio(m, 'wall_s'):.2f}x wall time)"
    return None


def hack_flags(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, m: Measurement) -> list[str]:
    flags = []
    size = gitops.diff_size(repo, best.commit, cand.commit)
    if m.decision.speedup > spec.guard.max_plausible_speedup and size < 50:
        flags.append(f"implausible: {m.decision.speedup:.1f}x from a {size}-line diff")
    if m.decision.speedup > 1.2 and _ratio(m, "cpu_s") > 1.0 and _ratio(m, "wall_s") > 0.95:
        flags.append("metric faster but neither CPU time nor wall time of the process dropped")
    added = [ln for ln in gitops.diff_text(repo, best.commit, cand.commit).splitlines() if ln.startswith("+")]
    if any(CACHE_HINTS.search(ln) for ln in added):
        flags.append("diff adds a cache or writes files: check it is not keyed on benchmark inputs")
    return flags
