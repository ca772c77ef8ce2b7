"""The host lease: builds share the machine, a measurement has it alone, across threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent import lease

ROOT = Path(__file__).resolve().parents[1]
HOLD = "from agent import lease; import time\nwith lease.exclusive():\n    print('held', flush=True)\n    time.sleep({s})\n"


def test_another_process_measuring_keeps_builds_waiting() -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(s=3)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout and proc.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with lease.shared():
        waited = time.monotonic() - t0
    proc.wait(timeout=30)
    assert waited > 1.0


def test_a_waiting_measurement_goes_before_new_builds() -> None:
    events: list[str] = []
    build_running, build_may_end = threading.Event(), threading.Event()

    def first_build() -> None:
        with lease.shared():
            events.append("build 1 start")
            build_running.set()
            build_may_end.wait(10)
            events.append("build 1 end")

    def measurement() -> None:
        with lease.exclusive():
            events.append("measure")

    def second_build() -> None:
        with lease.shared():
            events.append("build 2")

    threads = [threading.Thread(target=first_build)]
    threads[0].start()
    build_running.wait(10)
    threads.append(threading.Thread(target=measurement))
    threads[1].start()
    deadline = time.monotonic() + 10
    while lease._waiting_exclusive == 0 and time.monotonic() < deadline:  # the measurement now waits for build 1
        time.sleep(0.01)
    threads.append(threading.Thread(target=second_build))
    threads[2].start()
    time.sleep(0.3)
    assert events == ["build 1 start"]  # neither the measurement nor a new build got in
    build_may_end.set()
    for t in threads:
        t.join(10)
    assert events == ["build 1 start", "build 1 end", "measure", "build 2"]


def test_builds_run_side_by_side() -> None:
    inside, most = [0], [0]
    guard = threading.Lock()

    def build() -> None:
        with lease.shared():
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == min(2, os.cpu_count() or 1)  # the build budget is the CPU count


BUILD = ("from agent import lease; import sys, time\nwith lease.shared():\n    print('in', flush=True)\n"
         "    time.sleep(float(sys.argv[1]))\n")


def test_builds_of_other_processes_cannot_starve_a_measurement() -> None:
    """Another process's builds keep arriving while we wait to measure: the first one ends, we go next."""
    first = subprocess.Popen([sys.executable, "-c", BUILD, "2"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert first.stdout and first.stdout.readline().strip() == "in"
    got: list[float] = []

    def measure() -> None:
        with lease.exclusive():
            got.append(time.monotonic())

    waiter = threading.Thread(target=measure)
    waiter.start()
    time.sleep(0.5)  # the measurement now waits for the first build
    later = subprocess.Popen([sys.executable, "-c", BUILD, "4"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    waiter.join(60)
    assert later.stdout and later.stdout.readline().strip() == "in"
    entered = time.monotonic()
    first.wait(10)
    later.wait(10)
    assert got and entered >= got[0]  # the later build got in only after the measurement
