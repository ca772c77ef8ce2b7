"""One benchmark execution -> one validated Sample (the metric, or the wall time of the process).

Why we time the process ourselves instead of calling hyperfine per sample: `tools.sh.run` starts the
command in its own process group and blocks in `os.wait4`, which returns the exit status together
with the kernel's user+sys time and peak RSS of that very process; wall time is `perf_counter` around
spawn..wait4 with no polling delay. `hyperfine -N --runs 1` times the same interval with the same
clocks, but Debian's 1.15 reports no memory, so peak RSS would need a second, different run; its
statistics (mean, σ, outlier warnings) mean nothing for one run, and it cannot interleave, which is
the part that matters (tools/stats.interleaved does that). So hyperfine is not used here at all.
The price is a fixed start-up cost: measured on `/bin/true` on the loaded 2-core box, hyperfine 0.7 ms,
sh.run with an argv 2.4-3.4 ms (Python fork with preexec_fn), via `/bin/sh -c` 4.9-7.3 ms. It is the
same in both arms, so it only pulls the ratio toward 1 (conservative, never a false win); to keep it
small, a plain command (words only, no shell syntax) is exec'd directly without `/bin/sh -c`.
benchmarks/timing_check.py compares both timers on a ~0.1 s process, interleaved.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools import sh


class Metric(Protocol):
    """How to read the metric from a benchmark's output (the spec's `[bench] metric`, or any object alike)."""

    regex: str | None
    json_path: str | None
    unit: str
    better: Literal["higher", "lower"]

# Words of path-ish characters, no quotes, globs, redirections, variables or leading VAR=value.
_PLAIN = re.compile(r"[\w./:,+@%-]+( +[\w./:,+@%=-]+)*")


class Sample(BaseModel):
    """One benchmark execution; immutable once recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    arm: Literal["a", "b"]
    round: int = Field(ge=0)
    value: float  # the metric, or wall seconds when the spec has no metric
    wall_s: float = Field(ge=0)
    cpu_s: float = Field(ge=0)
    max_rss_kb: int = Field(ge=0)
    exit_code: int
    timed_out: bool
    started_at: float  # time.time() when the process was started
    vcsw: int = Field(0, ge=0)  # voluntary context switches of the process tree
    ivcsw: int = Field(0, ge=0)  # involuntary ones: it was preempted (contention)
    stall_s: float = Field(0.0, ge=0)  # host CPU pressure (PSI "some") accumulated while it ran
    load1: float = Field(0.0, ge=0)  # the host's 1-minute load average when it started


# The metric line counts only once the benchmark and every process it started have exited. In the
# sandbox the command runs under this shell as pid 1 of its own pid namespace: the shell waits for it
# (reaping orphans on the way, so their CPU time is counted), then any process still alive in the
# namespace (not a zombie) means work was left running after the exit: exit STRAY_EXIT, and the
# namespace dies with the shell. Without bubblewrap there is no private /proc to look at: not checked.
STRAY_EXIT = 218
_REAPER = (
    '"$@"; rc=$?\n'
    "for p in /proc/[0-9]*; do\n"
    '  [ "${p#/proc/}" = 1 ] && continue\n'
    '  read -r s < "$p/stat" 2>/dev/null || continue\n'
    '  case "${s##*) }" in Z*) continue ;; esac\n'
    f"  exit {STRAY_EXIT}\n"
    "done\n"
    "exit $rc\n"
)


class SampleError(Exception):
    """A sample that produced no usable value; `kind` is what the verifier turns into a reason code."""

    def __init__(self, kind: Literal["crashed", "timeout", "metric-missing", "stray"], message: str,
                 output_tail: str = ""):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.output_tail = output_tail


def run_sample(
    cmd: str,
    cwd: Path,
    *,
    metric: Metric | None,
    timeout: float,
    arm: str,
    round: int,
    sandbox: sh.Sandbox | None = None,
    pin_cpu: int | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Sample, str]:
    """Run `cmd` once; return the Sample and the full output (stdout, then stderr). Raises SampleError."""
    argv = shlex.split(cmd) if _PLAIN.fullmatch(cmd) else ["/bin/sh", "-c", cmd]
    if pin_cpu is not None:
        argv = ["taskset", "-c", str(pin_cpu), *argv]
    reaped = sandbox is not None and sh.bwrap_available()
    if reaped:  # pid 1 of the sandbox's pid namespace: waits for the command, then looks for leftovers
        argv = ["/bin/sh", "-c", _REAPER, "reaper", *argv]
    started = time.time()
    load1 = os.getloadavg()[0]
    stall = cpu_stall_total()
    res = sh.run(argv, Path(cwd), timeout, env=env, sandbox=sandbox)
    stall = max(0.0, cpu_stall_total() - stall)
    output = res.output
    if res.timed_out:
        raise SampleError("timeout", f"no result after {timeout:g}s: {cmd}", res.tail())
    if reaped and res.returncode == STRAY_EXIT:
        raise SampleError("stray", "the benchmark exited while processes it started were still running; its "
                          "output is not accepted before all of them have finished (work left to a child?)",
                          res.tail())
    if res.returncode != 0:
        raise SampleError("crashed", f"exit code {res.returncode}: {cmd}", res.tail())
    if metric is None:
        value = res.wall_s
    else:
        try:
            value = metric_value(output, metric)
        except ValueError as e:
            raise SampleError("metric-missing", str(e), res.tail()) from e
    sample = Sample(
        arm=arm, round=round, value=value, wall_s=res.wall_s, cpu_s=res.cpu_s,  # type: ignore[arg-type]
        max_rss_kb=res.max_rss_kb, exit_code=res.returncode, timed_out=res.timed_out, started_at=started,
        vcsw=res.vcsw, ivcsw=res.ivcsw, stall_s=stall, load1=load1,
    )
    return sample, output


PSI_CPU = Path("/proc/pressure/cpu")


def cpu_stall_total() -> float:
    """Seconds, since boot, during which some runnable task on this host waited for a CPU (Linux PSI
    "some" line); 0 where PSI is missing. The difference over a sample is how contended it ran."""
    try:
        for line in PSI_CPU.read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def cpu_pressure() -> float:
    """Share of the last 10 s during which some task waited for a CPU (PSI "some avg10"), 0..1."""
    try:
        for line in PSI_CPU.read_text().splitlines():
            if line.startswith("some "):
                return float(line.split("avg10=", 1)[1].split()[0]) / 100
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


# Stops the benchmark's whole process group for `pause` seconds, `at` seconds after starting it: when the
# metric times the stopped stretch, its timed region grew by exactly `pause` (tools/bench.probe_sample).
_PROBE = """import os, signal, subprocess, sys, time
at, pause = float(sys.argv[1]), float(sys.argv[2])
p = subprocess.Popen(sys.argv[3:], start_new_session=True)
try:
    p.wait(timeout=at)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGSTOP)
    time.sleep(pause)
    os.killpg(p.pid, signal.SIGCONT)
sys.exit(p.wait())
"""


def probe_sample(cmd: str, cwd: Path, *, metric: Metric, timeout: float, at: float, pause: float,
                 sandbox: sh.Sandbox | None = None) -> float:
    """The metric of one run that the harness froze for `pause` s at `at` s: the harness's own clock
    against the program's. Raises SampleError like run_sample."""
    argv = shlex.split(cmd) if _PLAIN.fullmatch(cmd) else ["/bin/sh", "-c", cmd]
    wrapped = shlex.join([sys.executable, "-S", "-c", _PROBE, f"{at:.4f}", f"{pause:.4f}", *argv])
    sample, _ = run_sample(wrapped, cwd, metric=metric, timeout=timeout + pause, arm="a", round=0, sandbox=sandbox)
    return sample.value


SATURATED = 0.9  # PSI "some avg10" from which the host counts as saturated
PAUSE_MAX_S = 0.0  # longest wait for a saturated host to calm down before a measurement (0: no pause)


def pause_while_saturated(limit: float | None = None) -> float:
    """Wait (at most `limit` s, default PAUSE_MAX_S) while the host's CPU pressure says it is saturated;
    returns the seconds waited. Off by default: see README, the evidence did not show it helping."""
    budget = PAUSE_MAX_S if limit is None else limit
    waited = 0.0
    while waited < budget and cpu_pressure() >= SATURATED:
        time.sleep(0.5)
        waited += 0.5
    return waited


def metric_value(output: str, metric: Metric) -> float:
    """The metric's number in `output`: the last regex match (group 1), or a dotted path into the
    last line that parses as a JSON object. Raises ValueError when it is absent or not a number."""
    if metric.regex:
        matches = list(re.finditer(metric.regex, output, re.MULTILINE))
        if not matches:
            raise ValueError(f"no match for /{metric.regex}/ in the output")
        text = matches[-1].group(1) if matches[-1].groups() else matches[-1].group(0)
        return _finite(text, f"/{metric.regex}/ matched {text!r}")
    if metric.json_path:
        doc = _last_json_object(output)
        if doc is None:
            raise ValueError("no line of the output is a JSON object")
        node: object = doc
        for key in metric.json_path.split("."):
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
                node = node[int(key)]
            else:
                raise ValueError(f"json path {metric.json_path!r}: {key!r} not found")
        if isinstance(node, bool) or not isinstance(node, int | float | str):
            raise ValueError(f"json path {metric.json_path!r} is {node!r}, not a number")
        return _finite(node, f"json path {metric.json_path!r} is {node!r}")
    raise ValueError("the metric has neither regex nor json_path")


def _finite(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{what}, not a finite number")
    return number


def _last_json_object(output: str) -> dict | None:
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            return doc
    return None
