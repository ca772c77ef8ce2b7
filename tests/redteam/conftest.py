"""Red-team fixtures: a background load, so the defences are shown to hold on a busy machine too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

# One busy loop per core, each a plain Python process: the machine stays saturated for as long as the
# fixture lives (what a build farm, another tenant or a second overnight run looks like to a benchmark).
LOAD = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


@pytest.fixture(scope="module")
def busy() -> Iterator[list[int]]:
    """Start the load generator; yields the pids of its processes, stopped (by pid) at the end."""
    procs = [subprocess.Popen([sys.executable, "-c", LOAD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(os.cpu_count() or 1)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


@pytest.fixture(scope="module", params=["quiet", "busy"])
def load(request: pytest.FixtureRequest) -> str:
    """Run a module's scenario twice: on an idle machine (as idle as it is) and under the load generator."""
    if request.param == "busy":
        request.getfixturevalue("busy")
    return request.param
