"""Who may use the host's cores: builds and tests share them, a measurement has them alone.

With several lanes, one lane's build would land in another lane's A/B pairs and bias them. So every
build, test and profile takes a shared lease and every measurement (verification pairs, the model's
own benchmark runs, calibration, confirmation) an exclusive one. The lease is an flock on a file in
the temp folder, so it also keeps two `optimize` processes on one machine out of each other's way;
within a process a waiting measurement stops new shared holders (flock alone would let a stream of
builds starve it). Shared holders are also capped at the CPU count: the build budget.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path(tempfile.gettempdir()) / "nightshift-host.lock"

_state = threading.Condition()
_waiting_exclusive = 0
_budget = threading.BoundedSemaphore(os.cpu_count() or 1)


@contextmanager
def _flock(mode: int) -> Iterator[None]:
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # one open per holder: flock is per open file
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def shared() -> Iterator[None]:
    """For builds, tests and profiles: many at once (up to the CPU count), never during a measurement."""
    with _state:
        _state.wait_for(lambda: _waiting_exclusive == 0)
    with _budget, _flock(fcntl.LOCK_SH):
        yield


@contextmanager
def exclusive() -> Iterator[None]:
    """For measurements: nothing else of ours runs on the host meanwhile."""
    global _waiting_exclusive
    with _state:
        _waiting_exclusive += 1
    try:
        with _flock(fcntl.LOCK_EX):
            yield
    finally:
        with _state:
            _waiting_exclusive -= 1
            _state.notify_all()
