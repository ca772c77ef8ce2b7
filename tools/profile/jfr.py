"""JVM targets: JDK Flight Recorder, switched on for every JVM the command starts.

JAVA_TOOL_OPTIONS reaches a plain `java ...` as well as Maven and the test JVMs it forks; the
recording filename is a directory, so each JVM writes its own `hotspot-pid-*.jfr` and all are
merged. `jfr print --json` is verbose (about 1.5 KB per frame), so its output is parsed one event
at a time from the pipe and never held whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tools import sh
from tools.profile.stacks import Capture, Stacks, write_collapsed
from tools.profile.timed import fresh, run_profiler

STACK_DEPTH = 96
CHUNK = 1 << 20
_EVENTS = re.compile(r'"events"\s*:\s*\[')


def profile_jvm(cmd: str, cwd: Path, out_dir: Path, raw: Path, timeout: float, env: dict[str, str]) -> Capture:
    cap = Capture("jfr")
    rec_dir = fresh(raw / "jfr")
    flag = f"-XX:StartFlightRecording=filename={rec_dir}/,settings=profile,dumponexit=true"
    opts = " ".join(o for o in (env.get("JAVA_TOOL_OPTIONS", ""), flag) if o)
    cap.warnings += run_profiler(["/bin/sh", "-c", cmd], cwd, timeout, {**env, "JAVA_TOOL_OPTIONS": opts},
                                 what="JVM command under JFR", raw=raw)
    recordings = sorted(rec_dir.glob("*.jfr"))
    if not recordings:
        cap.warnings.append("no JFR recording was written (no JVM started, or it was killed): no CPU profile")
        return cap
    jfr = _jfr_tool(env)
    if jfr is None:
        cap.warnings.append(f"jfr tool missing: recordings left unparsed in {rec_dir}")
        return cap
    cpu: Stacks = Counter()
    alloc: Stacks = Counter()
    for rec in recordings:
        problem = _read_recording(jfr, rec, cpu, alloc, timeout, raw)
        if problem:
            cap.warnings.append(problem)
    cap.collapsed = write_collapsed(cpu, out_dir / "cpu.collapsed.txt")
    cap.allocations = write_collapsed(alloc, out_dir / "alloc.collapsed.txt")
    if cap.collapsed is None:
        cap.warnings.append("JFR recorded no execution samples (run too short?): no CPU profile")
    if cap.allocations is None:
        cap.warnings.append("JFR recorded no allocation samples: no allocation profile")
    return cap


def _jfr_tool(env: dict[str, str]) -> str | None:
    home = env.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "jfr", os.X_OK):
        return str(Path(home) / "bin" / "jfr")
    return shutil.which("jfr", path=env.get("PATH"))


def _read_recording(jfr: str, rec: Path, cpu: Stacks, alloc: Stacks, timeout: float, raw: Path) -> str | None:
    # The recording was written by the profiled program: parsed inside the sandbox too, output streamed out.
    argv = [jfr, "print", "--json", "--stack-depth", str(STACK_DEPTH),
            "--events", "jdk.ExecutionSample,jdk.ObjectAllocationSample", str(rec)]
    argv = sh.confine(argv, raw, sh.Sandbox(readonly=True, readable=(Path(jfr).resolve().parent,)))
    env = {k: v for k, v in sh.clean_env().items() if k != "JAVA_TOOL_OPTIONS"}
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty stderr cannot stall the reader
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        except OSError as e:
            return f"cannot run jfr print on {rec.name}: {e}"
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for event in iter_events(proc.stdout):
                _add(event, cpu, alloc)
        finally:
            timer.cancel()
            proc.kill()
            code = proc.wait()
        err.seek(0)
        message = err.read().decode(errors="replace").strip()[:300]
    return f"jfr print failed on {rec.name} (code {code}): {message}" if code != 0 else None


def _add(event: dict, cpu: Stacks, alloc: Stacks) -> None:
    values = event.get("values", {})
    stack = _stack(values.get("stackTrace"))
    if not stack:
        return
    if event.get("type") == "jdk.ExecutionSample":
        cpu[stack] += 1
    elif event.get("type") == "jdk.ObjectAllocationSample":
        alloc[stack] += int(values.get("weight") or 0)


def _stack(trace: dict | None) -> tuple[str, ...]:
    if not trace:
        return ()
    frames = [_frame(f) for f in reversed(trace.get("frames") or [])]  # JFR lists the leaf first
    if trace.get("truncated"):
        frames.insert(0, "[truncated]")  # so a cut-off stack does not pose as a root
    return tuple(frames)


def _frame(frame: dict) -> str:
    method = frame.get("method") or {}
    owner = ((method.get("type") or {}).get("name") or "?").replace("/", ".")
    return f"{owner}.{method.get('name', '?')}"


def iter_events(stream: IO[str], chunk: int = CHUNK) -> Iterator[dict]:
    """Yield each object of the `"events": [...]` array without loading the whole document."""
    decoder = json.JSONDecoder()
    buf, pos, eof = "", -1, False
    while pos < 0:  # find the start of the array
        data = stream.read(chunk)
        if not data:
            return
        buf += data
        m = _EVENTS.search(buf)
        if m:
            buf, pos = buf[m.end():], 0
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if pos < len(buf) and buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if eof:
                return  # truncated output: keep what was read
            data = stream.read(chunk)
            eof = not data
            buf, pos = buf[pos:] + data, 0
            continue
        yield obj
        pos = end
