"""The baseline: the unmodified code built, tested and benchmarked, then measured against itself (A/A)
to calibrate the noise, check for bias and plan the pairs; recorded as the BaselineEvent."""

from __future__ import annotations

import time

from agent import hotspots, verify
from agent.records import BaselineEvent
from agent.session import BaselineError, Session
from agent.target import Target, failure
from agent.verify import Arm
from tools import gitops, stats
from tools.bench import metric_value


def measure(s: Session) -> None:
    """Build, test and benchmark the unmodified code, calibrate the noise (A/A), record the baseline.
    BaselineError when it cannot be measured as it is."""
    s.ui.phase("baseline")
    commit = s.manifest.base_commit
    s.base = Arm(commit, gitops.add_worktree(s.repo, s.worktree("base"), commit))
    target = Target(s.spec, s.base.worktree)
    build = target.build()
    if build is not None and failure(build, "build-failed"):
        raise BaselineError(f"the build fails on the unmodified code ({s.spec.build.cmd}):\n{build.tail()}")
    tests, inventory = target.test_run()
    if failure(tests, "tests-failed"):
        raise BaselineError(f"the tests fail on the unmodified code ({s.spec.test.cmd})"
                            + verify.failing_tests(tests, inventory))
    gate, weak = verify.gate_summary(s.spec, tests, inventory)  # loud when the runner reports no tests
    s.save_manifest(test_gate=gate)
    if weak:
        s.note(weak, "warning")
    held, shaky = verify.holdout_baseline(s.spec, s.base)
    if held:
        raise BaselineError(held)
    if shaky:
        s.note(shaky, "warning")
    bench = target.bench()
    if failure(bench, "crashed"):
        raise BaselineError(f"the benchmark fails on the unmodified code ({s.spec.bench.cmd}):\n{bench.tail()}")
    if s.spec.bench.metric:
        try:
            metric_value(bench.output, s.spec.bench.metric)
        except ValueError as e:
            raise BaselineError(f"the benchmark's output has no metric: {e}\n--- output tail ---\n{bench.tail()}") from e
    s.expected = verify.expected_lines(s.spec, bench.output)
    s.ui.phase("calibrating noise (A/A)")
    started = time.monotonic()
    # A/A (issue 17): the noise goes into each verdict's interval, not into the threshold; this run
    # checks for bias between identical arms, plans the pairs and warns when wins cannot be verified.
    d, min_effect = s.spec.decide, s.spec.decide.min_effect
    aa = verify.measure(s.spec, s.base, s.base, looks=[d.calibration_pairs], extra=[], min_effect=0.0)
    s.seconds_per_pair = (time.monotonic() - started) / max(1, aa.decision.pairs)
    cal = verify.calibration(s.spec, aa, min_effect)
    if cal.biased:  # once more on fresh pairs before refusing: a burst of load can fake a bias
        aa = verify.measure(s.spec, s.base, s.base, looks=[d.calibration_pairs], extra=[], min_effect=0.0)
        cal = verify.calibration(s.spec, aa, min_effect)
        if cal.biased:
            raise BaselineError(
                f"the unmodified code measured against itself differs: {cal.speedup:.3f}x [{cal.ci[0]:.3f}, "
                f"{cal.ci[1]:.3f}] twice (A/A, {aa.decision.statistic}); the first or second run of a pair is "
                "systematically faster (a warm-up, a cache, a file the benchmark leaves behind), so no verdict "
                "here could be trusted. Make the benchmark start from the same state every run.")
    s.noise, s.min_effect = cal.noise_floor, min_effect
    s.baseline_value = s.best_value = aa.mean("a")
    s.best = s.base
    budget = stats.family(d.looks, verify.extra_looks(s.spec, list(d.looks)))[-1]
    need = f"about {cal.pairs_needed} pairs" if cal.pairs_needed <= budget else f"more than {budget} pairs"
    s.note(f"A/A on this machine ({aa.decision.statistic}): {cal.speedup:.3f}x [{cal.ci[0]:.3f}, {cal.ci[1]:.3f}], "
           f"±{cal.sd:.1%} per pair; a +{2 * min_effect:.0%} win needs {need}; accepting wins whose whole "
           f"interval is above +{min_effect:.1%}")
    if cal.smallest_win > max(2 * min_effect, 0.05):
        s.note(f"this machine is too noisy to verify wins below about +{cal.smallest_win:.0%} within {budget} "
               "pairs; smaller real wins will be rejected as not significant", "warning")
    profile = hotspots.profile(s, 0)
    s.store.append(BaselineEvent(
        commit=commit, value=s.baseline_value, unit=s.spec.bench.unit,
        better=s.spec.bench.better, noise_floor=s.noise,
        min_effect=s.min_effect, output_lines=s.expected, profile=profile))
    gitops.set_branch(s.repo, s.prefix + "best", commit)
    s.save_manifest(baseline_value=s.baseline_value, noise_floor=s.noise, min_effect=s.min_effect)
    s.ui.best(s.baseline_value, 1.0)
