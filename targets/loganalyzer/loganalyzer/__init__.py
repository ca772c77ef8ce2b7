"""Parse web-server access logs and summarise them: traffic, errors, latency, visitors."""

from loganalyzer.parse import Record, parse_line
from loganalyzer.report import Summary, analyze

__all__ = ["Record", "Summary", "analyze", "parse_line"]
