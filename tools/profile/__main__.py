"""`python -m tools.profile KIND CMD [--cwd D] [--out D] [--timeout S] [--previous P] [--json]`:
profile one command by hand; prints the model's summary, or the result as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tools.profile import KINDS, profile_target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.profile", description=__doc__)
    p.add_argument("kind", help=" | ".join(KINDS))
    p.add_argument("cmd", help="shell command to profile")
    p.add_argument("--cwd", type=Path, default=Path.cwd())
    p.add_argument("--out", type=Path, default=Path("profile-out"))
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--previous", type=Path, help="an earlier cpu.collapsed.txt, or its folder")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res = profile_target(a.kind, a.cmd, a.cwd, a.out, timeout=a.timeout, previous=a.previous)
    if a.json:
        print(json.dumps(asdict(res), default=str, indent=2))
    else:
        print(res.summary)
        for name in ("collapsed", "flamegraph", "allocations"):
            print(f"{name}: {getattr(res, name)}")
    return 0 if res.collapsed or res.allocations or a.kind == "none" else 1


if __name__ == "__main__":
    sys.exit(main())
