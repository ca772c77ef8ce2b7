"""`optimize profile` on each bundled target: a flame graph, collapsed stacks, an allocation (or, native,
memory) profile, and the function that is really hot among the top five frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_loop import optimize

CASES = [
    # target, a frame that must be in the top five
    ("loganalyzer", ("report.analyze", "parse.parse_line", "_strptime")),
    ("matching-engine", ("OrderBook", "MatchingEngine", "RiskEngine", "BusySpin", "ExchangeCore")),
    ("zig-infer", ("matvec", "dot")),
]


@pytest.mark.slow
@pytest.mark.parametrize("target,hot", CASES, ids=[c[0] for c in CASES])
def test_profile_finds_the_hot_function(tmp_path: Path, target: str, hot: tuple[str, ...]) -> None:
    r = optimize("profile", "--repo", target, "--out", str(tmp_path / "p"), "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) >= {"flamegraph", "collapsed", "allocations", "top"}
    for key in ("flamegraph", "collapsed", "allocations"):
        assert data[key] and Path(data[key]).stat().st_size > 0
    top5 = [f["frame"] for f in data["top"][:5]]
    assert any(h in frame for frame in top5 for h in hot), top5
    assert all(0 <= f["self_pct"] <= f["total_pct"] <= 100.0001 for f in data["top"])
    if target == "zig-infer":  # the engine's own memory (weights, KV cache), not only the Python driver's
        assert any(line.startswith("infer;") for line in Path(data["allocations"]).read_text().splitlines())
