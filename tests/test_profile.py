"""Profiling: real programs with a known hot function, real profilers, real files."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.profile import ProfileResult, profile_target, summarize, top_frames
from tools.profile.jfr import iter_events
from tools.profile.native import perf_permitted
from tools.profile.viewer import viewer_ready

ROOT = Path(__file__).resolve().parents[1]
PY = shlex.quote(sys.executable)

PY_PROG = """
KEEP = []

def make_blobs(n):
    return [bytes(2000) + str(i).encode() for i in range(n)]

def hot_spin(n):
    t = 0
    for i in range(n):
        t += (i * i) % 7
    return t

def cool(n):
    return sum(range(n))

def main():
    for _ in range(4):
        KEEP.append(make_blobs(5000))
        hot_spin(600_000)
        cool(50_000)

main()
"""

JAVA_PROG = """
import java.util.ArrayList;
import java.util.List;

public class Hot {
    static long hotLoop(int n, long seed) {
        long t = seed;
        for (int i = 0; i < n; i++) { t += (i * 31L + t) % 7; }
        return t;
    }
    static List<int[]> allocate(int n) {
        List<int[]> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(new int[256]);
        return out;
    }
    public static void main(String[] args) {
        long s = 0;
        for (int r = 0; r < 60; r++) { s += hotLoop(10_000_000, s); s += allocate(2_000).size(); }
        System.out.println(s);
    }
}
"""

C_PROG = """
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) long hot_loop(long n, long seed) {
    long t = seed;
    for (long i = 0; i < n; i++) t += (i * 31 + t) % 7 ^ (t >> 3);
    return t;
}
__attribute__((noinline)) long cold(long n, long seed) {
    long t = seed;
    for (long i = 0; i < n / 10; i++) t += (i + t) % 3;
    return t;
}
__attribute__((noinline)) char *grab(long n) {
    char *p = malloc(n);
    for (long i = 0; i < n; i += 64) p[i] = (char)i;  /* touched here: the pages fault in grab */
    return p;
}
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000, s = 0;
    char *kept = grab(32L << 20);
    for (int r = 0; r < 20; r++) { s += hot_loop(n, s); s += cold(n, s) + kept[r * 4096]; }
    printf("%ld\\n", s);
    return 0;
}
"""


@pytest.fixture(scope="module", autouse=True)
def viewer() -> None:
    """The flame graph viewer is a build-time npm download; vendor it once if this checkout lacks it."""
    if not viewer_ready():
        subprocess.run(["make", "-s", "-C", str(ROOT / "tools" / "profile"), "setup"], check=True, timeout=300)


def names(frames) -> list[str]:
    return [f.frame for f in frames]


def assert_files(res: ProfileResult) -> None:
    for path in (res.collapsed, res.flamegraph):
        assert path is not None and path.is_file() and path.stat().st_size > 0, res.warnings
    html = res.flamegraph.read_text()
    assert "loadFileFromBase64" in html and "<script src=" not in html  # everything inlined


def test_python_cpu_and_allocations(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PY_PROG)
    res = profile_target("py-spy", f"{PY} prog.py", tmp_path, tmp_path / "out", timeout=120)
    assert res.profiler == "py-spy" and res.warnings == []
    assert_files(res)
    assert "prog.hot_spin (prog.py)" in names(res.top[:5])
    assert res.top[0].self_pct > 30 and res.top == sorted(res.top, key=lambda f: -f.self_pct)
    assert res.allocations is not None and (tmp_path / "out" / "alloc.html").is_file()
    assert names(top_frames(res.allocations, 1)) == ["prog.make_blobs (prog.py)"]
    assert "hot_spin" in res.summary and "make_blobs" in res.summary and "MiB" in res.summary
    assert len(res.summary.splitlines()) <= 60


@pytest.mark.slow
def test_python_through_a_shell_wrapper_with_a_crash(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PY_PROG + "\nraise SystemExit(3)\n")
    (tmp_path / "bench.sh").write_text(f"#!/bin/sh\necho starting\n{PY} prog.py\n")
    res = profile_target("py-spy", "sh bench.sh", tmp_path, tmp_path / "out", timeout=120)
    # py-spy --subprocesses under a non-Python root samples unreliably (0-3 samples in some runs here,
    # "No python processes found" in others): a degraded profile must say so, never pass silently.
    assert "prog.hot_spin (prog.py)" in names(res.top[:5]) or any("no Python samples" in w for w in res.warnings)
    assert any("code 3" in w for w in res.warnings), res.warnings


def test_python_without_py_spy_still_profiles_allocations(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PY_PROG)
    bare = tmp_path / "bin"
    bare.mkdir()
    res = profile_target("py-spy", f"{PY} prog.py", tmp_path, tmp_path / "out", timeout=120,
                         env={"PATH": str(bare)})
    assert res.collapsed is None and res.top == []
    assert any("py-spy missing" in w for w in res.warnings)
    assert res.allocations is not None and "make_blobs" in res.summary


@pytest.mark.slow
def test_java_cpu_and_allocations(tmp_path: Path) -> None:
    if not shutil.which("javac"):
        pytest.skip("no JDK on this machine")
    (tmp_path / "Hot.java").write_text(JAVA_PROG)
    subprocess.run(["javac", "Hot.java"], cwd=tmp_path, check=True, timeout=120)
    res = profile_target("jfr", "java -cp . Hot", tmp_path, tmp_path / "out", timeout=180)
    assert res.profiler == "jfr" and res.warnings == []
    assert_files(res)
    assert "Hot.hotLoop" in names(res.top[:5])
    assert res.allocations is not None
    assert "Hot.allocate" in names(top_frames(res.allocations, 3))
    assert "Hot.allocate" in res.summary


def build_c(tmp_path: Path) -> None:
    (tmp_path / "hot.c").write_text(C_PROG)
    subprocess.run(["gcc", "-g", "-O1", "-o", "hot", "hot.c"], cwd=tmp_path, check=True, timeout=60)


def test_c_with_perf(tmp_path: Path) -> None:
    build_c(tmp_path)
    res = profile_target("perf", "./hot 10000000", tmp_path, tmp_path / "out", timeout=120)
    perf = shutil.which("perf")
    assert res.profiler == ("perf" if perf and perf_permitted(perf) else "callgrind")
    assert_files(res)
    assert "hot_loop" in names(res.top[:5])
    stacks = res.collapsed.read_text()
    assert "main;hot_loop " in stacks  # DWARF unwinding keeps the caller of a leaf
    if res.profiler == "perf":  # memory: pages first touched, by the code that touched them
        assert res.allocations is not None and top_frames(res.allocations, 1)[0].frame == "grab"
        assert "main;grab " in res.allocations.read_text() and "page faults" in res.summary


def test_c_with_callgrind(tmp_path: Path) -> None:
    build_c(tmp_path)
    res = profile_target("callgrind", "./hot 300000", tmp_path, tmp_path / "out", timeout=120)
    assert res.profiler == "callgrind"
    assert_files(res)
    assert res.top[0].frame == "hot_loop" and res.top[0].self_pct > 70
    assert "main;hot_loop " in res.collapsed.read_text()
    assert "instructions" in res.summary
    # memory from massif: the 32 MiB block under its caller, not under malloc's internals
    assert res.allocations is not None and top_frames(res.allocations, 1)[0].frame == "grab"
    assert "massif" in res.summary and (tmp_path / "out" / "alloc.html").is_file()


def test_perf_missing_falls_back_to_callgrind(tmp_path: Path) -> None:
    build_c(tmp_path)
    only = tmp_path / "bin"
    only.mkdir()
    valgrind = Path(shutil.which("valgrind") or "/usr/bin/valgrind")
    for name in ("valgrind", "valgrind.bin"):  # Debian's valgrind is a script that runs valgrind.bin
        if (valgrind.parent / name).exists():
            (only / name).symlink_to(valgrind.parent / name)
    res = profile_target("perf", "./hot 200000", tmp_path, tmp_path / "out", timeout=120,
                         env={"PATH": str(only)})
    assert res.profiler == "callgrind" and "hot_loop" in names(res.top[:3])
    assert res.warnings[0].startswith("perf missing")


def test_no_profiler_at_all_is_a_warning(tmp_path: Path) -> None:
    build_c(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    res = profile_target("perf", "./hot", tmp_path, tmp_path / "out", timeout=60, env={"PATH": str(empty)})
    assert res.collapsed is None and res.flamegraph is None and res.top == []
    assert any("perf missing" in w for w in res.warnings) and any("valgrind missing" in w for w in res.warnings)
    assert "No profile could be taken" in res.summary


def test_bogus_kind_and_none(tmp_path: Path) -> None:
    res = profile_target("dtrace", "true", tmp_path, tmp_path / "out", timeout=10)
    assert res.profiler == "none" and res.collapsed is None
    assert "unknown profiler kind 'dtrace'" in res.warnings[0]
    quiet = profile_target("none", "true", tmp_path, tmp_path / "out2", timeout=10)
    assert quiet.warnings == [] and quiet.summary == "No profile."


def test_summary_reports_what_moved(tmp_path: Path) -> None:
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    before.write_text("main;parse;split 70\nmain;render 30\n")
    after.write_text("main;parse;split 20\nmain;render 30\nmain;parse 10\n")
    frames = top_frames(after)
    assert [(f.frame, round(f.self_pct), round(f.total_pct)) for f in frames] == [
        ("render", 50, 50), ("split", 33, 33), ("parse", 17, 50)]
    text = summarize(after, previous=before)
    moved = text.split("previous profile")[1].splitlines()
    assert "-36.7" in moved[1] and "split" in moved[1]  # 70% -> 33.3%
    assert "render" in moved[2] and "+20.0" in moved[2]


def test_jfr_json_is_streamed_across_chunk_boundaries() -> None:
    events = [{"type": "jdk.ExecutionSample", "values": {"n": i, "s": "x]}" * i}} for i in range(50)]
    doc = json.dumps({"recording": {"events": events}}, indent=2)
    assert list(iter_events(io.StringIO(doc), chunk=7)) == events
    cut = doc[: len(doc) // 2]  # a killed `jfr print`: keep the complete events before the cut
    got = list(iter_events(io.StringIO(cut), chunk=64))
    assert 0 < len(got) < 50 and got == events[: len(got)]


@pytest.mark.slow
def test_flame_graph_renders_offline_in_a_browser(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium")
    collapsed = tmp_path / "cpu.collapsed.txt"
    collapsed.write_text("main;parse_line 70\nmain;render_page 30\n")
    from tools.profile.viewer import render_html

    page = render_html(collapsed, tmp_path / "fg.html", title="nightshift-test-profile")
    assert page is not None
    dom = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--proxy-server=127.0.0.1:9", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    # speedscope retitles the page with the profile's name only once it has parsed the embedded data
    assert "<title>nightshift-test-profile - speedscope</title>" in dom


def test_command_line_json(tmp_path: Path) -> None:
    build_c(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "tools.profile", "callgrind", "./hot 100000", "--cwd", str(tmp_path),
         "--out", str(tmp_path / "out"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["profiler"] == "callgrind" and data["top"][0]["frame"] == "hot_loop"
    assert Path(data["flamegraph"]).is_file() and set(data["top"][0]) == {"frame", "self_pct", "total_pct"}
