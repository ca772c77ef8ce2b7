"""A short CPU-bound process for timing experiments: `python workload.py N` does N units of integer work.

About 0.15 s at N=1_000_000 on the 2-core build box (plus ~15 ms interpreter start-up).
"""

import sys


def work(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


if __name__ == "__main__":
    print(f"result {work(int(sys.argv[1]))}")
