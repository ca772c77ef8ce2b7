"""The comparison report: one summary (the `optimize compare --json` contract in DESIGN.md, plus detail),
printed on the console or rendered to `runs/<comparison-id>/comparison.html`.

Everything comes from comparison.json and the arms' own run records; costs from a price table the user
edits (`--prices FILE`, default agent/compare_prices.toml), read at report time, so a corrected price
shows on the next `optimize compare ID`.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from agent.compare import ComparisonRecord, load
from agent.records import BaselineEvent, IterationEvent, RunStore
from agent.show import show

PRICES = Path(__file__).parent / "compare_prices.toml"
TEMPLATES = Path(__file__).parent / "templates"
COLOURS = ["#1f4e9c", "#c05600", "#1a7f37", "#8a2be2", "#c62828", "#00838f"]
WORD = re.compile(r"[a-z]{4,}")


def load_prices(path: Path | None) -> tuple[dict[str, dict[str, float]], str, str]:
    """(model -> {input, cached, output} per million tokens, currency, file); a bad file is BadInput."""
    from agent.start import BadInput

    path = path or PRICES
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BadInput(f"--prices {path}: {e}") from e
    models = data.get("models", {})
    for name, row in models.items():
        bad = [k for k, v in row.items() if k not in ("input", "cached", "output") or not isinstance(v, int | float)]
        if bad:
            raise BadInput(f"--prices {path}: [models.\"{name}\"] {bad[0]}: expected input, cached or output, "
                           "each a number (price per million tokens)")
    return models, str(data.get("currency", "")), str(path)


def cost(tokens: dict[str, int], price: dict[str, float] | None) -> float | None:
    """Cost of a run's tokens; None (blank) when a price it needs is unknown."""
    if not price:
        return None
    prompt, cached, completion = tokens.get("prompt", 0), tokens.get("cached", 0), tokens.get("completion", 0)
    need = {"input": prompt - cached, "cached": cached, "output": completion}
    if any(n > 0 and k not in price for k, n in need.items()):
        return None
    return sum(n * price.get(k, 0.0) for k, n in need.items()) / 1e6


def _model_seconds(store: RunStore) -> tuple[float, float]:
    """(all model time, planning model time) from llm.jsonl's recorded durations."""
    total = plan = 0.0
    path = store.llm_path
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            d = float(rec.get("duration_s") or 0.0)
            total += d
            plan += d if rec.get("tag") == "plan" else 0.0
    return total, plan


def _files(store: RunStore, index: int) -> set[str]:
    patch = store.path / "iterations" / f"{index:03d}" / "diff.patch"
    text = patch.read_text(errors="replace") if patch.exists() else ""
    return {ln[6:] for ln in text.splitlines() if ln.startswith("+++ b/")}


def _alike(x: dict[str, Any], y: dict[str, Any]) -> bool:
    """A rough match of two strategies: they change an overlapping set of files and their titles share
    a third of their words (models word the same idea differently; the report says it is rough)."""
    wx, wy = set(WORD.findall(x["strategy"].lower())), set(WORD.findall(y["strategy"].lower()))
    words = len(wx & wy) / max(1, len(wx | wy))
    files = not x["files"] or not y["files"] or bool(set(x["files"]) & set(y["files"]))
    return files and words >= 1 / 3


def arm_summary(name: str, store: RunStore, started: float, prices: dict[str, dict[str, float]]) -> dict[str, Any]:
    d = show(store)
    m = store.manifest()
    events = store.events()
    iters = [e for e in events if isinstance(e, IterationEvent)]
    model_s, plan_s = _model_seconds(store)
    timing = Counter()
    for e in iters:
        timing.update({k: v for k, v in e.timing.items()})
    tokens = {k: int(d["tokens"].get(k, 0)) for k in ("prompt", "completion", "cached")}
    last = max((e.time for e in iters), default=started)
    gain, curve = 1.0, [(0.0, 1.0)]
    for e in iters:  # wins over time: the verified steps multiplied, on the comparison's clock
        if e.verdict == "accepted" and e.speedup:
            gain *= e.speedup
            curve.append((max(0.0, (e.time - started) / 3600), gain))
    attempts = [{"index": e.index, "strategy": e.strategy.get("title", ""), "verdict": e.verdict, "reason": e.reason,
                 "speedup": e.speedup, "ci": list(e.ci) if e.ci else None, "files": sorted(_files(store, e.index))}
                for e in iters]
    return {
        "name": name, "model": m.model, "endpoint": m.endpoint, "run_id": m.run_id, "status": m.status,
        "record": str(store.path),
        "best": {"value": d["best"]["value"], "speedup": d["best"]["speedup"], "ci": d["best"]["ci"],
                 "confirmed": d["best"]["confirmed"], "branch": d["best"]["branch"], "commit": d["best"]["commit"]},
        "accepted": sum(e.verdict == "accepted" for e in iters),
        "attempts": len(iters),
        "reasons": dict(Counter(e.reason for e in iters)),
        "tool_calls": int(d["tool_calls"] or 0),
        "tokens": tokens,
        "tokens_counted": d.get("tokens_counted", ""),
        "cost": cost(tokens, prices.get(m.model)),
        # the arm's own time: its attempts and its planning; time spent waiting for its turn is not in it
        "wall_s": timing["wall_s"] + plan_s,
        "model_s": timing["model_s"] + plan_s,
        "commands_s": timing["commands_s"],
        "harness_s": timing["harness_s"],
        "wait_s": timing["wait_s"],
        "model_s_recorded": model_s,
        "curve": curve,
        "hours": max(0.0, (last - started) / 3600),  # when its last attempt was decided
        "attempt_list": attempts,
    }


def summary(path: Path, prices_file: Path | None = None) -> dict[str, Any]:
    rec = load(path)
    prices, currency, price_path = load_prices(prices_file)
    started = datetime.fromisoformat(rec.started).timestamp()
    stores = [RunStore(Path(a.run_dir)) for a in rec.arms]
    arms = [arm_summary(a.name, st, started, prices) for a, st in zip(rec.arms, stores, strict=True)]
    base = next((e for e in stores[0].events() if isinstance(e, BaselineEvent)), None)
    for arm in arms:  # strategies the other arms did not find (verified wins without a counterpart)
        others = [x for o in arms if o is not arm for x in o["attempt_list"]]
        arm["only_here"] = [
            {**w, "others_tried": [f"{o['name']} #{x['index']} {x['verdict']} ({x['reason']})"
                                   for o in arms if o is not arm for x in o["attempt_list"] if _alike(w, x)]}
            for w in arm["attempt_list"] if w["verdict"] == "accepted"
            and not any(x["verdict"] == "accepted" and _alike(w, x) for x in others)]
    spec_metric = rec.spec["bench"].get("metric") or {"unit": "s", "better": "lower"}
    out = {
        "comparison_id": rec.comparison_id,
        "kind": rec.kind,
        "status": rec.status,
        "target": rec.target,
        "metric": {"unit": spec_metric.get("unit", "s"), "better": spec_metric.get("better", "lower")},
        "baseline": {"value": base.value if base else None, "commit": rec.base_commit,
                     "noise_floor": base.noise_floor if base else None, "min_effect": base.min_effect if base else None,
                     "run_id": rec.baseline_run},
        "arms": arms,
        "head_to_head": [{"a": h.a, "b": h.b, "speedup": h.speedup, "ci": list(h.ci), "verdict": h.verdict,
                          "pairs": h.pairs, "statistic": h.statistic, "basis": h.basis} for h in rec.head_to_head],
        "fairness": fairness(rec),
        "prices": {"file": price_path, "currency": currency},
        "notes": rec.notes,
        "record": str(path),
    }
    out["statement"] = statement(out, rec)
    return out


def fairness(rec: ComparisonRecord) -> list[str]:
    if rec.kind == "after-the-fact":
        return ["runs made separately, compared after the fact: same target, spec, base code and machine "
                "(checked); baselines, noise floors and budgets were each run's own"]
    o = rec.options
    return [f"one baseline and noise calibration for all arms (measured once, in run {rec.baseline_run})",
            f"the same budgets for every arm: {o.get('iterations')} attempts, {o.get('hours')} h, "
            f"{o.get('max_tool_calls')} tool calls per attempt, tokens {o.get('max_tokens') or 'unlimited'}, "
            f"{o.get('strategies')} strategies per plan",
            "the same seed stream for every arm's k-th attempt (held-out inputs, test seeds)",
            f"attempts taken in turns ({', '.join(rec.order)}, ...), one at a time on this machine",
            "the same profile of the baseline shown to every model; each arm re-profiles its own wins"]


def statement(s: dict[str, Any], rec: ComparisonRecord) -> str:
    """What the comparison does and does not show, in plain words."""
    arms = s["arms"]
    wins = ", ".join(f"{a['name']} {a['accepted']} of {a['attempts']}" for a in arms)
    floor = s["baseline"]["noise_floor"]
    ahead = [h for h in s["head_to_head"] if h["a"] != "baseline"]
    lines = []
    for h in ahead:
        lo, hi = h["ci"]
        if h["verdict"] == "better":
            lines.append(f"{h['b']}'s best is {h['speedup']:.2f}x {h['a']}'s [{lo:.2f}, {hi:.2f}], measured side by side.")
        elif h["verdict"] == "worse":
            lines.append(f"{h['a']}'s best is {1 / h['speedup']:.2f}x {h['b']}'s [{1 / hi:.2f}, {1 / lo:.2f}], "
                         "measured side by side.")
        else:
            lines.append(f"{h['a']} and {h['b']} cannot be told apart ({h['verdict']}: {h['speedup']:.2f}x "
                         f"[{lo:.2f}, {hi:.2f}]).")
    total = sum(a["accepted"] for a in arms)
    shows = " ".join(lines) or "no head-to-head was measured (the comparison did not finish)."
    return (f"What this shows: on {s['target']}, on this machine, in this one comparison, {shows} Verified wins: {wins}. "
            f"What it does not show: one target and one night{' per arm' if rec.kind == 'live' else ''}; a model's "
            "sampling differs from run to run, so another night can rank the arms differently; wins smaller than "
            f"{(s['baseline']['min_effect'] or 0):.0%} (the threshold) are not counted, and the noise floor here was "
            f"±{(floor or 0):.1%}; {total} verified win{'' if total == 1 else 's'} in all is a small number; nothing here says "
            "how the models do on other code. Replayed (scripted) arms show the harness, not a model.")


# --- console ----------------------------------------------------------------------------------------------


def _x(v: float | None) -> str:
    return f"{v:.3f}x" if v else ""


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _money(v: float | None, currency: str) -> str:
    return "" if v is None else f"{v:.4f} {currency}".strip()


def print_console(s: dict[str, Any], out) -> None:  # type: ignore[no-untyped-def]
    """A few lines per arm (a wide table does not fit a terminal), then the head-to-head and the statement."""
    unit, base = s["metric"]["unit"], s["baseline"]
    head = f"comparison {s['comparison_id']} · {s['target']} · {s['status']}"
    if base["value"] is not None:
        head += (f" · baseline {base['value']:.4g} {unit} (one for all arms), noise floor ±{(base['noise_floor'] or 0):.1%}"
                 if s["kind"] == "live" else f" · baseline {base['value']:.4g} {unit} (run {base['run_id']})")
    out.print(head, markup=False)
    for a in s["arms"]:
        b, tok = a["best"], a["tokens"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(a["reasons"].items()))
        money = _money(a["cost"], s["prices"]["currency"]) or "unknown (no price)"
        out.print(f"{a['name']} ({a['model']}): {a['accepted']} verified wins in {a['attempts']} attempts ({reasons}); "
                  f"best {_x(b['speedup'])} {_ci(b['ci'])}{' confirmed' if b['confirmed'] else ''}", markup=False)
        out.print(f"    {a['tool_calls']} tool calls · tokens {tok['prompt']:,} prompt ({tok['cached']:,} cached), "
                  f"{tok['completion']:,} completion · cost {money} · model {a['model_s']:.0f} s, harness "
                  f"{a['harness_s']:.0f} s, commands {a['commands_s']:.0f} s, wall {a['wall_s']:.0f} s", markup=False)
    for h in s["head_to_head"]:
        pairs = f" after {h['pairs']} pairs" if h["pairs"] else ""
        out.print(f"head-to-head: {h['b']} vs {h['a']}: {_x(h['speedup'])} {_ci(h['ci'])} {h['verdict']}{pairs} "
                  f"({h['basis']})", markup=False)
    for a in s["arms"]:
        for w in a["only_here"]:
            tried = f"; tried by {', '.join(w['others_tried'])}" if w["others_tried"] else ""
            out.print(f"only {a['name']} found: #{w['index']} {w['strategy']} {_x(w['speedup'])}{tried}", markup=False)
    for n in s["notes"]:
        out.print(f"note: {n}", markup=False)
    out.print(s["statement"], markup=False)
    out.print(f"record {s['record']} · page {Path(s['record']) / 'comparison.html'}", markup=False)


# --- HTML -------------------------------------------------------------------------------------------------


def chart(arms: list[dict[str, Any]], width: int = 720, height: int = 260) -> dict[str, Any]:
    """Wins over time, one step line per arm: the verified speedup so far against hours."""
    left, right, top, bottom = 48, 16, 12, 30
    hours = max([a["hours"] for a in arms] + [p[0] for a in arms for p in a["curve"]] + [1 / 60]) * 1.05
    ymax = max([p[1] for a in arms for p in a["curve"]] + [1.1]) * 1.05
    ymin = min([p[1] for a in arms for p in a["curve"]] + [1.0])
    log = ymax > 4  # several big wins: a log scale keeps the early steps readable

    def y(v: float) -> float:
        f = (math.log(v) - math.log(ymin)) / (math.log(ymax) - math.log(ymin)) if log else (v - ymin) / (ymax - ymin)
        return top + (1 - f) * (height - top - bottom)

    def x(h: float) -> float:
        return left + h / hours * (width - left - right)

    lines = []
    for i, a in enumerate(arms):
        pts, last = [], 1.0
        for h, g in a["curve"]:
            pts += [(x(h), y(last)), (x(h), y(g))]
            last = g
        pts.append((x(hours), y(last)))
        lines.append({"name": a["name"], "colour": COLOURS[i % len(COLOURS)],
                      "path": "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in pts),
                      "points": [(x(h), y(g), f"{a['name']}: {g:.2f}x at {h * 60:.1f} min") for h, g in a["curve"][1:]]})
    ticks = [1.0] + [v for v in (1.5, 2, 3, 5, 10, 20, 50) if v < ymax]
    return {"width": width, "height": height, "lines": lines, "left": left, "bottom": height - bottom,
            "right": width - right, "top": top, "yticks": [(y(v), f"{v:g}x") for v in ticks],
            "xticks": [(x(hours * f), f"{hours * f * 60:.0f} min" if hours < 2 else f"{hours * f:.1f} h",
                        "end" if f == 1.0 else "middle") for f in (0, 0.25, 0.5, 0.75, 1.0)]}


def render(path: Path, prices_file: Path | None = None) -> str:
    s = summary(path, prices_file)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    for a in s["arms"]:  # links relative to the page
        a["report_link"] = os.path.relpath(Path(a["record"]) / "report.html", path)
    return env.get_template("compare.html.j2").render(s=s, chart=chart(s["arms"]), colours=COLOURS)


def write_html(path: Path, prices_file: Path | None = None) -> Path:
    out = path / "comparison.html"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render(path, prices_file), encoding="utf-8")
    os.replace(tmp, out)
    return out
