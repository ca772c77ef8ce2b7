"""Do lanes pay, and do measurements stay quiet while they run?

    python benchmarks/lanes.py                       # both parts (about 15 minutes)
    python benchmarks/lanes.py --part throughput --latency 5 --minutes 4
    python benchmarks/lanes.py --part quiet --decisions 30

throughput  The compressed run of tests/longrun (the real `optimize` process, the fake HTTP model
            server playing a busy model, ~13 replies per attempt) with every reply delayed by
            `--latency` seconds, as a big model on a shared endpoint answers; once with 1 lane, once
            with 4, each for `--minutes`. Counts attempts that reached a verdict, per hour.
quiet       A/A decisions (the same build measured against itself with the verifier's schedule) on a
            CPU-bound benchmark: alone; while three other lanes build through the host lease; and, as the
            control the lease exists for, while the same builds run without it. Reports false "better"
            and the mean width of the confidence interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import verify  # noqa: E402
from agent.config import parse_spec  # noqa: E402
from agent.target import Target  # noqa: E402
from tests.fakes.openai_server import FakeServer, Reply  # noqa: E402
from tests.longrun import scenario as sc  # noqa: E402
from tools import sh  # noqa: E402


def throughput(lanes: int, latency: float, minutes: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"lanes-{lanes}-"))
    repo = sc.make_target(tmp / "repo", looks="[3, 6]")
    model = sc.ScriptedModel()

    def slow(body: dict) -> Reply:
        reply = model(body)
        reply.delay_s = latency  # the server sleeps outside the model's lock: replies overlap across lanes
        return reply

    srv = FakeServer(slow).start()
    try:
        proc = sc.start_run(repo, tmp / "runs", srv.base_url, hours=minutes / 60, iterations=10_000,
                            context_limit=100_000, extra=("--lanes", str(lanes), "--strategies", str(max(lanes, 4))))
        _, err = proc.communicate()
    finally:
        srv.close()
    if proc.returncode != 0:
        raise SystemExit(f"lanes={lanes}: optimize exited {proc.returncode}\n{err[-3000:]}")
    run = sc.run_dir(tmp / "runs")
    its = [e for e in sc.events(run) if e["type"] == "iteration"]
    decided = [e for e in its if e["reason"] != "budget"]
    hours = json.loads((run / "run.json").read_text())["summary"]["elapsed_s"] / 3600
    reasons: dict[str, int] = {}
    for e in decided:
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    return {"lanes": lanes, "decided": len(decided), "per_hour": len(decided) / hours, "reasons": reasons,
            "hours": hours}


BENCH = "import sys\nt = 0\nfor i in range(1_500_000):\n    t += i * i % 7\nprint('result:', t)\n"
BUILD = "python -c \"sum(i * i % 7 for i in range(4_000_000))\""


def quiet(decisions: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lanes-quiet-"))
    (tmp / "bench.py").write_text(BENCH)
    spec = parse_spec({"test": {"cmd": "true"}, "bench": {"cmd": "python bench.py", "timeout": 60},
                       "build": {"cmd": BUILD, "timeout": 120},
                       "decide": {"looks": [5, 10, 20], "min_effect": 0.02, "alpha": 0.05}}, "lanes-quiet")
    arm = verify.Arm("x", tmp)

    def builds(stop: threading.Event, leased: bool) -> None:
        while not stop.is_set():
            if leased:
                Target(spec, tmp).build()  # takes the shared lease, as a lane's build does
            else:
                sh.run(BUILD, tmp, 120)

    for name, others, leased in (("alone", 0, True), ("3 lanes building, with the lease", 3, True),
                                 ("3 lanes building, no lease (control)", 3, False)):
        stop = threading.Event()
        threads = [threading.Thread(target=builds, args=(stop, leased), daemon=True) for _ in range(others)]
        for t in threads:
            t.start()
        verdicts, widths = [], []
        started = time.monotonic()
        for _ in range(decisions):
            d = verify.measure(spec, arm, arm, looks=spec.decide.looks, min_effect=spec.decide.min_effect).decision
            verdicts.append(d.verdict)
            widths.append((d.ci[1] - d.ci[0]) / 2)
        stop.set()
        for t in threads:
            t.join()
        print(f"{name:<40} {decisions} A/A decisions in {time.monotonic() - started:5.0f} s: "
              f"better {verdicts.count('better')}, worse {verdicts.count('worse')}, same {verdicts.count('same')}, "
              f"inconclusive {verdicts.count('inconclusive')}; mean CI half-width {statistics.mean(widths):.1%}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["throughput", "quiet", "both"], default="both")
    ap.add_argument("--latency", type=float, default=5.0, help="seconds per model reply")
    ap.add_argument("--minutes", type=float, default=4.0, help="length of each compressed run")
    ap.add_argument("--decisions", type=int, default=30)
    args = ap.parse_args()
    if args.part in ("throughput", "both"):
        rows = [throughput(n, args.latency, args.minutes) for n in (1, 4)]
        for r in rows:
            print(f"lanes {r['lanes']}: {r['decided']} attempts decided in {r['hours'] * 60:.1f} min "
                  f"= {r['per_hour']:.0f}/hour  {r['reasons']}", flush=True)
        print(f"4 lanes / 1 lane: {rows[1]['per_hour'] / rows[0]['per_hour']:.2f}x attempts per hour "
              f"(reply latency {args.latency:g} s)")
    if args.part in ("quiet", "both"):
        quiet(args.decisions)


if __name__ == "__main__":
    main()
