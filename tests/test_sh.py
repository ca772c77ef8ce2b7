"""tools.sh: containment of every command the model can trigger, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tools import sh

PY = sys.executable
needs_bwrap = pytest.mark.skipif(not sh.bwrap_available(), reason=f"no bubblewrap: {sh.bwrap_problem()}")


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    marker = f"nightshift-sleep-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    sleeper = f"{PY} -c 'import time; time.sleep(60)' {marker}"
    r = sh.run(f"{sleeper} & {sleeper}; echo never", tmp_path, 1.5)
    assert r.timed_out and not r.ok and time.monotonic() - started < 10
    assert "still running" in r.notes[0]
    time.sleep(0.3)
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_exit_code_signal_and_output(tmp_path: Path) -> None:
    r = sh.run("echo out; echo err >&2; exit 3", tmp_path, 10)
    assert (r.returncode, r.stdout, r.stderr, r.signal, r.ok) == (3, "out\n", "err\n", None, False)
    killed = sh.run("kill -SEGV $$", tmp_path, 10)
    assert killed.signal == 11 and not killed.ok


def test_output_is_capped_with_a_marker(tmp_path: Path) -> None:
    r = sh.run([PY, "-c", "print('a' * 300_000 + 'END')"], tmp_path, 20, cap=1000)
    assert r.truncated and r.stdout.rstrip().endswith("END") and "cut by nightshift" in r.stdout
    assert len(r.stdout) < 1200 and not r.runaway


def test_runaway_output_is_killed_early(tmp_path: Path) -> None:
    started = time.monotonic()
    r = sh.run("yes nightshift", tmp_path, 60)
    assert r.runaway and not r.timed_out and not r.ok and time.monotonic() - started < 30
    assert "MiB of output" in r.notes[0]


def test_environment_has_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-marker")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret-marker")
    monkeypatch.setenv("NIGHTSHIFT_VISIBLE", "yes")
    r = sh.run("env", tmp_path, 10)
    assert "secret-marker" not in r.stdout and "NIGHTSHIFT_VISIBLE=yes" in r.stdout


def test_memory_limit_stops_a_bomb(tmp_path: Path) -> None:
    bomb = "hog = []\nwhile True:\n    hog.append(bytearray(32 << 20))\n"
    r = sh.run([PY, "-c", bomb], tmp_path, 30, limits=sh.Limits(memory_mb=512))
    assert r.returncode != 0 and "MemoryError" in r.stderr
    assert r.max_rss_kb < 600 * 1024


def test_default_memory_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_MEMORY_MB", "777")
    assert sh.Limits().memory_mb == 777
    monkeypatch.delenv("NIGHTSHIFT_MEMORY_MB")
    assert 1024 <= (sh.Limits().memory_mb or 0) <= 16_384


def test_sandbox_mode_is_explained() -> None:
    mode = sh.sandbox_mode()
    assert mode.startswith("bwrap:") if sh.bwrap_available() else mode.startswith("limits-only (")


@needs_bwrap
def test_sandbox_read_only_outside_worktree_private_tmp(tmp_path: Path) -> None:
    wt, outside = tmp_path / "wt", tmp_path / "outside"
    wt.mkdir()
    outside.mkdir()
    host_tmp = Path("/tmp") / f"nightshift-sh-{uuid.uuid4().hex[:8]}"
    visible = Path(__file__).resolve().parent / f"nightshift-probe-{host_tmp.name}"  # shown, read-only
    home_probe = Path.home() / f"nightshift-probe-{host_tmp.name}"
    script = (f"echo ok > inside.txt; echo bad > {outside}/x.txt; echo bad > {home_probe}; cat {home_probe}; "
              f"echo bad > {visible}; echo tmp > {host_tmp}; cat {host_tmp}")
    r = sh.run(script, wt, 20, sandbox=sh.Sandbox())
    assert r.sandboxed and (wt / "inside.txt").read_text() == "ok\n"
    assert "tmp" in r.stdout and "bad" in r.stdout  # /tmp and $HOME are writable inside ...
    assert not host_tmp.exists() and not home_probe.exists()  # ... but private
    assert not (outside / "x.txt").exists() and not visible.exists()
    assert "Read-only file system" in r.stderr  # the rest of the filesystem: read-only
    assert f"{outside}/x.txt: Directory nonexistent" in r.stderr or "No such file" in r.stderr  # /tmp: hidden


@needs_bwrap
def test_sandbox_readonly_worktree_hidden_and_frozen_paths(tmp_path: Path) -> None:
    wt, cache = tmp_path / "wt", tmp_path / "cache"
    (wt / "sub").mkdir(parents=True)
    cache.mkdir()
    (cache / "result.txt").write_text("precomputed")
    ro = sh.run(f"ls {cache}; echo x > a.txt", wt, 20, sandbox=sh.Sandbox(readonly=True, hidden=(cache,)))
    assert "result.txt" not in ro.stdout and not (wt / "a.txt").exists() and ro.returncode != 0
    frozen = sh.run("echo x > sub/b.txt; echo y > ok.txt", wt, 20, sandbox=sh.Sandbox(frozen=(wt / "sub",)))
    assert not (wt / "sub" / "b.txt").exists() and (wt / "ok.txt").exists()
    assert "Read-only" in frozen.stderr


@needs_bwrap
def test_sandbox_has_no_network(tmp_path: Path) -> None:
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('connected')\n" \
           "except OSError as e:\n    print('blocked', e)\n"
    r = sh.run([PY, "-c", code], tmp_path, 20, sandbox=sh.Sandbox())
    assert "blocked" in r.stdout


@needs_bwrap
def test_sandbox_kills_processes_that_left_the_group(tmp_path: Path) -> None:
    marker = f"nightshift-daemon-{uuid.uuid4().hex[:8]}"
    r = sh.run(f"setsid {PY} -c 'import time; time.sleep(60)' {marker} & sleep 1; ps -ww -eo args",
               tmp_path, 20, sandbox=sh.Sandbox())
    assert r.returncode == 0 and marker in r.stdout  # it was running inside
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_cannot_start_is_a_result_not_an_exception(tmp_path: Path) -> None:
    r = sh.run(["/nonexistent/binary"], tmp_path, 5)
    assert r.returncode == 127 and "cannot start" in r.stderr


def test_clean_env_keeps_path() -> None:
    assert sh.clean_env()["PATH"] == os.environ["PATH"]


@needs_bwrap
def test_sandbox_keeps_cpu_time_and_peak_rss(tmp_path: Path) -> None:
    """Guard metrics and hack flags compare these; an extra init process in between would hide them."""
    code = "x = bytearray(150 << 20)\nfor i in range(2_000_000):\n    pass\n"
    plain = sh.run([PY, "-c", code], tmp_path, 30)
    boxed = sh.run([PY, "-c", code], tmp_path, 30, sandbox=sh.Sandbox(readonly=True))
    assert boxed.sandboxed and boxed.max_rss_kb > 140 * 1024 and boxed.cpu_s > 0.3 * plain.cpu_s
