"""Benchmark the engine from outside: time its streamed tokens, print the metric lines.

    python bench.py [--model weights/bench] [--steps N]

Starts zig-out/bin/infer, waits for "ready", sends the prompt and timestamps each "token:" line
as it arrives. prefill = prompt tokens / (first token - prompt sent); decode = later tokens /
(last token - first token). Prints `prefill: X tok/s`, `decode: Y tok/s` and `tokens: ...`.
The timer lives here, not in the engine, so the engine cannot misreport its own speed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from prompt import PROMPT

HERE = Path(__file__).parent
ENGINE = HERE / "zig-out" / "bin" / "infer"


def run(model: Path, steps: int, prompt: list[int]) -> tuple[list[int], float, float]:
    """Returns (tokens, prefill seconds, decode seconds)."""
    cmd = [str(ENGINE), "--model", str(model), "--steps", str(steps)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1) as p:
        assert p.stdin and p.stdout
        if p.stdout.readline().strip() != "ready":
            sys.exit(f"engine did not start: {cmd}")
        sent = time.perf_counter()
        p.stdin.write(" ".join(map(str, prompt)) + "\n")
        p.stdin.flush()
        tokens, stamps = [], []
        for line in p.stdout:
            if line.startswith("token: "):
                stamps.append(time.perf_counter())
                tokens.append(int(line.split()[1]))
        if p.wait() != 0 or len(tokens) != steps:
            sys.exit(f"engine failed (exit {p.returncode}, {len(tokens)}/{steps} tokens)")
    return tokens, stamps[0] - sent, stamps[-1] - stamps[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=HERE / "weights" / "bench")
    ap.add_argument("--steps", type=int, default=3500)
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2")
    tokens, prefill_s, decode_s = run(args.model, args.steps, PROMPT)
    print(f"prefill: {len(PROMPT) / prefill_s:.2f} tok/s")
    print(f"decode: {(len(tokens) - 1) / decode_s:.2f} tok/s")
    print("tokens: " + " ".join(map(str, tokens)))


if __name__ == "__main__":
    main()
