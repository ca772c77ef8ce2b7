"""run_sample and metric_value on real tiny processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import Metric
from tools import sh
from tools.bench import Sample, SampleError, metric_value, run_sample
from tools.stats import interleaved

PY = sys.executable


def run(cmd: str, tmp_path: Path, metric: Metric | None = None, **kw) -> tuple[Sample, str]:
    return run_sample(cmd, tmp_path, metric=metric, timeout=kw.pop("timeout", 20), arm="a", round=0, **kw)


def test_regex_takes_the_last_match(tmp_path: Path) -> None:
    cmd = "echo 'warmup: 5.0 ops/s'; echo 'noise'; echo 'final: 12.5 ops/s' >&2"
    sample, out = run(cmd, tmp_path, Metric(regex=r"([0-9.]+) ops/s"))
    assert sample.value == 12.5 and "warmup" in out and sample.exit_code == 0 and not sample.timed_out


def test_json_path_reads_the_last_json_line(tmp_path: Path) -> None:
    cmd = """echo '{"tps": 1}'; echo '{"results": {"tps": [3, 41.5]}}'; echo 'not json {'"""
    sample, _ = run(cmd, tmp_path, Metric(json_path="results.tps.1"))
    assert sample.value == 41.5


@pytest.mark.parametrize(
    ("output", "metric"),
    [
        ("throughput: n/a", Metric(regex=r"throughput: ([0-9.]+)")),
        ('{"other": 1}', Metric(json_path="tps")),
        ('{"tps": "fast"}', Metric(json_path="tps")),
        ('{"tps": NaN}', Metric(json_path="tps")),
        ("no json here", Metric(json_path="tps")),
    ],
)
def test_missing_or_bad_metric(output: str, metric: Metric, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        metric_value(output, metric)
    (tmp_path / "out.txt").write_text(output + "\n")
    with pytest.raises(SampleError) as e:
        run("cat out.txt", tmp_path, metric)
    assert e.value.kind == "metric-missing" and output[:5] in e.value.output_tail


def test_wall_time_is_the_default_metric_and_cpu_is_measured(tmp_path: Path) -> None:
    sleep, _ = run("sleep 0.3", tmp_path)
    busy, _ = run(f"{PY} -c 'x = bytearray(50_000_000); [i for i in range(3_000_000)]'", tmp_path)
    assert 0.29 <= sleep.value == sleep.wall_s < 1.0 and sleep.cpu_s < 0.1
    assert busy.cpu_s > 0.05 and busy.max_rss_kb > 50_000
    assert sleep.started_at <= busy.started_at


def test_crash_and_timeout(tmp_path: Path) -> None:
    with pytest.raises(SampleError) as e:
        run("echo about to fail; exit 3", tmp_path)
    assert e.value.kind == "crashed" and "about to fail" in e.value.output_tail
    with pytest.raises(SampleError) as e:
        run("echo started; sleep 30", tmp_path, timeout=0.5)
    assert e.value.kind == "timeout" and "started" in e.value.output_tail


def test_pinning_restricts_the_process_to_one_core(tmp_path: Path) -> None:
    metric = Metric(regex=r"Cpus_allowed_list:\s*(\d+)$")
    sample, out = run("grep Cpus_allowed_list /proc/self/status", tmp_path, metric, pin_cpu=0)
    assert sample.value == 0, out


@pytest.mark.skipif(not sh.bwrap_available(), reason="bubblewrap not usable here")
def test_sandboxed_sample_cannot_write_outside(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    cmd = f"touch {outside}/x 2>/dev/null; echo score 7"
    sample, _ = run(cmd, tmp_path, Metric(regex=r"score (\d+)"), sandbox=sh.Sandbox())
    assert sample.value == 7 and not (outside / "x").exists()


def test_samples_are_immutable_and_validated() -> None:
    s = Sample(arm="b", round=1, value=1.0, wall_s=1.0, cpu_s=0.5, max_rss_kb=10, exit_code=0,
               timed_out=False, started_at=0.0)
    with pytest.raises(ValidationError):
        s.value = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Sample(arm="c", round=1, value=1.0, wall_s=1.0, cpu_s=0.5, max_rss_kb=10, exit_code=0,  # type: ignore[arg-type]
               timed_out=False, started_at=0.0)
    assert Sample.model_validate_json(s.model_dump_json()) == s


@pytest.mark.slow
def test_real_interleaved_ab_finds_a_clear_win(tmp_path: Path) -> None:
    """sleep 0.05 vs sleep 0.1: wall time differs 2x, far beyond any scheduler noise."""
    def arm(cmd: str):
        return lambda i: run_sample(cmd, tmp_path, metric=None, timeout=10, arm="a", round=i)[0].value

    d, pairs = interleaved(arm("sleep 0.1"), arm("sleep 0.05"), better="lower", min_effect=0.05, alpha=0.01,
                           looks=[5, 10, 20])
    # process start-up under load pulls the ratio toward 1; a busy host may need the last look
    assert d.verdict == "better" and 1.4 < d.speedup < 2.2 and len(pairs) <= 20, (d, len(pairs))


def test_plain_commands_run_without_a_shell(tmp_path: Path) -> None:
    (tmp_path / "ppid.py").write_text("import os\nprint('parent', open(f'/proc/{os.getppid()}/comm').read())\n")
    _, direct = run_sample(f"{PY} ppid.py", tmp_path, metric=None, timeout=20, arm="b", round=1)
    _, shelled = run_sample(f"{PY} ppid.py; true", tmp_path, metric=None, timeout=20, arm="b", round=1)
    assert "parent sh" not in direct and "parent dash" not in direct
    assert "parent sh" in shelled or "parent dash" in shelled or "parent bash" in shelled
    with pytest.raises(SampleError) as e:
        run("no-such-program-xyz --flag", tmp_path)
    assert e.value.kind == "crashed"


@pytest.mark.slow
def test_rule_holds_with_a_real_background_load(tmp_path: Path) -> None:
    """`optimize ab`'s engine (the verifier's) on real CPU-bound processes while another process burns a
    core of this 2-core machine: identical commands are not "better", a quarter of the work is, and the record
    says which statistic decided and why any pair was measured again."""
    import os
    import signal
    import subprocess

    from agent.ab import compare

    work = Path(__file__).resolve().parents[1] / "benchmarks" / "workload.py"
    load = subprocess.Popen([PY, "-c", "while True:\n    pass"], start_new_session=True)
    try:
        same = compare(f"{PY} -S {work} 150000", f"{PY} -S {work} 150000", metric=None, better=None,
                       min_effect=0.02, max_pairs=20, cwd=tmp_path)
        half = compare(f"{PY} -S {work} 400000", f"{PY} -S {work} 100000", metric=None, better=None,
                       min_effect=0.02, max_pairs=40, cwd=tmp_path)
    finally:
        os.killpg(load.pid, signal.SIGKILL)
        load.wait()
    assert same["verdict"] != "better", same
    assert half["verdict"] == "better" and half["ci"][0] > 1.02, half
    for r in (same, half):
        assert r["statistic"] in ("cpu", "wall") and all(x["reason"] for x in r["remeasured"])
