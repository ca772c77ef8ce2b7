"""The morning report, built from real run records written through agent.records (no mocks), checked as
parsed HTML and, in headless Chromium, as a reader sees it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent.config import parse_spec
from agent.records import (
    AttemptStarted,
    BaselineEvent,
    ConfirmEvent,
    FinishEvent,
    IterationEvent,
    Manifest,
    NoteEvent,
    PlanEvent,
    RunStore,
)
from agent.report import write_report
from tests.tiny_target import make_repo, transcript

ROOT = Path(__file__).resolve().parents[1]
BROWSER_DIR = ROOT / "tests" / "browser"
EVIL = "<script>window.__pwned=1</script>"
SPEC = {
    "name": "tiny", "test": {"cmd": "true"},
    "bench": {"cmd": "python bench.py", "metric": {"regex": "rate: ([0-9.]+)", "unit": "ops/s", "better": "higher"},
              "reference_cmd": "python ref.py"},
    "guard": {"protected": ["bench.py"]},
}
STRATEGIES = [
    {"title": "Use a set for membership", "hypothesis": "list scans are O(n)", "files": ["a.py"]},
    {"title": f"Cache results {EVIL}", "hypothesis": "memoise <b>everything</b>", "files": ["a.py"]},
    {"title": "Rewrite the parser", "hypothesis": "split beats regex", "files": ["p.py"]},
    {"title": "Inline the hot loop", "hypothesis": "fewer calls", "files": ["a.py"]},
]


def make_run(tmp: Path, endpoint: str = "replay:targets/tiny/showcase.jsonl") -> RunStore:
    """A finished four-attempt run: accepted (flagged, profiled), not-significant, tests-failed, error."""
    store = RunStore(tmp / "20260101-000000-tiny")
    store.path.mkdir(parents=True)
    spec = parse_spec(SPEC, "test").model_dump()
    store.write_manifest(Manifest(
        run_id=store.path.name, status="finished", target="tiny", spec=spec, repo=str(tmp / "repo"),
        source=str(tmp / "repo"), in_place=False, base_commit="a" * 40, model="replay", endpoint=endpoint,
        options={}, fingerprint={"cores": 2, "host": "box"}, sandbox="none", started="2026-01-01T00:00:00+00:00",
        updated="2026-01-01T02:30:00+00:00", stop_reason="transcript ended",
        summary={"tool_calls": 17, "tokens": {"prompt": 1200, "completion": 345, "cached": 800}, "hours": 2.5}))
    prof = store.iteration_dir(0) / "profile"
    prof.mkdir()
    (prof / "flamegraph.html").write_text("<html>flame</html>")
    (prof / "summary.txt").write_text("Top 15 by self\n  61.0% self  a.hot_loop (a.py)\n")
    store.append(NoteEvent(level="warning", text="this machine is noisy"))
    store.append(BaselineEvent(commit="a" * 40, value=100.0, unit="ops/s", better="higher", noise_floor=0.021,
                               min_effect=0.042, output_lines=[],
                               profile={"profiler": "py-spy", "flamegraph": "iterations/000/profile/flamegraph.html"}))
    store.append(PlanEvent(round=1, strategies=STRATEGIES))
    outcomes = [
        dict(verdict="accepted", reason="faster", detail="speedup 1.500 [1.400, 1.600]", speedup=1.5, ci=(1.4, 1.6),
             pairs=10, value=150.0, flags=["implausible: 1.5x from a 3-line diff"]),
        dict(verdict="rejected", reason="not-significant", detail="same: speedup 1.010 [0.990, 1.030] after 20 pairs",
             speedup=1.01, ci=(0.99, 1.03), pairs=20, value=151.5),
        dict(verdict="rejected", reason="tests-failed", detail="exit code 1\nFAILED tests/test_p.py::test_quotes"),
        dict(verdict="error", reason="crashed", detail="benchmark exited with signal 11"),
    ]
    llm = []
    for i, (strategy, o) in enumerate(zip(STRATEGIES, outcomes, strict=True), 1):
        branch = f"optimize/{store.path.name}/iter-{i:03d}"
        store.append(AttemptStarted(index=i, strategy=strategy, branch=branch, base_commit="a" * 40, llm_position=i))
        store.write_text(i, "diff.patch", f"--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-old{i}\n+new{i} <img src=x onerror=alert(1)>\n")
        store.write_text(i, "test.log", "\n".join(f"test line {n}" for n in range(100)) + f"\nlast test line {i}\n")
        profile = None
        if o["verdict"] == "accepted":
            store.write_text(i, "build.log", "compiled ok\n")
            (store.iteration_dir(i) / "profile").mkdir()
            (store.iteration_dir(i) / "profile" / "flamegraph.html").write_text("<html>flame</html>")
            profile = {"flamegraph": f"iterations/{i:03d}/profile/flamegraph.html"}
        store.append(IterationEvent(index=i, strategy=strategy, branch=branch, commit=f"{i}" * 40, base_commit="a" * 40,
                                    summary=f"summary of attempt {i}", tool_calls=3, profile=profile, **o))
        for step in range(2):
            llm.append({"seq": len(llm), "tag": f"attempt-{i:03d}", "request": {"messages": []}, "response": {
                "content": "", "reasoning": f"reasoning {i}.{step} </pre>{EVIL}",
                "tool_calls": [{"id": f"functions.read_file:{step}", "name": "read_file", "arguments": '{"path": "a.py"}'}],
                "finish_reason": "tool_calls", "usage": {}}})
    llm.insert(4, {"seq": -2, "tag": "attempt-002-compact", "response": {"content": "compacted: read a.py",
                                                                         "reasoning": "", "tool_calls": []}})
    llm.insert(0, {"seq": -1, "tag": "plan", "response": {"content": "{}", "reasoning": "plan reasoning", "tool_calls": []}})
    store.llm_path.write_text("".join(json.dumps(r) + "\n" for r in llm) + '{"torn": ')
    store.append(ConfirmEvent(best_commit="1" * 40, speedup=1.48, ci=(1.41, 1.55), pairs=12, verdict="better",
                              baseline_value=101.0, best_value=149.5,
                              reference={"cmd": "python ref.py", "value": 200.0, "best_value": 149.5, "speedup": 0.75,
                                         "ci": [0.7, 0.8]}))
    store.append(FinishEvent(status="finished", stop_reason="transcript ended"))
    return store


class Page(HTMLParser):
    """Tags with their attributes, and the text under each id'd element, enough to check structure."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag not in ("meta", "link", "br", "hr", "input", "img"):  # HTML void elements never close
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self.text[a["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.text[ident] += data

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in a.get("class", "").split())]


def test_report_has_the_headline_chart_table_and_every_attempt(tmp_path: Path) -> None:
    store = make_run(tmp_path)
    out = write_report(store)
    assert out == store.path / "report.html"
    html = out.read_text()
    page = Page(html)
    head = " ".join(page.text["headline"].split())
    # The headline is the confirmation's side-by-side pair; the start-of-run value is labelled as such.
    assert "101 ops/s → 149.5 ops/s" in head and "1.48×" in head and "[1.410, 1.550]" in head
    assert "start-of-run baseline 100 ops/s" in head
    assert "confirmed against the baseline" in head
    for stat in ("time2.5 h", "tool calls17", "tokens1,545 (800 cached)", "noise floor±2.1%", "strategies tried4 (1 accepted)"):
        assert stat in head
    assert page.text["llm-label"] == "scripted transcript"
    assert "python ref.py" in page.text["reference"] and "0.75×" in page.text["reference"]
    assert "this machine is noisy" in head
    # Chart: the baseline and three measured attempts as dots, the two unmeasured ones as crosses.
    assert len(page.find("circle", "point")) == 3
    assert len(page.find("path", "miss")) == 2
    assert [a["data-verdict"] for a in page.find("tr") if "data-verdict" in a] == [
        "accepted", "rejected", "rejected", "error"]
    attempts = page.text["attempts"]
    assert "1.500×" in attempts and "[1.400, 1.600]" in attempts and "implausible: 1.5x" in attempts
    assert "optimize/20260101-000000-tiny/iter-003" in attempts
    # Per attempt: why, summary, diff, every reply's reasoning, log tails.
    for i, reason in enumerate(["faster", "not-significant", "tests-failed", "crashed"], 1):
        section = page.text[f"attempt-{i}"]
        assert reason in section and f"summary of attempt {i}" in section and f"+new{i}" in section
        assert f"reasoning {i}.0" in section and f"reasoning {i}.1" in section
        assert f"last test line {i}" in section and "test line 10\n" not in section  # a tail, not the whole log
    assert "compacted: read a.py" in page.text["attempt-2"] and "compacted" not in page.text["attempt-1"]
    assert "FAILED tests/test_p.py::test_quotes" in page.text["attempt-3"]
    assert "signal 11" in page.text["attempt-4"]
    assert "whole confidence interval lies above" in page.text["attempt-2"]
    assert "compiled ok" in page.text["attempt-1"]
    assert "plan reasoning" in html and "a.hot_loop" in html
    assert len(html) < 200_000


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    html = write_report(make_run(tmp_path)).read_text()
    page = Page(html)
    assert not page.find("script") and "<script" not in html.lower()
    assert not page.find("img") and "onerror=alert" in html  # shown as text, not an element
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "Cache results <script>" in page.text["attempts"]  # the reader still sees the title as written
    csp = [a for a in page.find("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"] and "script" not in csp[0]["content"]


def test_the_report_is_one_file_that_travels_alone(tmp_path: Path) -> None:
    """Flame graphs, diffs and logs are embedded: the report opens complete after the run folder is gone."""
    import base64

    store = make_run(tmp_path)
    out = write_report(store, tmp_path / "elsewhere" / "r.html")
    shutil.rmtree(store.path)
    page = Page(out.read_text())
    flames = [a for a in page.find("a", "flamegraph")]
    assert len(flames) == 2 and all(a["download"].endswith(".html") for a in flames)
    assert all(base64.b64decode(a["href"].split(",", 1)[1]) == b"<html>flame</html>" for a in flames)
    files = [a for a in page.find("a") if a.get("download", "").endswith((".patch", ".log"))]
    assert len(files) == 4 + 4 + 1  # four diffs, four test logs, one build log
    assert all(a["href"].startswith("data:text/plain") for a in files)
    diff = base64.b64decode(next(a for a in files if a["download"] == "iter-001.diff.patch")["href"].split(",", 1)[1])
    assert b"+new1" in diff


def test_live_endpoint_has_no_transcript_label_and_an_empty_run_renders(tmp_path: Path) -> None:
    store = make_run(tmp_path, endpoint="http://localhost:8000/v1")
    assert "llm-label" not in Page(write_report(store).read_text()).text
    empty = RunStore(tmp_path / "empty")
    empty.path.mkdir()
    m = store.manifest()
    m.run_id, m.status, m.summary = "empty", "failed", {}
    empty.write_manifest(m)
    page = Page(write_report(empty).read_text())
    assert "No baseline was measured" in page.text["headline"] and "No attempt was made" in page.text["attempts"]


def test_chart_points_stay_inside_the_plot_and_outliers_switch_to_a_log_scale(tmp_path: Path) -> None:
    store = make_run(tmp_path)

    def plot(page: Page) -> tuple[list[float], list[float]]:
        svg = page.find("svg")[0]
        grid = [float(a["y1"]) for a in page.find("line")]
        return [float(a["cy"]) for a in page.find("circle", "point")], [min(grid), max(grid), float(svg["height"])]

    ys, (top, bottom, _) = plot(Page(write_report(store).read_text()))
    assert all(top - 30 <= y <= bottom for y in ys) and len(set(ys)) == 3
    assert "log scale" not in Page(write_report(store).read_text()).text["chart"]
    store.append(IterationEvent(index=5, strategy={"title": "Skip the work"}, branch="b5", commit="5" * 40,
                                base_commit="1" * 40, verdict="rejected", reason="guard-metric", speedup=5000.0,
                                ci=(4000.0, 6000.0), pairs=4, value=750_000.0))
    page = Page(write_report(store).read_text())
    assert "log scale" in page.text["chart"]
    ys, (top, bottom, height) = plot(page)
    assert len(ys) == 4 and all(0 <= y <= height for y in ys)
    assert max(ys) - min(ys) > 60  # the ordinary points are not squashed onto one line


def _browser_missing() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (npm ci --prefix tests/browser)"
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        return "Debian's chromium is not installed"
    return None


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path: Path) -> None:
    if missing := _browser_missing():
        if os.environ.get("CI"):  # in CI the setup installs these; a silent skip would hide a broken setup
            pytest.fail(missing)
        pytest.skip(missing)
    out = write_report(make_run(tmp_path))
    shot = ROOT / "artifacts" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    run = subprocess.run(["node", str(BROWSER_DIR / "check_report.mjs"), str(out), str(shot)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    assert seen["problems"] == []  # no console errors or warnings (a CSP violation would show here)
    assert seen["requests"] == [out.as_uri()]  # nothing loaded besides the page itself
    assert seen["scripts"] == 0 and seen["pwned"] is None
    assert seen["label"] == "scripted transcript" and "1.48×" in seen["headline"]
    assert seen["chartBox"] and seen["chartBox"][0] > 300 and seen["points"] == 3 and seen["misses"] == 2
    assert [r[3] for r in seen["rows"]] == ["accepted", "rejected", "rejected", "error"]
    assert "Cache results <script>window.__pwned=1</script>" in seen["rows"][1][1]
    assert seen["attempts"] == 4 and seen["details"] >= 12
    assert len(seen["flamegraphs"]) == 2 and all(u.startswith("data:text/html") for u in seen["flamegraphs"])
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_report_of_a_real_cli_run(tmp_path: Path) -> None:
    """The record written by a real `optimize` run (tiny target, scripted transcript) renders completely."""
    repo = make_repo(tmp_path / "repo")
    script = transcript(tmp_path / "t.jsonl")
    runs = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm", f"replay:{script}",
                        "--runs-dir", str(runs), "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = runs.iterdir()
    store = RunStore(run_dir)
    page = Page(write_report(store).read_text())
    assert page.text["llm-label"] == "scripted transcript"
    events = [e for e in store.events() if isinstance(e, IterationEvent)]
    assert [a["data-verdict"] for a in page.find("div", "attempt")] == [e.verdict for e in events]
    for e in events:  # exactly why: the reason code and the detail's text
        assert e.reason in page.text[f"attempt-{e.index}"] and e.detail.splitlines()[0] in page.text[f"attempt-{e.index}"]
    assert "Closed-form sum of squares" in page.text["attempts"]
    assert "closed form" in page.text["attempt-1"]  # the model's summary
    assert "rewrite" in page.text["attempt-1"]  # a reasoning line from llm.jsonl
    assert "def sum_of_squares" in page.text["attempt-1"]  # the diff
    assert "bench.py" in page.text["attempt-3"]  # the protected file the rejected attempt touched
    assert len(page.find("circle", "point")) >= 2
