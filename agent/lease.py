"""Who may use the host's cores: builds and tests share them, a measurement has them alone.

With several lanes, one lane's build would land in another lane's A/B pairs and bias them. So every
build, test and profile takes a shared lease and every measurement (verification pairs, the model's
own benchmark runs, calibration, confirmation) an exclusive one. The lease is an flock on a file in
the temp folder, so it also keeps two `optimize` processes on one machine out of each other's way;
a waiting measurement stops new shared holders, in this process and in others (flock alone would let a
stream of builds starve it: a second lock file, the intent, is held by a waiting measurement and passed
through briefly by every new shared holder). Shared holders are also capped at the CPU count: the build budget.

Waiting is never silent: a holder leaves a small file saying who it is (pid, run, since when), a
waiter names it through `on_wait` every minute, and the time spent waiting is counted per thread
(so per lane) for the per-iteration timing, apart from harness overhead.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path(tempfile.gettempdir()) / "nightshift-host.lock"
INTENT_FILE = Path(tempfile.gettempdir()) / "nightshift-host.intent"
HOLDERS = Path(tempfile.gettempdir()) / "nightshift-host.holders"
REPEAT_S = 60.0  # how often a long wait is reported again

_state = threading.Condition()
_waiting_exclusive = 0
_budget = threading.BoundedSemaphore(os.cpu_count() or 1)
_serial = itertools.count()
_waited = threading.local()

owner = ""  # this process's run id, shown to other processes waiting on us
on_wait: Callable[[str], None] | None = None  # where "waiting for ..." lines go (the run's progress)


def waited_s() -> float:
    """Seconds this thread has spent waiting for the lease, in all."""
    return getattr(_waited, "seconds", 0.0)


def holders() -> list[dict]:
    """Who holds the lease now, from the holder files of live processes (a killed holder's file is ignored)."""
    out = []
    for f in sorted(HOLDERS.glob("*.json")) if HOLDERS.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(f.read_text())
            os.kill(int(info["pid"]), 0)
            out.append(info)
    return out


def _describe(mode: str) -> str:
    others = [h for h in holders() if h["pid"] != os.getpid()] or holders()
    if not others:
        return f"waiting for the host lease ({mode})"

    def who(h: dict) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(h["since"]))
        return f"pid {h['pid']}" + (f", run {h['run']}" if h.get("run") else "") + f" for {h['what']} since {since}"

    more = f" and {len(others) - 3} more" if len(others) > 3 else ""
    return f"waiting for the host lease ({mode}): held by " + "; ".join(who(h) for h in others[:3]) + more


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # one open per holder: flock is per open file


@contextmanager
def _flock(mode: int, what: str) -> Iterator[None]:
    kind = "exclusive" if mode == fcntl.LOCK_EX else "shared"
    fd, intent = _open(LOCK_FILE), _open(INTENT_FILE)
    start, said = time.monotonic(), [False]
    try:
        # A measurement announces itself on the intent file and keeps it; a build only passes through it.
        _take(intent, mode, kind, start, said)
        _take(fd, mode, kind, start, said)
        if mode != fcntl.LOCK_EX:
            fcntl.flock(intent, fcntl.LOCK_UN)
        with _holding(kind, what):
            yield
    finally:
        os.close(fd)  # closing releases the locks
        os.close(intent)


def _take(fd: int, mode: int, kind: str, start: float, said: list[bool]) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        _wait(fd, mode, kind, start, said)


def _wait(fd: int, mode: int, kind: str, start: float, said: list[bool]) -> None:
    waiting_since = last = time.monotonic()
    if on_wait and not said[0]:
        said[0] = True
        on_wait(_describe(kind))
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.05)
            if on_wait and time.monotonic() - last >= REPEAT_S:
                last = time.monotonic()
                on_wait(_describe(kind) + f" (waiting {last - start:.0f} s)")
    finally:
        _waited.seconds = waited_s() + time.monotonic() - waiting_since


@contextmanager
def _holding(kind: str, what: str) -> Iterator[None]:
    HOLDERS.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        HOLDERS.chmod(0o1777)  # other users' runs on this host leave their files here too
    f = HOLDERS / f"{os.getpid()}-{next(_serial)}.json"
    f.write_text(json.dumps({"pid": os.getpid(), "run": owner, "what": what, "mode": kind, "since": time.time()}))
    try:
        yield
    finally:
        f.unlink(missing_ok=True)


@contextmanager
def shared(what: str = "a build") -> Iterator[None]:
    """For builds, tests and profiles: many at once (up to the CPU count), never during a measurement."""
    start = time.monotonic()
    with _state:
        _state.wait_for(lambda: _waiting_exclusive == 0)
    _waited.seconds = waited_s() + time.monotonic() - start
    with _budget, _flock(fcntl.LOCK_SH, what):
        yield


@contextmanager
def exclusive(what: str = "a measurement") -> Iterator[None]:
    """For measurements: nothing else of ours runs on the host meanwhile."""
    global _waiting_exclusive
    with _state:
        _waiting_exclusive += 1
    try:
        with _flock(fcntl.LOCK_EX, what):
            yield
    finally:
        with _state:
            _waiting_exclusive -= 1
            _state.notify_all()
