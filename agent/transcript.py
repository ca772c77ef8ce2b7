"""Write scripted transcripts: the model's side of a run, in the same `response` format as llm.jsonl.

Bundled showcases are authored with this (by people, not recorded from Kimi) and replayed with
`--llm replay:FILE`; every measurement in such a run is live. Tool-call ids follow Kimi's
`functions.NAME:IDX` convention with IDX counting calls across one conversation.
"""

from __future__ import annotations

import json
from pathlib import Path


class Transcript:
    def __init__(self, note: str) -> None:
        self.lines: list[dict] = [{"transcript": "scripted", "note": note}]
        self.attempts = 0

    def _reply(self, tag: str, content: str = "", reasoning: str = "", calls: list[dict] | None = None) -> None:
        self.lines.append({
            "tag": tag,
            "response": {
                "content": content,
                "reasoning": reasoning,
                "tool_calls": calls or [],
                "finish_reason": "tool_calls" if calls else "stop",
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0},
            },
        })

    def plan(self, strategies: list[dict], reasoning: str = "") -> Transcript:
        """strategies: dicts with title, hypothesis, files, expected_gain."""
        self._reply("plan", json.dumps({"strategies": strategies}, indent=1), reasoning)
        return self

    def attempt(self, steps: list[tuple[str, list[tuple[str, dict]]]]) -> Transcript:
        """One strategy's conversation: steps of (reasoning, [(tool name, arguments), ...]).

        End with a step calling `finish` (or `give_up`)."""
        self.attempts += 1
        tag = f"attempt-{self.attempts:03d}"
        counter = 0
        for reasoning, calls in steps:
            wire = []
            for name, args in calls:
                wire.append({"id": f"functions.{name}:{counter}", "name": name, "arguments": json.dumps(args)})
                counter += 1
            self._reply(tag, "", reasoning, wire)
        return self

    def write(self, path: Path) -> None:
        path.write_text("".join(json.dumps(line) + "\n" for line in self.lines))
