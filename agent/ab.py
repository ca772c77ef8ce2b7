"""`optimize ab`: the verifier's measurement engine and decision rule on any two commands."""

from __future__ import annotations

from pathlib import Path

from agent.config import Bench, Metric, TargetSpec, parse_spec
from agent.verify import Arm, measure


def schedule(max_pairs: int) -> tuple[list[int], list[int]]:
    """(screen looks, confirmation looks): every comparison is looked at up to 40 pairs (or fewer when
    `max_pairs` is smaller); only a promising one goes on to 80 and up to `max_pairs`."""
    screen = [n for n in (5, 10, 20, 40) if n < max_pairs] or [max_pairs]
    extra = [n for n in (80,) if screen[-1] < n < max_pairs] + ([max_pairs] if max_pairs > screen[-1] else [])
    return screen, extra


def compare(a: str, b: str, *, metric: str | None, better: str | None, min_effect: float, max_pairs: int,
            cwd: Path = Path(".")) -> dict:
    if max_pairs < 2:
        raise ValueError("--max-pairs must be at least 2")
    looks, extra = schedule(max_pairs)
    m = Metric(regex=metric, better=better or "higher", unit="") if metric else None
    if m is None and better == "higher":
        raise ValueError("wall time is lower-is-better; give --metric to compare a higher-is-better number")
    spec: TargetSpec = parse_spec({"test": {"cmd": "true"}, "bench": Bench(cmd=a, metric=m).model_dump(exclude_none=True),
                                   "decide": {"looks": looks, "extra_looks": extra, "min_effect": min_effect}},
                                  "optimize ab")
    result = measure(spec, Arm("a", cwd, cmd=a), Arm("b", cwd, cmd=b), looks=looks, extra=extra, min_effect=min_effect)
    d = result.decision
    return {"verdict": d.verdict, "speedup": d.speedup, "ci": list(d.ci), "pairs": d.pairs,
            "statistic": d.statistic, "remeasured": [{"pair": r.attempt, "reason": r.reason} for r in result.redone]}
