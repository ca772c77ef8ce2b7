"""Fail CI unless the newest run in runs/ (what `make demo` just did) finished with the showcase's verdicts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
expected = json.loads((ROOT / "targets/loganalyzer/showcase.expected.json").read_text())


def optimize(*args: str) -> dict | list:
    done = subprocess.run([sys.executable, "-m", "agent.cli", *args, "--json"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"optimize {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


runs = [r for r in optimize("runs") if r["target"] == "loganalyzer"]
if not runs:
    sys.exit("no loganalyzer run in runs/: did `make demo` run?")
run = max(runs, key=lambda r: r["started"])
show = optimize("show", run["run_id"])
reasons = [i["reason"] for i in show["iterations"]]
problems = []
if show["status"] != "finished":
    problems.append(f"status {show['status']} ({show.get('stop_reason')}), expected finished")
if len(reasons) != len(expected["reasons"]) or any(r not in ok for r, ok in zip(reasons, expected["reasons"], strict=False)):
    problems.append(f"reasons {reasons}, expected {expected['reasons']}")
if expected["confirmed"] and not show["best"]["confirmed"]:
    problems.append(f"the best did not confirm: {show['best']['speedup']:.3f}x {show['best']['ci']}")
if problems:
    sys.exit(f"demo run {run['run_id']}: " + "; ".join(problems))
print(f"demo run {run['run_id']}: {reasons}, confirmed {show['best']['speedup']:.2f}x {show['best']['ci']}")
