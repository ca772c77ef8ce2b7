"""Verification on a Ray cluster: one commit pair measured as one Ray task on a benchmark host.

A benchmark host is a Ray node started with the custom resource `bench_slot: 1`. Every evaluation
asks for that slot and for all the host's CPUs, so a host runs one measurement at a time and nothing
else Ray schedules shares its cores. Both arms of a comparison are built and measured on that one
host (only the ratio measured side by side is used), and the outcome carries the host's machine
fingerprint and Ray node id. The code travels as a git bundle in Ray's object store; the task clones
it into a fresh directory, so a task Ray re-executes after losing its node starts from nothing on
another host: fresh clone, fresh builds, fresh A/B. Only a finished task reports anything.

Ray is an optional extra (`pip install 'nightshift[ray]'`); it is imported only when an executor is made.
See docs/ray.md for how to start the cluster.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from agent import verify
from agent.config import TargetSpec
from agent.executor import ExecutorError, evaluation_key
from agent.target import Target, failure
from agent.verify import Arm, Outcome
from tools import fingerprint, gitops

RESOURCE = "bench_slot"  # the custom resource every benchmark host offers exactly once
WORKDIR_PREFIX = "nightshift-eval-"  # a task's scratch directory on its host: prefix + key[:16] + node[:12]
LOGS = ("build.log", "test.log")
RETRIES = 3  # re-executions after a lost node (or a killed worker), each from scratch on any free host


class RemoteError(ExecutorError):
    """Ray is missing or the cluster cannot measure (no benchmark host, evaluation lost); the message says
    what to do. Never raised for a candidate's own failures: those are Outcomes."""


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError as e:
        raise RemoteError("verification on Ray needs the optional extra: pip install 'nightshift[ray]' "
                          "(or pip install 'ray[default]>=2.40'), on the driver and on every benchmark host") from e
    return ray


def bundle(repo: Path, commits: list[str]) -> bytes:
    """A git bundle holding `commits` and their history, made without creating refs in `repo`:
    `git bundle` only packs refs, so they are made in a scratch repository borrowing repo's objects."""
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="nightshift-bundle-") as tmp:
        scratch = Path(tmp) / "scratch.git"
        _git(Path(tmp), "init", "-q", "--bare", str(scratch))
        (scratch / "objects" / "info" / "alternates").write_text(str(Path(common) / "objects") + "\n")
        for i, commit in enumerate(commits):
            _git(scratch, "update-ref", f"refs/heads/c{i}", commit)
        _git(scratch, "bundle", "create", "-q", str(Path(tmp) / "code.bundle"), "--all")
        return (Path(tmp) / "code.bundle").read_bytes()


def _git(cwd: Path, *args: str) -> None:
    # No repository hook runs here either (fetch and update-ref would run reference-transaction hooks).
    subprocess.run(["git", *gitops.SAFE_ARGS, *args], cwd=cwd, capture_output=True, text=True, check=True)


def evaluate(code: bytes, spec_data: dict[str, Any], best_commit: str, cand_commit: str, *, min_effect: float,
             expected: list[str], protected_attempts: list[str], key: str, node_id: str = "local") -> dict[str, Any]:
    """One whole evaluation from nothing, on whatever machine runs it: clone the bundle, make both
    worktrees, build the best, then the local pipeline (`verify.verify`). Returns plain data: the
    outcome, the logs' text and where and when it was measured. The scratch directory goes away after."""
    started = time.time()
    spec = TargetSpec.model_validate(spec_data)
    work = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{key[:16]}-{node_id[:12]}-"))
    try:
        (work / "code.bundle").write_bytes(code)
        repo = work / "repo"
        _git(work, "init", "-q", str(repo))
        _git(repo, "fetch", "-q", str(work / "code.bundle"), "refs/heads/*:refs/remotes/bundle/*")
        best = Arm(best_commit, gitops.add_worktree(repo, work / "wt-best", best_commit))
        cand = Arm(cand_commit, gitops.add_worktree(repo, work / "wt-cand", cand_commit))
        logs = work / "logs"
        logs.mkdir()
        built = Target(spec, best.worktree).build()
        if built is not None and (bad := failure(built, "build-failed")):
            (logs / "build.log").write_text(built.output)
            outcome = Outcome("error", bad[0], f"the current best does not build on this host: {bad[1]}\n"
                              + "\n".join(built.output.splitlines()[-40:]))
        else:
            outcome = verify.verify(spec, repo, best, cand, min_effect=min_effect, expected=expected,
                                    protected_attempts=protected_attempts, logs=logs)
        texts = {name: (logs / name).read_text(errors="replace") for name in LOGS if (logs / name).exists()}
        host = {"node_id": node_id, "fingerprint": fingerprint.fingerprint(), "started": started,
                "finished": time.time(), "key": key}
        return {"outcome": dataclasses.asdict(outcome), "logs": texts, "host": host}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remote_evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The Ray task's body: `evaluate` with the node id of the host Ray chose."""
    import ray

    return evaluate(*args, **kwargs, node_id=ray.get_runtime_context().get_node_id())


class RayExecutor:
    """Verification of a commit pair as one Ray task on a benchmark host that it reserves whole."""

    def __init__(self, repo: Path, spec: TargetSpec, address: str | None = None,
                 timeout: float | None = None) -> None:
        """Joins the Ray instance this process already has, else the cluster at `address` ("auto", "HOST:6379",
        "ray://HOST:10001"), else starts a local one in which this machine is the only benchmark host.
        `timeout`: seconds an evaluation may take in all, retries included (default: from the spec's timeouts)."""
        self.ray = _ray()
        self.repo, self.spec = repo, spec
        self.timeout = timeout if timeout is not None else _deadline(spec)
        self._started_ray = not self.ray.is_initialized()
        if self._started_ray:
            _reachable(address)
            try:
                if address is None:
                    self.ray.init(resources={RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
                else:
                    self.ray.init(address=address, log_to_driver=False)
            except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
                raise RemoteError(f"cannot join the Ray cluster at {address or 'a new local instance'}: "
                                  f"{type(e).__name__}: {str(e)[:300]}") from e
        self._task = self.ray.remote(_remote_evaluate)
        try:
            self.cpus()  # fail now, not at the first candidate, when no host can measure
        except RemoteError:
            self.close()
            raise

    def cpus(self) -> int:
        """CPUs a task reserves: the smallest benchmark host's whole count, so any host can take a retry
        (hosts with more CPUs keep the rest free: give benchmark hosts equal `--num-cpus`)."""
        counts = [int(n["Resources"].get("CPU", 0)) for n in self.ray.nodes()
                  if n.get("Alive") and n["Resources"].get(RESOURCE, 0) >= 1]
        if not counts:
            raise RemoteError(f"no benchmark host in the Ray cluster: start one with ray start --address HEAD:6379 "
                              f"--resources '{{\"{RESOURCE}\": 1}}' (docs/ray.md)")
        return max(1, min(counts))

    def verify(self, best: Arm, cand: Arm, *, min_effect: float, expected: list[str],
               protected_attempts: list[str], logs: Path, reference: Arm | None = None) -> Outcome:
        """Like `verify.verify` (only `best.commit` and `cand.commit` are used: the host builds its own
        worktrees), measured on one benchmark host. Logs are written, and an Outcome returned, only for a
        finished evaluation; RemoteError when the cluster could not finish it (resubmit by its key)."""
        key = evaluation_key(self.spec, best.commit, cand.commit, min_effect)
        code = self.ray.put(bundle(self.repo, [best.commit, cand.commit]))
        task = self._task.options(num_cpus=self.cpus(), resources={RESOURCE: 1}, max_retries=RETRIES,
                                  retry_exceptions=False, name=f"nightshift-eval-{key[:16]}")
        ref = task.remote(code, self.spec.model_dump(mode="json"), best.commit, cand.commit, min_effect=min_effect,
                          expected=expected, protected_attempts=protected_attempts, key=key)
        try:
            result = self.ray.get(ref, timeout=self.timeout)
        except self.ray.exceptions.GetTimeoutError as e:
            self.ray.cancel(ref, force=True)
            raise RemoteError(f"evaluation {key[:16]} did not finish within {self.timeout:.0f}s "
                              "(no free benchmark host, or a host too slow)") from e
        except self.ray.exceptions.RayError as e:
            raise RemoteError(f"evaluation {key[:16]} was lost after {RETRIES} re-executions: "
                              f"{type(e).__name__}: {str(e)[:500]}") from e
        for name, text in result["logs"].items():
            (logs / name).write_text(text)
        fields = result["outcome"]
        fields["ci"] = tuple(fields["ci"]) if fields["ci"] is not None else None
        return Outcome(**{**fields, "host": result["host"]})

    def close(self) -> None:
        """Shuts down the Ray instance only if this executor started it."""
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._started_ray = False


def _deadline(spec: TargetSpec) -> float:
    """A generous bound on one evaluation, retries included: two builds, three test runs, every pair of
    the longest schedule plus the seed checks, and a few minutes to clone and to wait for a host."""
    build = spec.build.timeout if spec.build else 0.0
    once = 2 * build + 3 * spec.test.timeout + (2 * max(spec.decide.looks) + 4) * spec.bench.timeout + 300
    return once * (RETRIES + 1)


def _reachable(address: str | None, seconds: float = 5.0) -> None:
    """Ray retries an unreachable head for minutes; a plain TCP connect says it in seconds."""
    if address is None or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except (OSError, ValueError) as e:
        raise RemoteError(f"no Ray head answers at {address} ({e}); start one with `ray start --head` "
                          "(docs/ray.md) or fix --ray-address") from e
