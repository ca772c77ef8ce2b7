"""The chat-completions wire format, read: a whole response or a stream's deltas become one `Reply`,
and a reply that came without usage gets counted by the server's own tokenizer.

Plain dicts in, no SDK: agent/openai_client.py hands over what the openai SDK received.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from agent.llm import Reply, ToolCall, Usage

CHARS_PER_TOKEN = 4  # the stated estimate when neither the server's usage nor its tokenizer is available


class Incomplete(Exception):
    """The server answered 200 but the reply was cut off (no choices / no finish)."""


def reply_from_response(resp: dict) -> Reply:
    """A non-streamed response."""
    if not resp.get("choices"):
        raise Incomplete("response without choices")
    choice = resp["choices"][0]
    msg = choice.get("message") or {}
    calls = tuple(
        ToolCall(c.get("id") or "", c["function"]["name"] or "", c["function"].get("arguments") or "")
        for c in msg.get("tool_calls") or []
    )
    return Reply(msg.get("content") or "", _reasoning(msg), calls,
                 choice.get("finish_reason") or "", Usage.from_wire(resp.get("usage")))


def reply_from_chunks(chunks: Any) -> Reply:
    """Fold streamed deltas into one Reply: text is concatenated, tool calls are keyed by index with the
    id and name in their first delta and argument fragments after."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = ""
    usage: dict | None = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            usage = choice.get("usage") or usage  # Moonshot puts usage inside the last choice
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            reasoning.append(_reasoning(delta))
            for n, tc in enumerate(delta.get("tool_calls") or []):
                index = tc.get("index")
                slot = calls.setdefault(n if index is None else index, {"id": "", "name": "", "arguments": []})
                fn = tc.get("function") or {}
                slot["id"] = slot["id"] or tc.get("id") or ""
                slot["name"] = slot["name"] or fn.get("name") or ""
                slot["arguments"].append(fn.get("arguments") or "")
            finish = choice.get("finish_reason") or finish
    if not finish:
        raise Incomplete("stream ended without a finish_reason")
    tool_calls = tuple(
        ToolCall(c["id"], c["name"], "".join(c["arguments"])) for _, c in sorted(calls.items())
    )
    return Reply("".join(content), "".join(reasoning), tool_calls, finish, Usage.from_wire(usage))


def _reasoning(d: dict) -> str:
    return d.get("reasoning") or d.get("reasoning_content") or ""


def tokenize(base_url: str, api_key: str, model: str, text: str) -> int | None:
    """Tokens in `text` by `POST /tokenize` as vLLM and llama.cpp serve it; None if the server has none."""
    if not text:
        return 0
    root = base_url.rstrip("/").rsplit("/", 1)[0]  # /tokenize sits beside /v1, not under it
    request = urllib.request.Request(
        f"{root}/tokenize", json.dumps({"model": model, "prompt": text, "content": text}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=30.0) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("count"), int):  # vLLM
        return data["count"]
    return len(data["tokens"]) if isinstance(data.get("tokens"), list) else None  # llama.cpp
