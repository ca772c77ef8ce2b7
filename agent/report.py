"""The morning report: one self-contained HTML file per run (`optimize report RUN`).

Everything comes from the run record (run.json, events.jsonl, llm.jsonl, iterations/NNN/); the headline
numbers come from `show()` so the report and `optimize show` never disagree. The page has no script and
loads nothing: the chart is inline SVG, the text is escaped by Jinja's autoescape (the model's words are
untrusted), and a Content-Security-Policy forbids scripts even if escaping were ever bypassed. Big things
(flame graphs, whole logs) are linked by relative path rather than embedded, so the file stays small.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from agent.records import AttemptStarted, IterationEvent, NoteEvent, PlanEvent, RunStore
from agent.show import show

TEMPLATES = Path(__file__).parent / "templates"
DIFF_CAP = 60_000  # characters of one attempt's diff shown inline; the full patch is linked
LOG_TAIL_LINES = 40
TEXT_CAP = 8_000  # one reply's reasoning or content
ARGS_CAP = 400  # one tool call's arguments
Link = Callable[[str | None], str | None]
EMBED_CAP = 8 << 20  # bytes: files up to this size are embedded in the report
COLOURS = {"accepted": "#1a7f37", "rejected": "#b35900", "error": "#c62828"}


@dataclass
class Reply:
    tag: str  # plan, attempt-NNN, or attempt-NNN-compact (a context compaction inside that attempt)
    reasoning: str
    content: str
    calls: list[str]


@dataclass
class Attempt:
    row: dict[str, Any]  # the show() iteration
    hypothesis: str
    summary: str
    tool_calls: int
    minutes: float | None
    diff: str
    diff_link: str | None
    logs: dict[str, str]  # name -> tail
    log_links: dict[str, str]
    flamegraph: str | None
    profile_summary: str
    replies: list[Reply] = field(default_factory=list)


def write_report(store: RunStore, out: Path | None = None) -> Path:
    """Render the run's report to `out` (default `<run dir>/report.html`) and return its path."""
    out = out or store.path / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render(store, out.parent), encoding="utf-8")
    os.replace(tmp, out)
    return out


def render(store: RunStore, out_dir: Path) -> str:
    """The report's HTML; links to record files are relative to `out_dir`, where the page will live."""
    data = show(store)
    m = store.manifest()
    events = store.events()
    iterations = {e.index: e for e in events if isinstance(e, IterationEvent)}
    for row in data["iterations"]:  # the measured value is in the event, not in show()'s contract
        row["value"] = iterations[row["index"]].value
    started = {e.index: e.time for e in events if isinstance(e, AttemptStarted)}
    replies = _replies(store.path / "llm.jsonl")

    def replies_of(tag: str) -> list[Reply]:
        return [r for r in replies if r.tag == tag or r.tag.startswith(tag + "-")]
    link = _linker(store.path, out_dir)
    attempts = [_attempt(store.path, row, iterations[row["index"]], started.get(row["index"]),
                         replies_of(f"attempt-{row['index']:03d}"), link) for row in data["iterations"]]
    base_profile = data["profile"] or {}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["ci"] = _ci
    return env.get_template("report.html.j2").render(
        d=data, m=m, attempts=attempts, colours=COLOURS,
        hours=_hours(m.summary, m.started, m.updated),
        tokens=int(data["tokens"].get("prompt", 0)) + int(data["tokens"].get("completion", 0)),  # cached ⊂ prompt
        llm_label=_llm_label(m.endpoint),
        notes=[e for e in events if isinstance(e, NoteEvent)],
        plans=[e for e in events if isinstance(e, PlanEvent)], plan_replies=replies_of("plan"),
        chart=_chart(data),
        baseline_flamegraph=link(base_profile.get("flamegraph")),
        baseline_summary=_read(_sibling(store.path, base_profile.get("flamegraph"), "summary.txt"), 4000),
        generated=datetime.now().astimezone().isoformat(timespec="seconds"),
    )


# ----------------------------------------------------------------------------- record reading


def _attempt(run: Path, row: dict[str, Any], ev: IterationEvent, t0: float | None, replies: list[Reply],
             link: Link) -> Attempt:
    d = run / row["files"]
    diff = _read(d / "diff.patch", None)
    logs = {name: _tail(d / name) for name in ("build.log", "test.log") if (d / name).exists()}
    profile = ev.profile or {}
    return Attempt(
        row=row, hypothesis=str(ev.strategy.get("hypothesis", "")), summary=ev.summary, tool_calls=ev.tool_calls,
        minutes=(ev.time - t0) / 60 if t0 else None,
        diff=diff if len(diff) <= DIFF_CAP else diff[:DIFF_CAP] + f"\n… {len(diff) - DIFF_CAP} more characters",
        diff_link=link(f"{row['files']}/diff.patch") if diff else None,
        logs=logs, log_links={name: link(f"{row['files']}/{name}") or "" for name in logs},
        flamegraph=link(profile.get("flamegraph")),
        profile_summary=_read(_sibling(run, profile.get("flamegraph"), "summary.txt"), 4000),
        replies=replies,
    )


def _replies(path: Path) -> list[Reply]:
    """The model's replies in order; a torn last line is skipped."""
    out: list[Reply] = []
    if not path.exists():
        return out
    with path.open(encoding="utf-8", errors="replace") as f:  # line by line: llm.jsonl can be large
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            resp = rec.get("response") if isinstance(rec, dict) else None
            if not isinstance(resp, dict):
                continue
            calls = [f"{c.get('name', '?')}({_cap(str(c.get('arguments', '')), ARGS_CAP)})"
                     for c in resp.get("tool_calls") or [] if isinstance(c, dict)]
            out.append(Reply(str(rec.get("tag", "")), _cap(str(resp.get("reasoning") or ""), TEXT_CAP),
                             _cap(str(resp.get("content") or ""), TEXT_CAP), calls))
    return out


def _read(path: Path | None, cap: int | None) -> str:
    if path is None or not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return _cap(text, cap) if cap else text


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    return (f"… {len(lines) - LOG_TAIL_LINES} earlier lines\n" if len(lines) > LOG_TAIL_LINES else "") + tail


def _cap(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f" … ({len(text) - n} more characters in the record)"


def _sibling(run: Path, rel: str | None, name: str) -> Path | None:
    return (run / rel).parent / name if rel else None


def _linker(run: Path, out_dir: Path) -> Link:
    """A function from a record-relative path to the file embedded as a data: URL (downloaded with a click, so
    the report is one self-contained file that travels alone), None if the file is gone. A file too large to
    embed is linked relative to where the report is written instead."""
    def link(rel: str | None) -> str | None:
        if not rel or not (run / rel).is_file():
            return None
        path = run / rel
        if path.stat().st_size > EMBED_CAP:
            return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
        mime = "text/html" if path.suffix == ".html" else "text/plain"
        return f"data:{mime};charset=utf-8;base64," + base64.b64encode(path.read_bytes()).decode()
    return link


# ----------------------------------------------------------------------------- headline helpers


def _llm_label(endpoint: str) -> str | None:
    """Runs driven by a replay file did not talk to a live model; say so on the first line of the report."""
    if not endpoint.startswith("replay:"):
        return None
    if Path(endpoint.removeprefix("replay:")).name == "llm.jsonl":
        return "replayed recording"
    return "scripted transcript"


def _hours(summary: dict[str, Any], started: str, updated: str) -> float | None:
    if isinstance(summary.get("hours"), int | float):
        return float(summary["hours"])
    try:
        return (datetime.fromisoformat(updated) - datetime.fromisoformat(started)).total_seconds() / 3600
    except ValueError:
        return None


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


# ----------------------------------------------------------------------------- the chart


@dataclass
class Chart:
    width: int
    height: int
    box: tuple[float, float, float, float]  # left, top, right, bottom of the plot area
    best_path: str
    points: list[dict[str, Any]]
    misses: list[dict[str, Any]]  # attempts without a measurement, drawn on the strip under the axis
    yticks: list[tuple[float, str]]
    xticks: list[tuple[float, str]]
    unit: str
    better: str
    log: bool


def _chart(d: dict[str, Any]) -> Chart | None:
    """Speedup over the baseline per attempt: each measured attempt's verified speedup times the best so far
    (the same numbers the verdicts used; values measured at other times under other load are not comparable),
    the best so far as a step line."""
    if d["baseline"]["value"] is None:
        return None
    base = 1.0
    its = d["iterations"]
    gain, measured = 1.0, []
    for it in its:
        if it.get("speedup"):
            measured.append((it, gain * it["speedup"]))
            if it["verdict"] == "accepted":
                gain *= it["speedup"]
    values = [base] + [v for _, v in measured]
    lo, hi = min(values), max(values)
    # An implausible result (a hack, a broken metric) can be 1000x the rest: use a log scale then.
    log = lo > 0 and hi / lo > 8
    if log:
        lo, hi = lo / 1.15, hi * 1.15
    else:
        pad = (hi - lo) * 0.08 or abs(base) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    scale: Any = math.log10 if log else (lambda v: v)
    w, h = 760, 300
    left, top, right, bottom = 64.0, 16.0, w - 16.0, h - 56.0
    n = max(len(its), 1)

    def x(i: float) -> float:
        return left + (right - left) * i / n

    def y(v: float) -> float:
        return bottom - (bottom - top) * (scale(v) - scale(lo)) / (scale(hi) - scale(lo))

    best, path = base, [f"M{x(0):.1f},{y(base):.1f}"]
    implied = {it["index"]: v for it, v in measured}
    for it in its:
        if it["verdict"] == "accepted" and it["index"] in implied:
            best = implied[it["index"]]
        path.append(f"H{x(it['index']):.1f}V{y(best):.1f}")
    path.append(f"H{right:.1f}")
    tip = "{index}. {strategy}: {verdict} ({reason})"
    points = [{"x": x(it["index"]), "y": y(v), "colour": COLOURS.get(it["verdict"], "#555"),
               "title": tip.format(**it) + f", {it['speedup']:.3f}x its base, {v:.3f}x the baseline"}
              for it, v in measured]
    points.insert(0, {"x": x(0), "y": y(base), "colour": "#1f4e9c", "title": "baseline (1x)"})
    misses = [{"x": x(it["index"]), "y": bottom + 18, "colour": COLOURS.get(it["verdict"], "#555"),
               "title": tip.format(**it)} for it in its if not it.get("speedup")]
    step = max(1, n // 20)
    return Chart(
        width=w, height=h, box=(left, top, right, bottom), best_path="".join(path), points=points, misses=misses,
        yticks=[(y(v), f"{v:g}") for v in (_log_ticks(lo, hi) if log else _nice_ticks(lo, hi))], log=log,
        xticks=[(x(i), str(i)) for i in range(0, n + 1, step)],
        unit="times the baseline", better="higher",
    )


def _nice_ticks(lo: float, hi: float) -> list[float]:
    """Round-numbered ticks (1, 2 or 5 times a power of ten) inside [lo, hi], three to seven of them."""
    raw = (hi - lo) / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = next(k * mag for k in (1, 2, 5, 10) if k * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2 and 5 times the powers of ten inside [lo, hi]; only the powers when there are many decades."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    mults = (1,) if len(decades) > 3 else (1, 2, 5)
    return [m * 10.0**k for k in decades for m in mults if lo <= m * 10.0**k <= hi]
