"""Every decision rule of benchmarks/ab_evidence.py applied to the recorded samples (see its docstring).

The new rule runs through tools.stats.interleaved itself, fed from the recording instead of fresh
processes, so what is measured here is the code the verifier runs. Contention re-measurement is
replayed the same way: a pair the predicate rejects is skipped and the next recorded pair taken, as
the live verifier would measure a new one.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scipy import stats as sps  # the reference tests' own distributions (U-test, Welch, pooled t)

from tools import stats

MIN_EFFECT, ALPHA = 0.02, 0.01
LOOKS, EXTRA = [5, 10, 20, 40], [80, 120]
VARIANTS = {"A2": "A/A", "B5": "+5%", "B7": "+7%", "B10": "+10%"}


@dataclass(frozen=True)
class S:
    """One recorded process, shaped like tools.bench.Sample for the judge."""

    wall_s: float
    cpu_s: float
    vcsw: int
    ivcsw: int
    stall_s: float
    load1: float


def pairs_of(rows: list[dict], arm: str) -> list[tuple[S, S]]:
    def s(d: dict, load1: float) -> S:
        return S(d["wall"], d["cpu"], d["vcsw"], d["ivcsw"], d["stall"], load1)

    return [(s(r["A"], r["load1"]), s(r[arm], r["load1"])) for r in rows]


# --- rules: each takes the pair stream from a position, returns (better?, pairs used) or None at the end ---


def new_rule(use_cpu: bool, contended: Callable[[S, S], str | None] | None = None, max_redo: int = 0):
    def rule(stream: list[tuple[S, S]], pos: int) -> tuple[bool, int, str] | None:
        budget = EXTRA[-1] + max_redo
        if pos + budget > len(stream):
            return None
        redone: list[int] = []
        d, used = stats.interleaved(
            lambda i: stream[pos + i][0], lambda i: stream[pos + i][1], better="lower", min_effect=MIN_EFFECT,
            alpha=ALPHA, looks=LOOKS, extra=EXTRA,
            judge=stats.process_judge(min_effect=MIN_EFFECT, alpha=ALPHA, looks=LOOKS, extra=EXTRA, use_cpu=use_cpu),
            contended=contended, max_redo=max_redo, on_redo=lambda r: redone.append(r.attempt))
        return d.verdict == "better", len(used) + len(redone), d.statistic

    return rule


def old_rule(stream: list[tuple[S, S]], pos: int, aa: list[tuple[S, S]]) -> tuple[bool, int, str] | None:
    """Before issue 17: threshold max(2%, A/A half-width from 10 pairs scaled to 40), wall time, looks to 40."""
    if pos + 50 > len(stream) or pos + 10 > len(aa):
        return None
    calib = [a.wall_s / b.wall_s for a, b in aa[pos : pos + 10]]
    floor = stats.noise_floor(calib) * math.sqrt(10 / 40)
    threshold = max(MIN_EFFECT, floor)
    d, used = stats.interleaved(lambda i: stream[10 + pos + i][0].wall_s, lambda i: stream[10 + pos + i][1].wall_s,
                                better="lower", min_effect=threshold, alpha=ALPHA, looks=LOOKS)
    return d.verdict == "better", 10 + len(used), "wall"


def fixed(n: int, test: Callable[[list[float], list[float]], bool]):
    def rule(stream: list[tuple[S, S]], pos: int) -> tuple[bool, int, str] | None:
        if pos + n > len(stream):
            return None
        a = [p[0].wall_s for p in stream[pos : pos + n]]
        b = [p[1].wall_s for p in stream[pos : pos + n]]
        return test(a, b), n, "wall"

    return rule


def welch(a: list[float], b: list[float]) -> bool:  # hyperfine's scripts/welch_ttest.py
    return bool(sps.ttest_ind(a, b, equal_var=False).pvalue < 0.05 and statistics.mean(b) < statistics.mean(a))


def pooled(a: list[float], b: list[float]) -> bool:  # pyperf compare_to
    return bool(sps.ttest_ind(a, b, equal_var=True).pvalue < 0.05 and statistics.mean(b) < statistics.mean(a))


def utest(a: list[float], b: list[float]) -> bool:  # Google Benchmark compare.py
    return bool(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue < 0.05 and statistics.median(b) < statistics.median(a))


def utest_one_sided(a: list[float], b: list[float]) -> bool:  # SWE-Perf: B faster, alpha 0.1
    return bool(sps.mannwhitneyu(b, a, alternative="less").pvalue < 0.1)


def min_rule(a: list[float], b: list[float]) -> bool:
    return min(a) / min(b) >= 1.05


# --- contention predicates evaluated -----------------------------------------------------------


def stall_gap(limit: float) -> Callable[[S, S], str | None]:
    """The two runs of a pair saw very different host CPU pressure: one of them was hindered more."""

    def pred(a: S, b: S) -> str | None:
        sa, sb = a.stall_s / max(a.wall_s, 1e-9), b.stall_s / max(b.wall_s, 1e-9)
        return f"host CPU pressure {sa:.0%} vs {sb:.0%}" if abs(sa - sb) > limit else None

    return pred


def preempt_gap(limit: float) -> Callable[[S, S], str | None]:
    """One run of the pair was preempted far more often than the other (per CPU second)."""

    def pred(a: S, b: S) -> str | None:
        ra, rb = a.ivcsw / max(a.cpu_s, 1e-6), b.ivcsw / max(b.cpu_s, 1e-6)
        lo, hi = sorted((ra, rb))
        return f"preempted {ra:.0f}/s vs {rb:.0f}/s" if hi > limit * max(lo, 50) else None

    return pred


RULES: dict[str, Callable] = {
    "new rule, CPU time (wall guard)": new_rule(True),
    "new rule, wall time": new_rule(False),
    "new rule, CPU + re-measure on pressure gap >30%": new_rule(True, stall_gap(0.3), 40),
    "new rule, wall + re-measure on pressure gap >30%": new_rule(False, stall_gap(0.3), 40),
    "new rule, wall + re-measure on preemption gap 3x": new_rule(False, preempt_gap(3), 40),
    "new rule, CPU + re-measure on preemption gap 3x": new_rule(True, preempt_gap(3), 40),
    "old rule (noise floor in threshold)": old_rule,
    "hyperfine means, Welch t (10 runs each)": fixed(10, welch),
    "pyperf compare_to, t-test (20 each)": fixed(20, pooled),
    "Google Benchmark U-test a=0.05 (9 reps)": fixed(9, utest),
    "one-sided U-test a=0.1 (20 runs)": fixed(20, utest_one_sided),
    "min of 10 runs, >=5% faster": fixed(10, min_rule),
}


def decisions(rule: Callable, stream: list[tuple[S, S]], aa: list[tuple[S, S]]) -> list[tuple[bool, int, str]]:
    out, pos = [], 0
    while True:
        got = rule(stream, pos, aa) if rule is old_rule else rule(stream, pos)
        if got is None:
            return out
        out.append(got)
        pos += got[1]


def truth(rows: list[dict], arm: str) -> float:
    """The realised true speedup: 10%-trimmed geometric mean over the whole recording of the per-round
    CPU-time ratio of A to the arm (every recorded round, not only those a rule used)."""
    return stats.geomean_interval([r["A"]["cpu"] / r[arm]["cpu"] for r in rows], 0.5)[0]


def table(folder: Path, as_json: bool = False) -> list[dict]:
    """Decisions of every rule per (benchmark, condition, variant), over all recordings of that cell;
    decisions never cross from one recording to the next."""
    cells: dict[tuple[str, str], list[list[dict]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        lines = path.read_text().splitlines()
        head, rows = json.loads(lines[0]), [json.loads(ln) for ln in lines[1:] if ln.strip()]
        cells.setdefault((head["bench"], head["condition"]), []).append(rows)
    results = []
    for (bench, condition), recordings in sorted(cells.items()):
        every = [r for rows in recordings for r in rows]
        for arm, name in VARIANTS.items():
            for rule_name, rule in RULES.items():
                got = [g for rows in recordings for g in decisions(rule, pairs_of(rows, arm), pairs_of(rows, "A2"))]
                if not got:
                    continue
                results.append({"bench": bench, "condition": condition, "variant": name, "true": truth(every, arm),
                                "rule": rule_name, "decisions": len(got), "better": sum(g[0] for g in got),
                                "mean_pairs": statistics.mean(g[1] for g in got),
                                "cpu_decided": sum(g[2] == "cpu" for g in got), "rounds": len(every),
                                "load1": statistics.mean(r["load1"] for r in every),
                                "psi": statistics.mean(r["psi10"] for r in every)})
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(f"{r['bench']:3} {r['condition']:6} {r['variant']:5} (true {r['true']:.3f}) {r['rule']:48} "
                  f"better {r['better']:3}/{r['decisions']:<3} = {r['better'] / r['decisions']:6.1%}  "
                  f"pairs {r['mean_pairs']:5.1f}  load {r['load1']:.1f} psi {r['psi']:.0%}")
    return results


def noise(folder: Path) -> None:
    """Per cell: sd of the per-pair log ratio of A/A in wall and in CPU time (how much CPU time helps)."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        lines = path.read_text().splitlines()
        head = json.loads(lines[0])
        cells.setdefault((head["bench"], head["condition"]), []).extend(json.loads(ln) for ln in lines[1:] if ln.strip())
    for (bench, condition), rows in sorted(cells.items()):
        sd = {k: statistics.stdev(math.log(r["A"][k] / r["A2"][k]) for r in rows) for k in ("wall", "cpu")}
        print(f"{bench:3} {condition:6} rounds {len(rows):4}  A/A sd of log ratio: wall {sd['wall']:.3f}  "
              f"cpu {sd['cpu']:.3f}  ({(sd['wall'] / sd['cpu']) ** 2:.1f}x less variance on CPU time)")


SHOWN = ["new rule, CPU time (wall guard)", "new rule, wall time",
         "old rule (noise floor in threshold)", "hyperfine means, Welch t (10 runs each)",
         "pyperf compare_to, t-test (20 each)", "Google Benchmark U-test a=0.05 (9 reps)",
         "one-sided U-test a=0.1 (20 runs)", "min of 10 runs, >=5% faster"]


def markdown(results: list[dict]) -> str:
    """README tables, one per benchmark: per condition and rule, "better" out of decisions and runs per arm."""
    out = []
    for bench, title in (("c", "native (C, gcc -O2)"), ("py", "CPython")):
        mine = [r for r in results if r["bench"] == bench]
        if not mine:
            continue
        truths = {v: statistics.mean(r["true"] for r in mine if r["variant"] == v) for v in VARIANTS.values()}
        out += [f"\n**{title}** (realised true speedups in CPU time: "
                + ", ".join(f"{v} {x:.3f}" for v, x in truths.items()) + ")\n",
                "| condition (load, CPU pressure) | rule | A/A: false better | +5% better | +7% better | +10% better "
                "| runs per arm |", "|---|---|---|---|---|---|---|"]
        for condition in ("quiet", "busy", "build"):
            cell = [r for r in mine if r["condition"] == condition]
            if not cell:
                continue
            where = f"{condition} ({cell[0]['load1']:.1f}, {cell[0]['psi']:.0%})"
            for rule in SHOWN:
                rows = [r for r in cell if r["rule"] == rule]
                cols = []
                for variant in VARIANTS.values():
                    got = [r for r in rows if r["variant"] == variant]
                    n, k = sum(r["decisions"] for r in got), sum(r["better"] for r in got)
                    cols.append(f"{k}/{n}" if n else "–")
                runs = sum(r["mean_pairs"] * r["decisions"] for r in rows) / max(1, sum(r["decisions"] for r in rows))
                out.append(f"| {where} | {rule} | " + " | ".join(cols) + f" | {runs:.0f} |")
                where = ""
    return "\n".join(out)
