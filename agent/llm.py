"""The model side's common language: the `Model` protocol, its replies, its errors.

A `Model` answers a conversation with a `Reply`. Replies are plain frozen dataclasses whose JSON form
(`Reply.to_json`) is the "response" object of `llm.jsonl` and of scripted transcripts, so a run can be
replayed exactly. Around this module: agent/endpoint.py (where the model is served and how that server
wants to be asked), agent/openai_client.py (the live model; the only module that imports the openai SDK,
so commands that never talk to an endpoint do not pay for it), agent/wire.py (replies read off the wire),
agent/llm_record.py (llm.jsonl: recording and replay).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class ToolCall:
    id: str  # verbatim from the server, e.g. "functions.read_file:3" — never rewritten
    name: str
    arguments: str  # the raw JSON string as received (may be malformed!)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # usage.prompt_tokens_details.cached_tokens or top-level cached_tokens
    counted: str = ""  # "" when the server reported usage; else "tokenizer" or "estimate" (we counted)

    @classmethod
    def from_wire(cls, u: dict | None) -> Usage:
        if not u:
            return cls()
        details = u.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or u.get("cached_tokens") or 0
        return cls(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), int(cached))


@dataclass(frozen=True)
class Reply:
    content: str
    reasoning: str  # from message.reasoning (vLLM) or message.reasoning_content (Moonshot)
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str  # "stop" | "tool_calls" | "length" | ...
    usage: Usage = Usage()

    def as_message(self) -> dict:
        """The assistant message to append to history, in OpenAI wire format."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["content"] = self.content or None  # an empty text part is rejected by some servers
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
            # vLLM reads "reasoning"; Moonshot 400s without "reasoning_content". Send both.
            msg["reasoning"] = self.reasoning
            msg["reasoning_content"] = self.reasoning
        return msg

    def to_json(self) -> dict:
        return {
            "content": self.content,
            "reasoning": self.reasoning,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "cached_tokens": self.usage.cached_tokens,
                **({"counted": self.usage.counted} if self.usage.counted else {}),
            },
        }

    @classmethod
    def from_json(cls, d: dict) -> Reply:
        calls = tuple(ToolCall(c["id"], c["name"], c.get("arguments", "")) for c in d.get("tool_calls") or [])
        u = d.get("usage") or {}
        return cls(
            content=d.get("content") or "",
            reasoning=d.get("reasoning") or "",
            tool_calls=calls,
            finish_reason=d.get("finish_reason") or ("tool_calls" if calls else "stop"),
            usage=Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0), u.get("cached_tokens", 0),
                        u.get("counted", "")),
        )


# ----------------------------------------------------------------------------- errors


class LLMError(Exception):
    """The endpoint cannot be used: unreachable, 401/403, unknown model, patience spent."""

    def __init__(self, url: str, model: str, problem: str, advice: str) -> None:
        super().__init__(f"LLM endpoint {url} (model {model}): {problem}. {advice}")
        self.url = url
        self.model = model


class RequestRejected(LLMError):
    """The server refused or failed this particular request (400/413/422, or a 500 that repeats), e.g. the
    context is too long or the model's output could not be parsed. The endpoint itself works: the run
    records a model error and goes on."""

    def __init__(self, url: str, model: str, status: int, message: str) -> None:
        super().__init__(url, model, f"request rejected with HTTP {status}: {message}",
                         "Shrink or fix the request (context too long? invalid message?).")
        self.status = status
        self.detail = message


class Cancelled(Exception):
    """Waiting for the endpoint was cut short because the run is stopping (Ctrl-C, SIGTERM)."""


class ReplayExhausted(Exception):
    """The replay has no more recorded replies."""


class ReplayDiverged(Exception):
    """The request does not fit the recorded one."""


# ----------------------------------------------------------------------------- the protocol


class Model(Protocol):
    name: str

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str,
                 schema: dict | None = None) -> Reply: ...
    # schema: {"name": ..., "schema": JSON schema} that the reply's content must follow; a server that
    # supports `response_format` enforces it, others get the tools as usual (the caller validates anyway).


def response_format(schema: dict) -> dict:
    """The `response_format` a structured request carries (sent by the client, recorded by the recorder)."""
    return {"type": "json_schema", "json_schema": {"name": schema["name"], "schema": schema["schema"], "strict": True}}


# ----------------------------------------------------------------------------- the key


def env_api_key() -> str | None:
    """OPENAI_API_KEY, moved out of os.environ when first seen (at import): no child process ever inherits
    it (start-up registers it with tools.sh, which drops it from every environment and redacts it from every output)."""
    global _ENV_KEY
    if "OPENAI_API_KEY" in os.environ:
        _ENV_KEY = os.environ.pop("OPENAI_API_KEY") or None
    return _ENV_KEY


_ENV_KEY: str | None = None
env_api_key()

