"""Where a candidate is verified: one small protocol, a local implementation and a Ray one.

The session only ever sees `Executor`; the Ray module (and Ray itself) is imported only when a run
asks for `--executor ray`, so local runs never load it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent import verify
from agent.config import TargetSpec
from agent.verify import Arm, Outcome

KEY_VERSION = 1  # bump when what an evaluation means changes, so old keys are not taken for new ones


class ExecutorError(Exception):
    """The executor could not finish an evaluation (a cluster without benchmark hosts, a lost task); the message
    says what to do. Never raised for a candidate's own failures: those are Outcomes."""


class Executor(Protocol):
    def verify(self, best: Arm, cand: Arm, *, min_effect: float, expected: list[str], protected_attempts: list[str],
               logs: Path, reference: Arm | None) -> Outcome: ...

    def close(self) -> None: ...


@dataclass
class LocalExecutor:
    """Builds, tests and measures on this machine, under the host lease."""

    spec: TargetSpec
    repo: Path

    def verify(self, best: Arm, cand: Arm, *, min_effect: float, expected: list[str], protected_attempts: list[str],
               logs: Path, reference: Arm | None) -> Outcome:
        return verify.verify(self.spec, self.repo, best, cand, min_effect=min_effect, expected=expected,
                             protected_attempts=protected_attempts, logs=logs, reference=reference)

    def close(self) -> None:
        pass


def open_executor(kind: str, repo: Path, spec: TargetSpec, ray_address: str | None = None) -> Executor:
    """The executor a run asked for; ExecutorError (Ray missing, cluster unreachable) says what to do."""
    if kind == "ray":
        from agent.remote import RayExecutor

        return RayExecutor(repo, spec, ray_address)
    return LocalExecutor(spec, repo)


def evaluation_key(spec: TargetSpec, best_commit: str, cand_commit: str, min_effect: float) -> str:
    """The idempotency key of an evaluation: sha256 of everything that decides its verdict.

    The same spec, commits and threshold give the same key on any machine and in any process, so
    `optimize resume` can resubmit exactly the evaluations it has no outcome for (and recognise one
    it already has) without remembering Ray object refs, which die with the driver."""
    content = {"v": KEY_VERSION, "spec": spec.model_dump(mode="json"), "best": best_commit,
               "cand": cand_commit, "min_effect": repr(float(min_effect))}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
