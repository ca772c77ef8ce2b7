"""Aggregate parsed records into the summary the dashboard shows."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

from loganalyzer.parse import parse_line


@dataclass
class Summary:
    lines: int = 0
    malformed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)
    bytes_by_hour: dict[str, int] = field(default_factory=dict)
    top_endpoints: list[tuple[str, int]] = field(default_factory=list)
    latency_p50: dict[str, float] = field(default_factory=dict)
    latency_p95: dict[str, float] = field(default_factory=dict)
    error_rate: float = 0.0
    unique_visitors: int = 0
    visitors_per_user_agent: dict[str, int] = field(default_factory=dict)

    def checksum(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def analyze(lines: list[str], top: int = 10) -> Summary:
    s = Summary()
    endpoint_hits: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    visitors: list[str] = []
    agents: dict[str, list[str]] = {}
    errors = 0
    for line in lines:
        s.lines += 1
        rec = parse_line(line)
        if rec is None:
            s.malformed += 1
            continue
        s.by_status[rec.status] = s.by_status.get(rec.status, 0) + 1
        s.by_method[rec.method] = s.by_method.get(rec.method, 0) + 1
        hour = rec.time.strftime("%Y-%m-%d %H:00")
        s.bytes_by_hour[hour] = s.bytes_by_hour.get(hour, 0) + rec.size
        endpoint_hits[rec.endpoint] = endpoint_hits.get(rec.endpoint, 0) + 1
        latencies.setdefault(rec.endpoint, []).append(rec.latency)
        if rec.status >= 500:
            errors += 1
        if rec.ip not in visitors:
            visitors.append(rec.ip)
        family = rec.agent.split("/")[0]
        seen = agents.setdefault(family, [])
        if rec.ip not in seen:
            seen.append(rec.ip)
    ranked = sorted(endpoint_hits.items(), key=lambda kv: (-kv[1], kv[0]))
    s.top_endpoints = ranked[:top]
    for endpoint, _ in s.top_endpoints:
        s.latency_p50[endpoint] = percentile(latencies[endpoint], 50)
        s.latency_p95[endpoint] = percentile(latencies[endpoint], 95)
    parsed = s.lines - s.malformed
    s.error_rate = round(errors / parsed, 6) if parsed else 0.0
    s.unique_visitors = len(visitors)
    s.visitors_per_user_agent = {k: len(v) for k, v in sorted(agents.items())}
    return s
