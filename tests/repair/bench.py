"""Benchmark for the repair test's project (cachetools 2.0.1): a fixed stream of LRU cache look-ups."""

import random
import time

from cachetools import LRUCache

rng = random.Random(7)
keys = [min(int(rng.expovariate(1 / 600)), 5000) for _ in range(40_000)]
cache = LRUCache(maxsize=1000)
start = time.perf_counter()
hits = 0
for i, key in enumerate(keys):
    if cache.get(key) is None:
        cache[key] = i
    else:
        hits += 1
elapsed = time.perf_counter() - start
print(f"checksum: {hits}")
print(f"throughput: {len(keys) / 1000 / max(elapsed, 1e-6):.2f} kops/s")
