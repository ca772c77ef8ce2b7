"""Does the harness stay out of the way over a night? Overhead per iteration and the agent's memory.

    python benchmarks/long_run.py                     # both cases (about 10 minutes)
    python benchmarks/long_run.py --case fast --seconds 180
    python benchmarks/long_run.py --case minute --iterations 5

Drives the compressed run of tests/test_long_run.py (the real `optimize` process, the fake HTTP model
server playing a busy model, compaction at 6,000 tokens) on two targets:

  fast    verification takes well under a second; ended by a deadline after hundreds of attempts.
          Shows memory over many iterations, and the harness's cost where nothing hides it.
  minute  the same tiny target with a 5 s test suite and a 4 s benchmark, A/B looks [5, 10], every
          attempt a real candidate: verification takes about a minute, as on a real target.

Per iteration, events.jsonl's timing splits wall time into target commands, waiting on the model and
the rest: the harness (git worktrees and commits, records, the conversation, the verifier's logic).
The driver samples the optimize process's VmRSS from /proc every 0.5 s and notes how many
iterations were recorded at that moment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.openai_server import FakeServer  # noqa: E402
from tests.longrun import scenario as sc  # noqa: E402

LIMIT, WINDOW = 6_000, 12_000  # tokens: compaction threshold and the server's context window


def run_case(name: str, *, hours: float, iterations: int, kinds: tuple[str, ...], target: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"longrun-{name}-"))
    repo = sc.make_target(tmp / "repo", **target)
    model = sc.ScriptedModel(kinds=kinds)
    srv = FakeServer(model, hooks=sc.hooks(WINDOW)).start()
    started = time.monotonic()
    try:
        proc = sc.start_run(repo, tmp / "runs", srv.base_url, hours=hours, iterations=iterations, context_limit=LIMIT)
        rss = sc.RssSampler(proc.pid, tmp / "runs").start()
        _, err = proc.communicate()
        rss.stop()
    finally:
        srv.close()
    if proc.returncode != 0:
        raise SystemExit(f"{name}: optimize exited {proc.returncode}\n{err[-3000:]}")
    run = sc.run_dir(tmp / "runs")
    manifest = json.loads((run / "run.json").read_text())
    done = [e for e in sc.events(run) if e["type"] == "iteration"]
    return {"name": name, "wall": time.monotonic() - started, "manifest": manifest, "iterations": done, "rss": rss,
            "server_failures": srv.failures, "compactions": model.compactions, "record": run}


def _q(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def report(r: dict) -> None:
    m, its, rss = r["manifest"], r["iterations"], r["rss"]
    s = m["summary"]
    t = [e["timing"] for e in its]
    share = [x["harness_s"] / x["wall_s"] for x in t]
    total = {k: sum(x[k] for x in t) for k in ("wall_s", "commands_s", "model_s", "harness_s")}
    tokens = s["tokens"]
    print(f"\n== {r['name']}: {len(its)} iterations, {s['tool_calls']} tool calls, {r['compactions']} compactions, "
          f"stop: {m['stop_reason']}, run {s['elapsed_s']:.0f} s (driver {r['wall']:.0f} s)")
    print(f"server: {len(r['server_failures'])} window/prefix violations")
    print(f"iteration wall   median {statistics.median(x['wall_s'] for x in t):7.2f} s   max {max(x['wall_s'] for x in t):7.2f} s")
    for k in ("commands_s", "model_s", "harness_s"):
        v = [x[k] for x in t]
        print(f"{k:<16} median {statistics.median(v):7.3f} s   max {max(v):7.3f} s   total {total[k]:8.1f} s "
              f"({total[k] / total['wall_s']:.1%} of iteration time)")
    print(f"harness share    median {statistics.median(share):.2%}   p90 {_q(share, 0.9):.2%}   max {max(share):.2%}")
    print(f"tokens           prompt {tokens['prompt']:,}  completion {tokens['completion']:,}  cached {tokens['cached']:,}"
          f"  cache-hit share {tokens['cached'] / max(1, tokens['prompt']):.1%}")
    marks = [n for n in (1, 10, 20, 40, 100, 200, 400) if n < len(its)] + [len(its)]
    print("agent RSS        " + "   ".join(f"#{n}: {v / 1024:.1f} MB" for n in marks if (v := rss.at(n))))
    if rss.samples:
        at, peak = max(rss.samples, key=lambda x: x[1])
        first = 10 if len(its) > 20 else 1  # after start-up has settled, when there are enough iterations
        during = [v for n, v in rss.samples if first <= n < len(its)]
        last = [v for n, v in rss.samples if n == len(its)]  # the confirmation, the report and the summary
        print(f"                 max {peak / 1024:.1f} MB (with {at} iterations done) over {len(rss.samples)} samples")
        if during:
            print(f"                 while iterations {first}–{len(its) - 1} were recorded: "
                  f"{min(during) / 1024:.1f}–{max(during) / 1024:.1f} MB")
        if last:
            print(f"                 after the last (confirmation, report): {min(last) / 1024:.1f}–{max(last) / 1024:.1f} MB")
    print(f"record: {r['record']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["fast", "minute", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=180, help="deadline of the fast case")
    ap.add_argument("--iterations", type=int, default=5, help="attempts in the minute case")
    ap.add_argument("--keep", action="store_true", help="keep the run records (the fast case's llm.jsonl is ~150 MB)")
    args = ap.parse_args()
    cases = []
    if args.case in ("fast", "both"):
        cases.append(lambda: run_case("fast", hours=args.seconds / 3600, iterations=10_000, kinds=sc.KINDS, target={}))
    if args.case in ("minute", "both"):
        cases.append(lambda: run_case("minute", hours=12, iterations=args.iterations, kinds=("faster",),
                                      target={"test_sleep": 5.0, "bench_sleep": 4.0, "looks": "[5, 10]"}))
    for case in cases:
        result = case()
        report(result)
        if not args.keep:
            shutil.rmtree(result["record"].parent.parent, ignore_errors=True)
            print("(record removed; --keep keeps it)")


if __name__ == "__main__":
    main()
