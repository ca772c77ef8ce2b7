"""Benchmark: summarise 60k generated log lines; prints throughput and a checksum of the result."""

import time

from loganalyzer import analyze
from loganalyzer.generate import lines

data = lines(60_000, seed=7)
start = time.perf_counter()
summary = analyze(data)
elapsed = time.perf_counter() - start
print(f"lines: {summary.lines} malformed: {summary.malformed}")
print(f"checksum: {summary.checksum()}")
print(f"throughput: {len(data) / elapsed / 1000:.2f} klines/s")
