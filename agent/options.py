"""The options of a run: its budgets, lanes, executor and model settings, recorded in run.json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    iterations: int = 12
    hours: float = 12.0
    strategies: int = 6
    max_tool_calls: int = 60  # per attempt
    max_total_tool_calls: int | None = None
    max_tokens: int | None = None
    profile: bool = True
    context_limit: int = 160_000  # tokens; compaction starts above this (Kimi K2.6 has 262,144)
    widen_after: int = 4  # attempts without a win before the planner is told to think wider
    lanes: int = 1  # attempts in flight at once, each with its own worktree and conversation
    executor: str = "local"  # "local", or "ray": verification on Ray benchmark hosts (docs/ray.md)
    ray_address: str | None = None
    endpoint_patience_s: float = 1800.0  # an endpoint outage after start-up is waited out this long
    endpoint_backoff_s: float = 60.0  # longest wait between two tries of an endpoint that is down
    reply_tokens: int = 32768  # completion budget of one model reply (reasoning and answer share it)
    error_backoff_s: float = 10.0  # first pause after repeated model errors; doubles, capped at 5 min
    repair: bool = True  # repair a baseline that does not build or pass its tests first (agent/repair.py)
    repair_tool_calls: int = 40  # the repair phase's own budgets
    repair_minutes: float = 45.0

    @classmethod
    def from_record(cls, recorded: dict) -> Options:
        """The options a run recorded in its manifest (which also holds keys that are not options)."""
        return cls(**{k: v for k, v in recorded.items() if k in cls.__dataclass_fields__})
