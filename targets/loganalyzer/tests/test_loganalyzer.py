"""Correctness of parsing and aggregation, including a randomised check against a plain reference."""

from collections import Counter
from datetime import datetime

from loganalyzer import analyze, parse_line
from loganalyzer.generate import lines
from loganalyzer.report import percentile

LINE = '203.0.113.7 - alice [12/Mar/2026:14:02:11 +0000] "GET /api/orders?id=3 HTTP/1.1" 200 512 "-" "curl/8.0" 0.043'


def test_parse_fields() -> None:
    r = parse_line(LINE)
    assert r is not None
    assert (r.ip, r.user, r.method, r.path, r.status, r.size, r.agent) == (
        "203.0.113.7", "alice", "GET", "/api/orders?id=3", 200, 512, "curl/8.0")
    assert r.time == datetime(2026, 3, 12, 14, 2, 11)
    assert r.latency == 0.043 and r.endpoint == "/api/orders"


def test_parse_dash_size_and_quoted_agent_with_spaces() -> None:
    line = '10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "POST /login HTTP/2.0" 302 - "https://x/y" "Mozilla/5.0 (X11; Linux)" 1.5'
    r = parse_line(line)
    assert r is not None and r.size == 0 and r.agent == "Mozilla/5.0 (X11; Linux)" and r.referrer == "https://x/y"


def test_malformed_lines_are_counted_not_parsed() -> None:
    assert parse_line("garbage") is None
    assert parse_line(LINE.replace("[12/Mar", "12/Mar")) is None
    s = analyze([LINE, "garbage", ""])
    assert (s.lines, s.malformed) == (3, 2)


def test_every_month_parses() -> None:
    for n, month in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1):
        r = parse_line(LINE.replace("Mar", month))
        assert r is not None and r.time.month == n


def test_percentile_nearest_rank() -> None:
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def _reference(data: list[str]) -> dict:
    """A deliberately plain re-computation of the summary's core numbers."""
    recs = [r for r in map(parse_line, data) if r is not None]
    ips_by_family: dict[str, set] = {}
    for r in recs:
        ips_by_family.setdefault(r.agent.split("/")[0], set()).add(r.ip)
    hours = Counter()
    for r in recs:
        hours[r.time.strftime("%Y-%m-%d %H:00")] += r.size
    return {
        "status": Counter(r.status for r in recs), "unique": len({r.ip for r in recs}),
        "families": {k: len(v) for k, v in ips_by_family.items()}, "hours": hours,
        "errors": sum(r.status >= 500 for r in recs),
    }


def test_summary_matches_reference_on_random_logs(seed: int) -> None:
    data = lines(3000, seed=seed, visitors=200, malformed=0.01)
    s, ref = analyze(data), _reference(data)
    assert s.by_status == dict(ref["status"])
    assert s.unique_visitors == ref["unique"]
    assert s.visitors_per_user_agent == ref["families"]
    assert s.bytes_by_hour == dict(ref["hours"])
    assert s.error_rate == round(ref["errors"] / (s.lines - s.malformed), 6)
    assert [e for e, _ in s.top_endpoints] == sorted({e for e, _ in s.top_endpoints}, key=lambda e: (-dict(s.top_endpoints)[e], e))


def test_known_checksum_of_fixed_input() -> None:
    # Pins the whole summary (ordering, rounding, percentiles) for a fixed input.
    assert analyze(lines(2000, seed=3)).checksum() == CHECKSUM


CHECKSUM = "2158fc5d2aa3798e"
