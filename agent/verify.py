"""The verification pipeline: the harness's judgement of a candidate, never the model's.

guard (protected paths, refused writes, symlinks out of the repo) → restore protected files →
clean build → tests with a fresh seed (no fewer passing than the best) → remove what the tests
left behind → interleaved A/B against the current best, every candidate sample checked for the
same output (on a fresh input per pair when the bench takes a `{seed}`) → guard metrics →
verdict with a reason code and hack flags.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from agent import lease
from agent import target as targets
from agent.config import TargetSpec
from agent.target import BENCH_SANDBOX, Target, failure, new_seed, passed_tests, protected_globs, with_seed
from tools import gitops, sh, stats, testreport
from tools.bench import Sample, SampleError, metric_value, pause_while_saturated, probe_sample, run_sample

# Added lines that keep results around: memoisation, on-disk stores, files opened for writing.
CACHE_HINTS = re.compile(
    r"lru_cache|functools\.cache\b|@cache\b|pickle\.dump|marshal\.dump|shelve|sqlite3|memo|\bcache\w*\s*(\[|=|\.get|\.set)"
    r"|open\(.*['\"](w|a|x|wb|ab|r\+)['\"]|\.write_(text|bytes)\(|expanduser|gettempdir|/tmp/|getenv\(.HOME|Path\.home"
)


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
    samples: list[dict] = field(default_factory=list)  # re-measured pairs carry "remeasured": why
    host: dict | None = None  # where it was measured, when not on this machine (a Ray benchmark host)
    statistic: str = ""  # what decided: "metric", "cpu" or "wall" time of the process
    remeasured: int = 0  # pairs measured again because the host was contended while they ran


@dataclass
class Measurement:
    decision: stats.Decision
    a: list[Sample]
    b: list[Sample]
    redone: list[stats.Redo[Sample]] = field(default_factory=list)  # pairs measured again, and why
    timed_share: float = 0.05  # least share of the process the metric times (verify.MIN_TIMED_SHARE by default)

    def mean(self, arm: str) -> float:
        values = [s.value for s in (self.a if arm == "a" else self.b)]
        return math.exp(sum(math.log(v) for v in values) / len(values))

    def ratios(self, stat: str) -> list[float]:
        """Per-pair "times better" of B on a process statistic ("wall" or "cpu"): A's time over B's."""
        attr = "cpu_s" if stat == "cpu" else "wall_s"
        return [max(getattr(a, attr), 1e-6) / max(getattr(b, attr), 1e-6) for a, b in zip(self.a, self.b, strict=True)]

    def samples(self) -> list[dict]:
        """Every sample for samples.json, the re-measured ones marked with the reason."""
        out = [s.model_dump() for s in self.a + self.b]
        for r in self.redone:
            out += [{**s.model_dump(), "remeasured": r.reason} for s in (r.a, r.b)]
        return out

    def how(self) -> str:
        """Which statistic decided and what was measured again, for the verdict's detail."""
        d = self.decision
        text = {"cpu": "CPU time of the process tree (wall time agreeing)", "wall": "wall time of the process",
                "metric": "the benchmark's metric"}.get(d.statistic, d.statistic)
        if self.redone:
            why = "; ".join(f"pair {r.attempt}: {r.reason}" for r in self.redone[:5])
            text += f"; {len(self.redone)} pair(s) re-measured ({why}{'; ...' if len(self.redone) > 5 else ''})"
        return text


class OutputMismatch(Exception):
    pass


def expected_lines(spec: TargetSpec, output: str) -> list[str]:
    """The output lines the candidate must reproduce exactly (checksums, counts, token ids)."""
    patterns = [re.compile(p) for p in spec.bench.same_output]
    return [ln for ln in output.splitlines() if any(p.search(ln) for p in patterns)]


def extra_looks(spec: TargetSpec, looks: list[int]) -> list[int]:
    """The confirmation looks a promising candidate may go on to (spec's, else 2x and 3x the last)."""
    return list(spec.decide.extra_looks) if spec.decide.extra_looks is not None else stats.default_extra(looks)


MAX_REDO_SHARE = 0.25  # at most this share of a decision's pairs is measured again for contention
REMEASURE = False  # re-measure pairs whose runs met very different contention: off, the evidence showed no gain (README)
PRESSURE_GAP = 0.3  # difference in the share of a run's time the host was CPU-pressured (PSI "some")


def contended(a: Sample, b: Sample) -> str | None:
    """Why a pair cannot be compared fairly: one of its runs was hindered much more than the other.
    The harness's own view of it: host CPU pressure (PSI) while each run lasted, and how often each
    was preempted. Uniform load hits both runs of a pair alike and is left to the interval."""
    if not REMEASURE:
        return None
    sa, sb = a.stall_s / max(a.wall_s, 1e-9), b.stall_s / max(b.wall_s, 1e-9)
    if abs(sa - sb) > PRESSURE_GAP:
        return f"host CPU pressure {sa:.0%} in A's run vs {sb:.0%} in B's"
    return None


def measure(spec: TargetSpec, a: Arm, b: Arm, *, looks: list[int], min_effect: float,
            expected: list[str] | None = None, on_pair=None, extra: list[int] | None = None,
            share: float | Callable[[], float] | None = None) -> Measurement:
    """Interleaved pairs of fresh processes; raises SampleError or OutputMismatch from arm B.

    The decision is on the metric when the spec has one, else on the process's time: CPU time of the
    process tree for single-threaded CPU-bound arms (wall time as a guard), wall time otherwise
    (tools.stats.process_judge). Pairs whose two runs met very different contention are measured again
    (`contended`), at most MAX_REDO_SHARE of the budget; `extra` looks go on only for a promising B.
    With `share` (the least share of the run the metric times), a metric's "better" waits, look by look,
    until the harness's own timing of the process either agrees or shows the claim cannot be real
    (`moved_check`); still open at the last look, the metric's verdict stands.

    A bench command with `{seed}` gets a fresh seed per pair (the same for both arms), and B's
    checked lines must equal A's of the same pair: a held-out input on every pair, so output
    hard-coded for one input cannot pass. Without `{seed}` they must equal the baseline's.
    Outputs are checked only when `expected` is given (candidates; not A/A or reference runs)."""
    metric = spec.bench.metric
    seeded = "{seed}" in spec.bench.cmd
    extra = extra_looks(spec, looks) if extra is None else extra
    budget = stats.family(looks, extra)[-1]
    max_redo = int(budget * MAX_REDO_SHARE)
    seeds = [new_seed() for _ in range(budget + max_redo)]
    lines: dict[tuple[str, int], list[str]] = {}  # (arm, round) -> checked lines
    counts: dict[tuple[str, int], int] = {}  # (arm, round) -> how often the metric's pattern matched

    def check(round_: int) -> None:
        n_a, n_b = counts.get(("a", round_)), counts.get(("b", round_))
        if n_a is not None and n_b is not None and n_a != n_b:
            raise OutputMismatch(f"the metric's pattern matched {n_b} times in the candidate's output and "
                                 f"{n_a} times in the best's: a second, fake metric line?")
        got, want = lines.get(("b", round_)), lines.get(("a", round_)) if seeded else expected
        if got is None or want is None or got == want:
            return
        detail = _mismatch(want, got) + (f" (seed {seeds[round_]})" if seeded else "")
        if seeded and want and _seed_blind(spec, a, b, got, want):
            detail += "; the candidate prints the same checked lines whatever the seed: hard-coded output?"
        raise OutputMismatch(detail)

    def sample(arm: Arm, name: str):
        def one(round_: int) -> Sample:
            cmd = with_seed(arm.cmd or spec.bench.cmd, seeds[round_])
            s, output = run_sample(cmd, arm.worktree, metric=metric, timeout=spec.bench.timeout,
                                   arm=name, round=round_, sandbox=BENCH_SANDBOX, pin_cpu=spec.decide.pin_cpu)
            lines[(name, round_)] = expected_lines(spec, output)
            if metric and metric.regex:
                counts[(name, round_)] = len(re.findall(metric.regex, output, re.MULTILINE))
            if expected is not None:
                check(round_)
            return s
        return one

    kw = {"min_effect": min_effect, "alpha": spec.decide.alpha, "looks": looks, "extra": extra}
    shares: list[float] = []  # the timed share, measured the first time a metric says "better"

    def timed() -> float:
        if not shares:
            shares.append(share() if callable(share) else float(share or MIN_TIMED_SHARE))
        return shares[0]

    if metric is None:
        judge = stats.process_judge(**kw)  # type: ignore[arg-type]
    else:
        def judge(pairs: list[tuple[Sample, Sample]]) -> stats.Decision | None:
            ratios = stats.speedups([p[0].value for p in pairs], [p[1].value for p in pairs], metric.better)
            d = stats.decide(ratios, **kw)  # type: ignore[arg-type]
            if (d and d.verdict == "better" and share is not None and len(pairs) < budget
                    and moved_check(pairs, d.ci[0], spec.decide.alpha, timed())[0] == "open"):
                return None  # the process's own timing cannot tell yet: measure on
            return d and stats.Decision(d.verdict, d.speedup, d.ci, d.pairs, d.looks, "metric")

    redone: list[stats.Redo[Sample]] = []
    with lease.exclusive():
        for arm in {a.worktree, b.worktree}:  # a measured worktree is frozen: refuse if anything wrote into it
            targets.check_measured(arm)
        pause_while_saturated()
        decision, pairs = stats.interleaved(
            sample(a, "a"), sample(b, "b"), better=metric.better if metric else "lower", order="abba",
            on_pair=on_pair and (lambda i, x, y: on_pair(i, x.value, y.value)), judge=judge,
            contended=contended, max_redo=max_redo, on_redo=redone.append, **kw)  # type: ignore[arg-type]
    if share is not None and metric is not None and decision.verdict == "better":
        timed()
    return Measurement(decision, [p[0] for p in pairs], [p[1] for p in pairs], redone,
                       shares[0] if shares else MIN_TIMED_SHARE)


def calibration(spec: TargetSpec, m: Measurement, min_effect: float) -> stats.Calibration:
    """What an A/A measurement (the baseline against itself) says, on the statistic that decided it."""
    d = m.decision
    if d.statistic in ("cpu", "wall"):
        ratios = m.ratios(d.statistic)
    else:
        ratios = stats.speedups([s.value for s in m.a], [s.value for s in m.b], spec.bench.better)
    looks = list(spec.decide.looks)
    return stats.calibrate(ratios, min_effect=min_effect, alpha=spec.decide.alpha, looks=looks,
                           extra=extra_looks(spec, looks))


def _seed_blind(spec: TargetSpec, a: Arm, b: Arm, b_lines: list[str], a_lines: list[str]) -> bool:
    """One more run of each arm on another seed: A's checked lines change with the seed, B's do not."""
    seed = new_seed()
    try:
        outs = [run_sample(with_seed(arm.cmd or spec.bench.cmd, seed), arm.worktree, metric=None,
                           timeout=spec.bench.timeout, arm="a", round=0, sandbox=BENCH_SANDBOX)[1] for arm in (a, b)]
    except SampleError:
        return False
    return expected_lines(spec, outs[0]) != a_lines and expected_lines(spec, outs[1]) == b_lines


def _mismatch(expected: list[str], got: list[str]) -> str:
    for want, have in zip(expected, got, strict=False):
        if want != have:
            return f"expected {want[:120]!r}, got {have[:120]!r}"
    return f"expected {len(expected)} checked lines, got {len(got)}"


def verify(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, *, min_effect: float, expected: list[str],
           protected_attempts: list[str], logs: Path, reference: Arm | None = None) -> Outcome:
    """The verdict on one candidate; never raises, so no candidate can end the run. `reference`: the
    unmodified code, whose hold-out output the candidate must reproduce (the best when not given)."""
    try:
        return _verify(spec, repo, best, cand, min_effect=min_effect, expected=expected,
                       protected_attempts=protected_attempts, logs=logs, reference=reference)
    except Exception as e:  # a candidate that breaks the harness (odd files, git errors) is an error, not a crash
        return Outcome("error", "crashed", f"verification could not finish: {type(e).__name__}: {e}")


def _verify(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, *, min_effect: float, expected: list[str],
            protected_attempts: list[str], logs: Path, reference: Arm | None = None) -> Outcome:
    protected = protected_globs(spec, _best_tests(spec, best).report)  # the runner's config as the best's run read it
    touched = [p for p in gitops.changed_paths(repo, best.commit, cand.commit) if gitops.matches(p, protected)]
    if touched or protected_attempts:
        return Outcome("rejected", "protected-path", "changed or tried to write: "
                       + ", ".join(sorted(set(touched + protected_attempts))))
    if best.commit == cand.commit or not gitops.changed_paths(repo, best.commit, cand.commit):
        return Outcome("rejected", "no-change", "the attempt left the code unchanged")
    if links := escaping_symlinks(cand.worktree, gitops.changed_paths(repo, best.commit, cand.commit)):
        return Outcome("rejected", "protected-path", "adds symlinks pointing outside the repository: " + ", ".join(links))
    gitops.clean_untracked(cand.worktree)
    gitops.restore_protected(cand.worktree, best.commit, protected)  # belt and braces
    target = Target(spec, cand.worktree)
    build = target.build()
    if build is not None:
        (logs / "build.log").write_text(build.output)
        if bad := failure(build, "build-failed"):
            return Outcome("rejected", bad[0], f"build {bad[1]}\n{testreport.clean_tail(build.output)}")
    after_build = _untracked(cand.worktree)
    seed = new_seed()
    tests, report = target.test_run(seed)
    (logs / "test.log").write_text(f"$ {tests.cmd}\n{tests.output}\n--- test report: {report.summary()}\n")
    if bad := test_gate(spec, best, tests, report, seed):
        return Outcome("rejected", *bad)
    _undo_test_writes(cand.worktree, after_build)  # nothing the tests wrote may reach the benchmark
    if held := holdout_check(spec, reference or best, cand):
        return held
    try:
        m = measure(spec, best, cand, looks=spec.decide.looks, min_effect=min_effect, expected=expected,
                    share=lambda: timed_share(spec, best))
    except OutputMismatch as e:
        return Outcome("rejected", "output-mismatch", str(e))
    except SampleError as e:
        reason = {"metric-missing": "metric-missing", "timeout": "timeout", "stray": "guard-metric"}.get(e.kind, "crashed")
        return Outcome("rejected", reason, f"benchmark {e}\n{_tail(e.output_tail)}")
    return judge(spec, repo, best, cand, m, min_effect)


def _tail(output: str, lines: int = 40, width: int = 300) -> str:
    """The end of a log for the record: last lines, each cut short (a flood can be one endless line)."""
    return "\n".join(ln if len(ln) <= width else ln[:width] + " [...]" for ln in output.rstrip().splitlines()[-lines:])


def escaping_symlinks(worktree: Path, paths: list[str]) -> list[str]:
    """Changed paths that are symlinks resolving outside the worktree."""
    root = worktree.resolve()
    out = []
    for rel in paths:
        p = worktree / rel
        if p.is_symlink():
            target = p.resolve()
            if target != root and root not in target.parents:
                out.append(f"{rel} -> {os.readlink(p)}")
    return out


def _untracked(worktree: Path) -> set[str]:
    """Untracked and ignored files (build outputs, caches) as paths relative to the worktree."""
    out = subprocess.run(["git", "ls-files", "--others", "-z"], cwd=worktree, capture_output=True, check=True)
    return {p for p in out.stdout.decode(errors="surrogateescape").split("\0") if p}


def _undo_test_writes(worktree: Path, keep: set[str]) -> None:
    """Delete files the tests created and put tracked files back as committed."""
    subprocess.run(["git", *gitops.SAFE_ARGS, "checkout", "--", "."], cwd=worktree, capture_output=True)  # no hooks
    for rel in _untracked(worktree) - keep:
        (worktree / rel).unlink(missing_ok=True)


class TestRun(NamedTuple):
    result: sh.Result
    report: testreport.Report


_best_runs: dict[tuple[str, str, int | None], TestRun] = {}
_best_lock = threading.Lock()  # lanes verifying against one best share its test run


def _best_tests(spec: TargetSpec, best: Arm, seed: int | None = None) -> TestRun:
    """The test run of the current best (once per best, or per seed when asked): the tests a
    candidate must pass too, by identity, and the runner's configuration as that run read it."""
    key = (str(best.worktree), best.commit, seed)
    with _best_lock:
        if key not in _best_runs:
            before = _untracked(best.worktree)
            _best_runs[key] = TestRun(*Target(spec, best.worktree).test_run(new_seed() if seed is None else seed))
            _undo_test_writes(best.worktree, before)
        return _best_runs[key]


def test_gate(spec: TargetSpec, best: Arm, tests: sh.Result, report: testreport.Report,
              seed: int) -> tuple[str, str] | None:
    """(reason, detail) when the candidate's tests do not hold, else None. Every test that passes on the
    current best must be collected and pass again: none may disappear, be deselected or skipped, and new
    tests do not make up for one. Failures are named with their first line, from the runner's report."""
    seeded = "{seed}" in spec.test.cmd
    on = f" (seed {seed})" if seeded else ""
    if bad := failure(tests, "tests-failed"):
        return bad[0], f"tests{on} {bad[1]}" + failing_tests(tests, report)
    ref = _best_tests(spec, best)
    if not ref.report.cases:  # a runner that reports no tests: counts from its summary line, a weak gate
        want, got = passed_tests(ref.result.output), passed_tests(tests.output)
        if want is not None and (got or 0) < want:
            return "tests-failed", (f"only {got or 0} tests passed{on}; the current best passes {want}: tests skipped, "
                                    f"deselected or removed?\n{testreport.clean_tail(tests.output)}")
        return None
    missing = testreport.required_missing(ref.report, report)
    if missing and seeded:  # test ids may depend on the seed: compare with the best on the same seed
        ref = _best_tests(spec, best, seed)
        missing = testreport.required_missing(ref.report, report)
    if missing:
        what = "the test run reported no tests at all" if not report.cases else "skipped, deselected or removed?"
        return "tests-failed", (f"{len(missing)} of the {len(ref.report.passed)} tests that passed on the current best "
                                f"did not pass{on} ({what}; new tests do not count):\n{testreport.describe(missing)}")
    if extra := sorted(set(report.plugins) - set(ref.report.plugins)):
        return "tests-failed", ("the test runner loaded plugins from the code under test, which can rewrite "
                                f"test outcomes: {', '.join(extra)}")
    return None


def failing_tests(tests: sh.Result, report: testreport.Report) -> str:
    """The failing tests by name with their first lines when the runner reported them, then a cleaned tail."""
    if report.failing:
        return (f"; {len(report.failing)} failed:\n{testreport.describe(report.failing)}"
                f"\n--- output tail ---\n{testreport.clean_tail(tests.output, 15)}")
    return "\n" + testreport.clean_tail(tests.output)


def gate_summary(spec: TargetSpec, tests: sh.Result, report: testreport.Report) -> tuple[str, str | None]:
    """How strong the test gate of this run is (for run.json), and a warning when it is weak."""
    if report.cases:
        return f"by test identity: {report.summary()}", None
    count = passed_tests(tests.output)
    how = (f"only a count from its summary line ({count} passed), so removed tests can be replaced by others"
           if count is not None else "not even a count: only the exit code is checked")
    return "weak: " + how, (
        f"WEAK TEST GATE: the test command ({spec.test.cmd}) gave no per-test report, {how}. Use a runner the "
        "harness can read: pytest, Maven/Gradle (JUnit XML reports), cargo test without -q, go test -json.")


HOLDOUT_GAP = 2.0  # a speedup on the fixed input this many times the one on unseen inputs is keyed on it
HOLDOUT_MIN = 1.5  # below this speedup on the fixed input the comparison is left to the measurement


def holdout_check(spec: TargetSpec, reference: Arm, cand: Arm) -> Outcome | None:
    """The benchmark on fresh inputs the model never saw (`[bench] holdout`). On each, the candidate's
    checked lines must equal the unmodified code's (an answer keyed on the fixed input is wrong here), and
    its speedup must carry over: a large win on the fixed input that vanishes on unseen inputs of the
    same kind is an answer looked up for that input, however exactly it is keyed. None when it holds."""
    h = spec.bench.holdout
    if h is None:
        return None
    gains: dict[str, list[float]] = {"fixed": [], "unseen": []}
    for _ in range(h.runs):
        seed = new_seed()
        want, got = (Target(spec, arm.worktree).holdout(seed) for arm in (reference, cand))
        if bad := failure(want, "crashed"):
            return Outcome("error", bad[0], f"the hold-out command fails on the unmodified code (seed {seed}): "
                           f"{bad[1]}\n{testreport.clean_tail(want.output)}")
        if bad := failure(got, "crashed"):
            return Outcome("rejected", bad[0], f"hold-out run (an input the model never saw, seed {seed}) "
                           f"{bad[1]}\n{testreport.clean_tail(got.output)}")
        lines_want, lines_got = expected_lines(spec, want.output), expected_lines(spec, got.output)
        if lines_want != lines_got:
            return Outcome("rejected", "output-mismatch", f"on a hold-out input the model never saw (seed {seed}): "
                           f"{_mismatch(lines_want, lines_got)}; right only for the benchmark's fixed input?")
        fixed = [Target(spec, arm.worktree).bench() for arm in (reference, cand)]
        for kind, (a, b) in (("unseen", (want, got)), ("fixed", fixed)):
            if (gain := _times_better(spec, a, b)) is not None:
                gains[kind].append(gain)
    if gains["fixed"] and gains["unseen"]:
        fixed, unseen = (math.exp(sum(map(math.log, g)) / len(g)) for g in (gains["fixed"], gains["unseen"]))
        if fixed >= HOLDOUT_MIN and fixed >= HOLDOUT_GAP * unseen:
            return Outcome("rejected", "guard-metric", f"{fixed:.2f}x faster than the unmodified code on the "
                           f"benchmark's fixed input but {unseen:.2f}x on {h.runs} inputs the model never saw: "
                           "an answer keyed on the fixed input?")
    return None


def _times_better(spec: TargetSpec, a: sh.Result, b: sh.Result) -> float | None:
    """How many times better run b is than run a: by the metric when there is one, else by wall time."""
    if not (a.ok and b.ok):
        return None
    if spec.bench.metric is None:
        return a.wall_s / b.wall_s if b.wall_s > 0 else None
    try:
        va, vb = metric_value(a.output, spec.bench.metric), metric_value(b.output, spec.bench.metric)
    except ValueError:
        return None
    if va <= 0 or vb <= 0:
        return None
    return vb / va if spec.bench.better == "higher" else va / vb


def holdout_baseline(spec: TargetSpec, base: Arm) -> tuple[str | None, str | None]:
    """(error, warning) about the hold-out at the start of a run: it must run on the unmodified code and
    print the checked lines; lines that stay the same for two seeds make it a weak check."""
    h = spec.bench.holdout
    if h is None:
        return None, None
    outputs = []
    for seed in (new_seed(), new_seed()):
        result = Target(spec, base.worktree).holdout(seed)
        if bad := failure(result, "crashed"):
            return f"the hold-out command fails on the unmodified code ({h.command(spec.bench.cmd)}, seed {seed}): " \
                   f"{bad[1]}\n{testreport.clean_tail(result.output)}", None
        outputs.append(expected_lines(spec, result.output))
    if not outputs[0]:
        return f"the hold-out command ({h.command(spec.bench.cmd)}) prints no line matching same_output", None
    if outputs[0] == outputs[1]:
        return None, ("the hold-out command printed the same checked lines for two seeds: does {seed} reach the "
                      "benchmark's input? The hold-out check cannot tell a keyed answer from a right one.")
    return None, None


def judge(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, m: Measurement, min_effect: float) -> Outcome:
    d = m.decision
    base = dict(speedup=d.speedup, ci=d.ci, pairs=d.pairs, value=m.mean("b"), samples=m.samples(),
                statistic=d.statistic, remeasured=len(m.redone))
    flags = hack_flags(spec, repo, best, cand, m)
    how = f"decided on {m.how()}"
    if d.verdict != "better":
        reason = {"worse": "slower", "same": "not-significant"}.get(d.verdict, "not-significant")
        detail = f"{d.verdict}: speedup {d.speedup:.3f} [{d.ci[0]:.3f}, {d.ci[1]:.3f}] after {d.pairs} pairs; {how}"
        return Outcome("rejected", reason, detail, flags=flags, **base)
    if problem := guard_metrics(spec, m):
        return Outcome("rejected", "guard-metric", problem, flags=flags, **base)
    inherit_share(best, cand, d.ci[1])
    return Outcome("accepted", "faster", f"speedup {d.speedup:.3f} [{d.ci[0]:.3f}, {d.ci[1]:.3f}] after {d.pairs} "
                   f"pairs; {how}", flags=flags, **base)


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
    if spec.bench.metric is not None and (moved := moved_work(m, spec.decide.alpha, m.timed_share)):
        return moved
    return None


MIN_TIMED_SHARE = 0.05  # least share of the benchmark process that its metric is assumed to time
OPEN_CLAIM = 1.5  # a claim this large still undecided at the last look is judged on the process's point estimate
PROBES = 3  # runs of the best frozen once each, at 1/4, 1/2 and 3/4 of its run time
SHARE_MARGIN = 0.75  # of the least measured timed share: room for the probes' own noise
_shares: dict[tuple[str, str], float] = {}
_shares_lock = threading.Lock()


def timed_share(spec: TargetSpec, best: Arm) -> float:
    """A conservative lower bound on the share of the best's benchmark process that its metric times,
    by the harness's clock: a run frozen for `pause` s (2x its run time) inside the timed region reports
    a metric worse by the factor r = 1 + pause/D, so D = pause/(r - 1); frozen outside, it barely moves.
    SHARE_MARGIN of the least such D over the median run time, within [MIN_TIMED_SHARE, 0.9]; MIN_TIMED_SHARE when no
    probe landed in the region (or the spec has no metric). Once per best, and only when a candidate's
    metric says "better"; a best that was itself accepted inherits its share from its parent's
    (`inherit_share`) instead of being probed again."""
    metric = spec.bench.metric
    if metric is None:
        return 1.0
    key = (str(best.worktree), best.commit)
    with _shares_lock:
        if key in _shares:
            return _shares[key]
    cmd = with_seed(best.cmd or spec.bench.cmd, new_seed())
    try:
        plain = [run_sample(cmd, best.worktree, metric=metric, timeout=spec.bench.timeout, arm="a", round=0,
                            sandbox=BENCH_SANDBOX)[0] for _ in range(3)]
        wall = sorted(s.wall_s for s in plain)[1]
        value = sorted(s.value for s in plain)[1]
        pause = 2 * wall
        spans = []
        for j in range(1, PROBES + 1):
            got = probe_sample(cmd, best.worktree, metric=metric, timeout=spec.bench.timeout, at=j * wall / (PROBES + 1),
                               pause=pause, sandbox=BENCH_SANDBOX)
            r = value / got if metric.better == "higher" else got / value
            if r > 1 + pause / wall / 2:  # well beyond run-to-run noise: the freeze was timed
                spans.append(pause / (r - 1))
    except SampleError:
        spans, wall = [], 1.0
    share = min(0.9, max(MIN_TIMED_SHARE, SHARE_MARGIN * min(spans) / wall)) if spans else MIN_TIMED_SHARE
    with _shares_lock:
        _shares[key] = share
    return share


def process_statistic(m: Measurement) -> str:
    """How the harness times the process: CPU time when both arms are single-threaded and CPU-bound
    (steady under load; judged by stats.cpu_bound, which holds on a busy host too), else wall time."""
    return "cpu" if stats.cpu_bound(m.a) and stats.cpu_bound(m.b) else "wall"


def inherit_share(parent: Arm, child: Arm, speedup_hi: float) -> None:
    """An accepted candidate's timed share, from its parent's and the largest speedup its interval allows:
    the region shrank S-fold and the rest stayed, so f' = (f/S) / (1 - f + f/S) (a lower bound again)."""
    with _shares_lock:
        f = _shares.get((str(parent.worktree), parent.commit))
        if f is not None and speedup_hi > 0:
            _shares[(str(child.worktree), child.commit)] = max(MIN_TIMED_SHARE, (f / speedup_hi) / (1 - f + f / speedup_hi))


def moved_check(pairs: list[tuple[Sample, Sample]], claimed: float, alpha: float, share: float) -> tuple[str, float, float, float]:
    """("moved" | "consistent" | "open", process speedup, its upper bound, the least a real win gives)
    for a metric claiming at least `claimed`, on the process statistic of `process_statistic`."""
    m = Measurement(stats.Decision("better", claimed, (claimed, claimed), len(pairs), 1), [p[0] for p in pairs],
                    [p[1] for p in pairs])
    least = 1 / (1 - share + share / claimed)
    # CPU time is the sharper clock for a CPU-bound process, but wall time is what a sleeper's win shows
    # in: the claim is refuted only when every clock that applies refutes it.
    clocks = ["cpu", "wall"] if process_statistic(m) == "cpu" else ["wall"]
    found = [stats.geomean_interval(m.ratios(c), 1 - alpha) for c in clocks]
    point, hi = max(f[0] for f in found), max(f[2] for f in found)
    if any(f[1] >= least for f in found):
        return "consistent", point, hi, least
    if hi < least:
        return "moved", point, hi, least
    return "open", point, hi, least


def moved_work(m: Measurement, alpha: float, share: float = MIN_TIMED_SHARE) -> str | None:
    """The metric is the program's own timing of its timed region; the harness times the whole
    process. A real S-fold win in a region that is a share f of the run shortens the process at least
    1 / (1 - f + f/S)-fold. Both sides are intervals at level 1 - alpha: if even the upper end of the
    process's speedup stays below what the lower end of the metric's claim implies, the metric was
    talked up (a clock that runs slow, a number printed before the work was done, work moved into an
    import, a warm-up or a child) rather than the work made faster. A genuine win passes unless its
    interval misses the truth (probability <= alpha/2), whatever the load on the host."""
    claimed = m.decision.ci[0]
    if claimed <= 1 or len(m.a) < 2:
        return None
    verdict, point, hi, least = moved_check(list(zip(m.a, m.b, strict=True)), claimed, alpha, share)
    if verdict == "open" and claimed >= OPEN_CLAIM and point < least:
        what = "CPU time of the process tree (and wall time)" if process_statistic(m) == "cpu" else "wall time"
        return (f"the metric claims at least {claimed:.2f}x, but after {len(m.a)} pairs the benchmark process, timed "
                f"by the harness, is only {point:.3f}x faster in {what}, below the {least:.3f}x a real win gives with "
                f"the metric timing at least {share:.0%} of the run (its interval, up to {hi:.3f}x, is too wide to "
                "tell on this machine): work moved out of the timed region, or a clock that does not tell the time?")
    if verdict != "moved":
        return None
    what = "CPU time of the process tree (and wall time)" if process_statistic(m) == "cpu" else "wall time"
    return (f"the metric claims at least {claimed:.2f}x, but the benchmark process, timed by the harness, only "
            f"{point:.3f}x in {what} (at most {hi:.3f}x at {1 - alpha:.0%}); with the metric timing at least "
            f"{share:.0%} of the run, a real win would give at least {least:.3f}x: work moved out of the timed "
            "region, or a clock that does not tell the time?")


def hack_flags(spec: TargetSpec, repo: Path, best: Arm, cand: Arm, m: Measurement) -> list[str]:
    """Reasons to look twice at a result; recorded (and shown) even when the candidate is accepted."""
    flags = []
    speedup, size = m.decision.speedup, gitops.diff_size(repo, best.commit, cand.commit)
    if speedup > spec.guard.max_plausible_speedup:
        flags.append(f"implausible: {speedup:.1f}x from a {size}-line diff (over {spec.guard.max_plausible_speedup:g}x)")
    cpu = _ratio(m, "cpu_s")
    # only a CPU-bound baseline says anything here: a sleeping or waiting process has CPU time as noise
    # (strict test: a flag on an honest sleeper's win would be noise; the guard in moved_work is the defence)
    if speedup > 1.1 and cpu >= 1.0 and stats.cpu_bound(m.a, fair=False):
        flags.append(f"metric {speedup:.2f}x better but the process's CPU time did not drop ({cpu:.2f}x): "
                     "threads, or work moved where the metric does not see it?")
    added = [ln[1:].strip() for ln in gitops.diff_text(repo, best.commit, cand.commit).splitlines()
             if ln.startswith("+") and not ln.startswith("+++")]
    hits = [ln for ln in added if CACHE_HINTS.search(ln)]
    if hits:
        flags.append("diff adds a cache or file writes; check it is not keyed on the benchmark's inputs: "
                     + " | ".join(h[:80] for h in hits[:3]))
    return flags
