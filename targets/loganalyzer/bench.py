"""Benchmark: summarise 20k generated log lines; prints throughput and a checksum of the result.

`--seed N` generates another log of the same size: the hold-out input the verifier checks candidates
on (optimize.toml's [bench] holdout), which the model never sees."""

import argparse
import time

from loganalyzer import analyze
from loganalyzer.generate import lines

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=7)
data = lines(20_000, seed=parser.parse_args().seed)
start = time.perf_counter()
summary = analyze(data)
elapsed = time.perf_counter() - start
print(f"lines: {summary.lines} malformed: {summary.malformed}")
print(f"checksum: {summary.checksum()}")
print(f"throughput: {len(data) / elapsed / 1000:.2f} klines/s")
