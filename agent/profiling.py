"""`optimize profile`: build a clean copy of the target and profile its benchmark, on its own."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from agent import lease, start
from agent.target import Target, failure
from tools import gitops
from tools.profile import profile_target


def profile_repo(repo: str, target: Path | None, out_dir: Path | None) -> dict:
    src = start.resolve(repo, target)
    out_dir = out_dir or Path("runs") / f"profile-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nightshift-profile-") as tmp:
        if src.in_place:  # a detached worktree: the user's checkout and build outputs stay untouched
            wt = gitops.add_worktree(src.path, Path(tmp) / "wt", gitops.head_commit(src.path))
        else:
            wt = Path(tmp) / "wt"
            gitops.snapshot(src.path, wt)
        try:
            build = Target(src.spec, wt).build()
            if build is not None and failure(build, "build-failed"):
                raise start.BadInput(f"the build fails ({src.spec.build.cmd}):\n{build.tail()}")
            kind = src.spec.profile.kind if src.spec.profile.kind != "none" else "py-spy"
            with lease.shared("a profile"):  # never inside another run's measurement on this host
                result = profile_target(kind, src.spec.profile.cmd or src.spec.bench.cmd, wt, out_dir.resolve(),
                                        timeout=src.spec.profile.timeout)
        finally:
            if src.in_place:
                gitops.remove_worktree(src.path, wt)
    return {
        "profiler": result.profiler,
        "flamegraph": str(result.flamegraph) if result.flamegraph else None,
        "collapsed": str(result.collapsed) if result.collapsed else None,
        "allocations": str(result.allocations) if result.allocations else None,
        "top": [{"frame": f.frame, "self_pct": f.self_pct, "total_pct": f.total_pct} for f in result.top],
        "warnings": result.warnings,
        "summary": result.summary,
    }
