"""`optimize ab`: the verifier's measurement engine on any two commands."""

from __future__ import annotations

from pathlib import Path

from agent.config import Bench, Metric, TargetSpec, parse_spec
from agent.verify import Arm, measure


def compare(a: str, b: str, *, metric: str | None, better: str | None, min_effect: float, max_pairs: int,
            cwd: Path = Path(".")) -> dict:
    looks = [n for n in (5, 10, 20, 40, 80) if n < max_pairs] + [max_pairs]
    m = Metric(regex=metric, better=better or "higher", unit="") if metric else None
    if m is None and better == "higher":
        raise ValueError("wall time is lower-is-better; give --metric to compare a higher-is-better number")
    spec: TargetSpec = parse_spec({"test": {"cmd": "true"}, "bench": Bench(cmd=a, metric=m).model_dump(exclude_none=True),
                                   "decide": {"looks": looks}}, "optimize ab")
    result = measure(spec, Arm("a", cwd, cmd=a), Arm("b", cwd, cmd=b), looks=looks, min_effect=min_effect)
    d = result.decision
    return {"verdict": d.verdict, "speedup": d.speedup, "ci": list(d.ci), "pairs": d.pairs}
