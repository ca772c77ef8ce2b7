"""Verification on real Ray clusters on this machine (loopback only): a local single-host instance, then a
simulated cluster of a head and three benchmark hosts, one of which is killed mid-measurement.

Ray allows one cluster per process at a time, so each cluster is a class-scoped fixture: the local one is
shut down when its class is done, before the simulated cluster starts."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent import remote, verify
from agent.config import TargetSpec
from agent.executor import evaluation_key
from agent.remote import RayExecutor, RemoteError
from agent.target import Target
from agent.verify import Arm, Outcome
from tests.test_verify import PROG, candidate, repo_with, spec

FAST = {"prog.py": PROG.replace("0.25", "0.05")}


def run(ex: RayExecutor, s: TargetSpec, best: Arm, cand: Arm, logs: Path) -> Outcome:
    logs.mkdir(parents=True, exist_ok=True)
    expected = verify.expected_lines(s, Target(s, best.worktree).bench().output)
    return ex.verify(best, cand, min_effect=0.05, expected=expected, protected_attempts=[], logs=logs)


# --- no cluster needed --------------------------------------------------------------------------


def test_evaluation_key_is_the_content() -> None:
    a, b = "a" * 40, "b" * 40
    key = evaluation_key(spec(), a, b, 0.05)
    assert len(key) == 64 and key == evaluation_key(spec(), a, b, 0.05)
    others = {evaluation_key(spec(), b, a, 0.05), evaluation_key(spec(), a, b, 0.06),
              evaluation_key(spec(bench=f"{sys.executable} bench.py 7"), a, b, 0.05)}
    assert key not in others and len(others) == 3


def test_missing_ray_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like to import
    with pytest.raises(RemoteError, match=r"pip install 'nightshift\[ray\]'"):
        RayExecutor(tmp_path, spec())


def test_bundle_carries_both_commits_and_leaves_no_refs(tmp_path: Path) -> None:
    repo, best = repo_with(tmp_path)
    cand = candidate(repo, best, FAST)
    refs_before = sorted((repo / ".git" / "refs").rglob("*"))
    code = remote.bundle(repo, [best.commit, cand.commit])
    assert sorted((repo / ".git" / "refs").rglob("*")) == refs_before
    (tmp_path / "b.bundle").write_bytes(code)
    out = os.popen(f"git bundle list-heads {tmp_path / 'b.bundle'}").read()
    assert best.commit in out and cand.commit in out


@pytest.mark.slow
def test_without_a_cluster_the_executor_starts_one_with_this_machine_as_the_host(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (the [ray] extra; make python installs it)")
    repo, _ = repo_with(tmp_path)
    ex = RayExecutor(repo, spec())
    try:
        assert ray.is_initialized() and ex.cpus() == os.cpu_count()
    finally:
        ex.close()
    assert not ray.is_initialized()  # it started this instance, so it stops it


# --- a local single-host Ray instance -----------------------------------------------------------


@pytest.fixture(scope="class")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="ray is not installed (the [ray] extra; make python installs it)")
    ray.init(num_cpus=2, resources={"bench_slot": 1}, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
class TestLocalRay:
    def test_faster_candidate_is_accepted_with_its_host(self, local_ray: Any, tmp_path: Path) -> None:
        repo, best = repo_with(tmp_path)
        s = spec()
        ex = RayExecutor(repo, s)
        assert ex.cpus() == 2  # the whole (only) benchmark host
        o = run(ex, s, best, candidate(repo, best, FAST), tmp_path / "logs")
        assert (o.verdict, o.reason) == ("accepted", "faster") and o.speedup is not None and o.speedup > 3
        assert o.host is not None and o.host["node_id"] == local_ray.get_runtime_context().get_node_id()
        assert o.host["fingerprint"]["cores"] == os.cpu_count() and o.host["finished"] > o.host["started"]
        assert o.pairs == 3 and len(o.samples) == 6 and isinstance(o.ci, tuple)
        assert "1 passed" in (tmp_path / "logs" / "test.log").read_text()
        ex.close()
        assert local_ray.is_initialized()  # the executor did not start this instance, so it leaves it running

    def test_slower_and_identical_candidates_are_not(self, local_ray: Any, tmp_path: Path) -> None:
        repo, best = repo_with(tmp_path)
        s = spec()
        ex = RayExecutor(repo, s)
        slow = run(ex, s, best, candidate(repo, best, {"prog.py": PROG.replace("0.25", "0.4")}, "slow"),
                   tmp_path / "slow")
        assert (slow.verdict, slow.reason) == ("rejected", "slower") and slow.host is not None
        same = run(ex, s, best, candidate(repo, best, {"prog.py": PROG + "# a comment\n"}, "same"),
                   tmp_path / "same")
        assert same.verdict == "rejected" and same.reason in ("not-significant", "slower")
        assert run(ex, s, best, best, tmp_path / "nochange").reason == "no-change"

    def test_optimize_with_executor_ray_measures_on_the_cluster(self, local_ray: Any, tmp_path: Path) -> None:
        """The whole loop with `--executor ray`, joining this cluster: verdicts as with local verification,
        and each measured iteration names its host."""
        from tests.test_loop import EXPECTED, optimize, show
        from tests.tiny_target import make_repo, transcript

        repo = make_repo(tmp_path / "repo")
        address = local_ray.get_runtime_context().gcs_address
        r = optimize("--repo", str(repo), "--llm", f"replay:{transcript(tmp_path / 't.jsonl')}", "--runs-dir",
                     str(tmp_path / "runs"), "--no-profile", "--executor", "ray", "--ray-address", address)
        assert r.returncode == 0, r.stderr
        data = show(tmp_path / "runs")
        its = data["iterations"]
        assert [(i["verdict"], i["reason"]) for i in its] == EXPECTED
        node = local_ray.get_runtime_context().get_node_id()
        assert all(i["host"]["node_id"] == node for i in its)  # every verdict was reached on the host
        assert f"measured on Ray host <span class=\"branch\">{node[:12]}" in (Path(data["record"]) / "report.html").read_text()


# --- a simulated cluster: a head without a benchmark slot, three benchmark hosts ------------------


@pytest.fixture(scope="class")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray", reason="ray is not installed (the [ray] extra; make python installs it)")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, connect=True,
                head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(3):
        c.add_node(num_cpus=1, resources={"bench_slot": 1})
    c.wait_for_nodes()
    yield c
    import ray

    ray.shutdown()
    c.shutdown()


def bench_nodes(c: Any) -> dict[str, Any]:
    return {n.node_id: n for n in c.list_all_nodes() if n is not c.head_node}


@pytest.mark.slow
class TestCluster:
    def test_concurrent_verifications_run_on_benchmark_hosts_one_at_a_time(self, cluster: Any,
                                                                           tmp_path: Path) -> None:
        repo, best = repo_with(tmp_path)
        s = spec()
        ex = RayExecutor(repo, s)
        assert ex.cpus() == 1
        cands = [candidate(repo, best, {"prog.py": PROG.replace("0.25", f"0.0{i + 4}")}, f"c{i}") for i in range(4)]
        with ThreadPoolExecutor(4) as pool:  # four evaluations on three hosts: at least two share one
            outs = list(pool.map(lambda ic: run(ex, s, best, ic[1], tmp_path / f"logs{ic[0]}"), enumerate(cands)))
        hosts = bench_nodes(cluster)
        assert all(o.verdict == "accepted" and o.host is not None and o.host["node_id"] in hosts for o in outs)
        spans = sorted((o.host["node_id"], o.host["started"], o.host["finished"]) for o in outs if o.host)
        assert len({node for node, _, _ in spans}) < len(spans)  # the pigeonhole, so the next line checks something
        for (n1, _, end1), (n2, start2, _) in zip(spans, spans[1:], strict=False):
            assert n1 != n2 or end1 <= start2, f"two measurements overlapped on node {n1}"

    def test_a_host_lost_mid_measurement_is_measured_again_elsewhere(self, cluster: Any, tmp_path: Path) -> None:
        repo, best = repo_with(tmp_path)
        s = spec(decide={"looks": [6], "extra_looks": [], "min_effect": 0.05, "alpha": 0.05})  # long enough to be cut
        ex = RayExecutor(repo, s)
        cand = candidate(repo, best, FAST)
        key = evaluation_key(s, best.commit, cand.commit, 0.05)
        result: list[Outcome] = []
        worker = threading.Thread(target=lambda: result.append(run(ex, s, best, cand, tmp_path / "logs")))
        worker.start()
        # verify writes test.log once the tests pass, right before the A/B starts; the scratch directory
        # names the node that runs the task
        pattern = f"{remote.WORKDIR_PREFIX}{key[:16]}-*/logs/test.log"
        deadline = time.monotonic() + 60
        while not (seen := list(Path(tempfile.gettempdir()).glob(pattern))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen, "the evaluation never reached its measurement"
        time.sleep(0.5)
        assert not result and not list((tmp_path / "logs").iterdir())  # mid-measurement: nothing reported yet
        node_prefix = seen[0].parent.parent.name.split("-")[-2]
        killed = [n for nid, n in bench_nodes(cluster).items() if nid.startswith(node_prefix)]
        assert len(killed) == 1
        cluster.remove_node(killed[0])
        worker.join(timeout=120)
        o = result[0]
        assert (o.verdict, o.reason) == ("accepted", "faster") and o.pairs == 6 and len(o.samples) == 12
        assert o.host is not None and o.host["node_id"] != killed[0].node_id
        assert o.host["node_id"] in bench_nodes(cluster) and o.host["key"] == key
        assert o.host["started"] > seen[0].stat().st_mtime  # re-measured from scratch, not resumed
        assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["test.log"]
        for p in Path(tempfile.gettempdir()).glob(f"{remote.WORKDIR_PREFIX}{key[:16]}-*"):
            shutil.rmtree(p, ignore_errors=True)  # the dead host's scratch (same disk here)
