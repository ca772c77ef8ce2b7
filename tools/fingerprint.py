"""What machine a measurement was taken on, so numbers from different machines are never compared.

Speedups of small patches do not transfer across CPUs (see the reference notes), so a run record
carries this fingerprint and `comparable` refuses to mix results across machines or toolchains.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ABSENT = "absent"
# Each tool's version command; the first line matching the pattern (or the first line) is kept.
TOOLS: dict[str, list[str]] = {
    "java": ["java", "-version"],
    "mvn": ["mvn", "-v"],
    "zig": [sys.executable, "-m", "ziglang", "version"],
    "hyperfine": ["hyperfine", "--version"],
}
COMPARED = ("cpu_model", "cores", "kernel", "tools")


def fingerprint() -> dict:
    """CPU, kernel, governor, load and tool versions of this machine; never raises."""
    return {**copy.deepcopy(_static()), "loadavg": list(_loadavg())}


def comparable(a: dict, b: dict) -> bool:
    """Same CPU model, core count, kernel and tool versions (load and governor may differ)."""
    return all(a.get(k) == b.get(k) for k in COMPARED)


@functools.cache
def _static() -> dict:
    with ThreadPoolExecutor(len(TOOLS)) as pool:  # java/mvn take ~1 s each; ask them all at once
        versions = dict(zip(TOOLS, pool.map(_version, TOOLS.values()), strict=True))
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "kernel": platform.release(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or ABSENT,
        "tools": {"python": platform.python_version(), **versions},
        "host": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
    }


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(?:model name|Hardware|cpu model)\s*:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else platform.processor() or platform.machine()


def _version(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ABSENT
    if res.returncode != 0:
        return ABSENT
    lines = [ln.strip() for ln in (res.stdout + "\n" + res.stderr).splitlines() if ln.strip()]
    # mvn prints ANSI colour codes and its version on the first line; java on stderr.
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[0]) if lines else ABSENT


def _loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None
