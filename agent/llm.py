"""Everything that talks to the LLM: one `Model` protocol and its live, recording and replaying forms.

The live model speaks the OpenAI chat-completions protocol as vLLM/SGLang serve Kimi K2.6 (and as
Moonshot's API does). Provider quirks live in the `PROVIDERS` table, not in `if`s. Replies are plain
frozen dataclasses whose JSON form (`Reply.to_json`) is the "response" object of `llm.jsonl` and of
scripted transcripts, so a run can be replayed exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from tools import sh

log = logging.getLogger("nightshift.llm")

VLLM_HINT = (
    "Serve Kimi K2.6 with: vllm serve moonshotai/Kimi-K2.6 --tool-call-parser kimi_k2 "
    "--enable-auto-tool-choice --reasoning-parser kimi_k2 --trust-remote-code "
    "(SGLang: same parsers), or pass --llm URL / --model NAME for another endpoint."
)
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer is treated as an outage; backoff continues
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
CHECK_TIMEOUT_S = 5.0


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
            usage=Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0), u.get("cached_tokens", 0)),
        )


def parse_arguments(call: ToolCall) -> dict:
    """The call's arguments as a dict; the ValueError's message is meant to go back to the model."""
    text = call.arguments.strip()
    if not text:
        return {}  # some servers send "" for tools without parameters
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{call.name}: arguments are not valid JSON: {e.msg} at line {e.lineno} column {e.colno} "
            f"(received {_clip(call.arguments)!r}). Call the tool again with one JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{call.name}: arguments must be a JSON object, got {type(value).__name__} "
            f"({_clip(call.arguments)!r}). Call the tool again with one JSON object."
        )
    return value


def _clip(s: str, n: int = 200) -> str:
    return s if len(s) <= n else s[:n] + "..."


# ----------------------------------------------------------------------------- errors


class LLMError(Exception):
    """The endpoint cannot be used: unreachable, 401/403, unknown model, retries exhausted."""

    def __init__(self, url: str, model: str, problem: str, advice: str) -> None:
        super().__init__(f"LLM endpoint {url} (model {model}): {problem}. {advice}")
        self.url = url
        self.model = model


class RequestRejected(LLMError):
    """The server refused this particular request (400/413/422), e.g. the context is too long.

    The endpoint itself works, so the caller may shrink the request and try again."""

    def __init__(self, url: str, model: str, status: int, message: str) -> None:
        super().__init__(url, model, f"request rejected with HTTP {status}: {message}",
                         "Shrink or fix the request (context too long? invalid message?).")
        self.status = status


class ReplayExhausted(Exception):
    """The replay has no more recorded replies."""


class ReplayDiverged(Exception):
    """The request does not fit the recorded one."""


# ----------------------------------------------------------------------------- the live model


class Model(Protocol):
    name: str

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str) -> Reply: ...


@dataclass(frozen=True)
class Endpoint:
    base_url: str = "http://localhost:8000/v1"
    model: str = "moonshotai/Kimi-K2.6"
    api_key: str = field(default="", repr=False)  # from OPENAI_API_KEY, or "EMPTY"; NEVER recorded or logged
    thinking: bool = True
    max_tokens: int = 32768  # reasoning and answer share this budget
    timeout_s: float = 600  # per read; streaming keeps long generations under it
    retries: int = 6
    stream: bool = True


@dataclass(frozen=True)
class Provider:
    """How one family of servers wants Kimi's knobs set."""

    name: str
    hosts: tuple[str, ...]
    default_model: str
    max_tokens_param: str
    send_sampling: bool  # Moonshot fixes temperature/top_p itself for K2.x
    thinking_body: Callable[[bool], dict]


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "moonshot", ("api.moonshot.ai", "api.moonshot.cn", "api.kimi.com"), "kimi-k2.6",
        "max_completion_tokens", False,
        lambda on: {"thinking": {"type": "enabled" if on else "disabled"}},
    ),
    # vLLM / SGLang: the chat template reads `thinking` (not `enable_thinking`, which leaks the
    # chain of thought into content on some deployments).
    Provider(
        "self-hosted", (), "moonshotai/Kimi-K2.6", "max_tokens", True,
        lambda on: {"chat_template_kwargs": {"thinking": on}},
    ),
)
SAMPLING = {True: {"temperature": 1.0, "top_p": 0.95}, False: {"temperature": 0.6, "top_p": 0.95}}


def provider_for(base_url: str) -> Provider:
    host = urlsplit(base_url).hostname or ""
    return next((p for p in PROVIDERS if host in p.hosts), PROVIDERS[-1])


def env_api_key() -> str | None:
    """OPENAI_API_KEY, moved out of os.environ when first seen (at import): no child process ever inherits
    it, and tools.sh drops it from every environment and redacts it from every output."""
    global _ENV_KEY
    if "OPENAI_API_KEY" in os.environ:
        _ENV_KEY = os.environ.pop("OPENAI_API_KEY") or None
    sh.register_secret(_ENV_KEY)
    return _ENV_KEY


_ENV_KEY: str | None = None
env_api_key()


def _api_key(ep: Endpoint) -> str:
    sh.register_secret(ep.api_key)
    return ep.api_key or env_api_key() or "EMPTY"


def _client(ep: Endpoint, timeout: float) -> openai.OpenAI:
    # max_retries=0: our tenacity loop is the only retry layer, so Retry-After and counts are ours.
    return openai.OpenAI(
        base_url=ep.base_url, api_key=_api_key(ep), max_retries=0,
        timeout=openai.Timeout(timeout, connect=min(10.0, timeout)),
    )


def _status_error(ep: Endpoint, e: openai.APIStatusError) -> LLMError:
    """Map a non-retryable HTTP error to one clear message."""
    detail = _error_message(e)
    if e.status_code == 401:
        return LLMError(ep.base_url, ep.model, f"HTTP 401 unauthorized ({detail})",
                        "Set OPENAI_API_KEY or pass --api-key with a key this endpoint accepts.")
    if e.status_code == 403:
        return LLMError(ep.base_url, ep.model, f"HTTP 403 forbidden ({detail})",
                        "The key lacks permission for this model or the account has no balance.")
    if e.status_code == 404:
        return LLMError(ep.base_url, ep.model, f"HTTP 404 ({detail})",
                        f"Check the model name (GET {ep.base_url}/models lists what is served) and that "
                        "the base URL ends in /v1.")
    return RequestRejected(ep.base_url, ep.model, e.status_code, detail)


def _error_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return e.message


def check_endpoint(ep: Endpoint) -> None:
    """Fail in seconds, with LLMError, if the endpoint is unreachable, refuses the key, or does not serve
    the model."""
    client = _client(ep, CHECK_TIMEOUT_S)
    try:
        ids = [m.id for m in client.models.list()]
    except openai.APIConnectionError as e:
        raise LLMError(ep.base_url, ep.model, f"unreachable ({type(e).__name__}: {e})", VLLM_HINT) from None
    except openai.APIStatusError as e:
        raise _status_error(ep, e) from None
    finally:
        client.close()
    if ep.model not in ids:
        raise LLMError(ep.base_url, ep.model, "model not served",
                       f"This endpoint serves: {', '.join(ids) or '(nothing)'}; pass --model with one of them.")


class _Incomplete(Exception):
    """The server answered 200 but the reply was cut off (no choices / no finish); worth a retry."""


def _retryable(e: BaseException) -> bool:
    if isinstance(e, openai.APIStatusError):
        return e.status_code in RETRY_STATUS
    # connection errors and timeouts; a bare APIError is an error event in the middle of a stream
    return isinstance(e, openai.APIConnectionError | openai.APIError | _Incomplete)


def _retry_after(e: BaseException | None) -> float | None:
    if not isinstance(e, openai.APIStatusError):
        return None
    value = e.response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP_S) if value is not None else None
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def _wait(state: RetryCallState) -> float:
    after = _retry_after(state.outcome.exception() if state.outcome else None)
    if after is not None:
        return after
    # exponential backoff with full jitter on top, so parallel clients do not retry in step
    base = min(BACKOFF_INITIAL_S * 2 ** (state.attempt_number - 1), BACKOFF_MAX_S)
    return base + random.uniform(0, base)


class OpenAIModel:
    """A `Model` backed by any OpenAI-compatible chat-completions endpoint, with Kimi K2.6 defaults."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.name = ep.model
        self.provider = provider_for(ep.base_url)
        self.client = _client(ep, ep.timeout_s)
        # Everything sent besides messages and tools; recorded by RecordingModel (no key in here).
        self.settings: dict[str, Any] = {
            self.provider.max_tokens_param: ep.max_tokens,
            "tool_choice": "auto",
            "stream": ep.stream,
            "extra_body": self.provider.thinking_body(ep.thinking),
        }
        if self.provider.send_sampling:
            self.settings.update(SAMPLING[ep.thinking])
        if ep.stream:
            self.settings["stream_options"] = {"include_usage": True}

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str) -> Reply:
        def before_sleep(state: RetryCallState) -> None:
            e = state.outcome.exception() if state.outcome else None
            log.warning("LLM %s (%s) [%s] attempt %d failed: %s; retrying in %.1fs", self.ep.base_url,
                        self.name, tag, state.attempt_number, e, state.next_action.sleep if state.next_action else 0)

        retrying = Retrying(
            retry=retry_if_exception(_retryable), wait=_wait, stop=stop_after_attempt(self.ep.retries + 1),
            before_sleep=before_sleep, reraise=True,
        )
        try:
            return retrying(self._once, messages, tools)
        except openai.APIStatusError as e:
            if _retryable(e):
                raise self._exhausted(e) from None
            raise _status_error(self.ep, e) from None
        except (openai.APIError, _Incomplete) as e:
            raise self._exhausted(e) from None

    def _exhausted(self, e: BaseException) -> LLMError:
        advice = VLLM_HINT if isinstance(e, openai.APIConnectionError) else "The run can be resumed later."
        return LLMError(self.ep.base_url, self.name,
                        f"gave up after {self.ep.retries + 1} attempts, last error {type(e).__name__}: {e}", advice)

    def _once(self, messages: list[dict], tools: list[dict]) -> Reply:
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages, **self.settings}
        if tools:
            kwargs["tools"] = tools
        else:
            kwargs.pop("tool_choice")
        if not self.ep.stream:
            resp = self.client.chat.completions.create(**kwargs).model_dump()
            if not resp.get("choices"):
                raise _Incomplete("response without choices")
            choice = resp["choices"][0]
            msg = choice.get("message") or {}
            calls = tuple(
                ToolCall(c.get("id") or "", c["function"]["name"] or "", c["function"].get("arguments") or "")
                for c in msg.get("tool_calls") or []
            )
            return Reply(msg.get("content") or "", _reasoning(msg), calls,
                         choice.get("finish_reason") or "", Usage.from_wire(resp.get("usage")))
        with self.client.chat.completions.create(**kwargs) as stream:
            return _assemble(chunk.model_dump() for chunk in stream)


def _reasoning(d: dict) -> str:
    return d.get("reasoning") or d.get("reasoning_content") or ""


def _assemble(chunks: Any) -> Reply:
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
        raise _Incomplete("stream ended without a finish_reason")
    tool_calls = tuple(
        ToolCall(c["id"], c["name"], "".join(c["arguments"])) for _, c in sorted(calls.items())
    )
    return Reply("".join(content), "".join(reasoning), tool_calls, finish, Usage.from_wire(usage))


# ----------------------------------------------------------------------------- record and replay


def _tools_sha256(tools: list[dict]) -> str:
    return hashlib.sha256(json.dumps(tools, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


MAX_OPEN_CONVERSATIONS = 64  # conversations whose last request is kept for deltas (lanes run a few at once)


class RecordingModel:
    """Wraps a Model; appends one JSON line per exchange to `path` (flushed and fsynced, so a killed run
    loses nothing). The full tools list is stored once per distinct list, later only its sha256."""

    def __init__(self, inner: Model, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self.seq = 0
        self._tools_stored: set[str] = set()
        # per conversation (tag): seq and messages of its previous request, plus the reply; a few
        # conversations run at once with lanes, so deltas are taken per tag
        self._last: dict[str, tuple[int, list[dict]]] = {}
        self._lock = threading.Lock()
        if path.exists():  # resuming: continue the numbering, do not repeat stored tool lists
            for line in _lines(path):
                rec = json.loads(line) if line.strip() else {}
                if "response" in rec:
                    self.seq = max(self.seq, int(rec.get("seq", self.seq)) + 1)
                if "tools" in rec.get("request", {}):
                    self._tools_stored.add(rec["request"]["tools_sha256"])

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str) -> Reply:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        reply = self.inner.complete(messages, tools, tag=tag)
        duration = time.perf_counter() - t0
        with self._lock:
            self._write(tag, messages, tools, reply, started, duration)
        return reply

    def _write(self, tag: str, messages: list[dict], tools: list[dict], reply: Reply, started: datetime,
               duration: float) -> None:
        sha = _tools_sha256(tools)
        request: dict[str, Any] = {"model": self.inner.name, "tools_sha256": sha,
                                   "tool_call_ids": _tool_result_ids(messages)}
        # A conversation only appends, so store what is new since its previous request (full requests
        # come back with `request_messages`); storing every history whole would grow quadratically.
        last = self._last.pop(tag, None)
        if last and messages[: len(last[1])] == last[1]:
            request["messages_from"] = {"seq": last[0], "count": len(last[1])}
            request["messages_added"] = messages[len(last[1]):]
        else:
            request["messages"] = messages
        self._last[tag] = (self.seq, [*messages, reply.as_message()])
        while len(self._last) > MAX_OPEN_CONVERSATIONS:  # oldest first: dicts keep insertion order
            self._last.pop(next(iter(self._last)))
        if sha not in self._tools_stored:
            request["tools"] = tools
            self._tools_stored.add(sha)
        request.update(getattr(self.inner, "settings", {}))
        record = {"seq": self.seq, "tag": tag, "time": started.isoformat(timespec="milliseconds"),
                  "duration_s": round(duration, 3), "request": request, "response": reply.to_json()}
        with self.path.open("a") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.seq += 1


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        yield from f


def request_messages(path: Path) -> Iterator[tuple[dict, list[dict]]]:
    """Every recorded exchange with its request's full message list, rebuilt from the deltas."""
    last: dict[str, tuple[int, list[dict]]] = {}  # per tag, as RecordingModel writes them
    for line in _lines(path):
        rec = json.loads(line) if line.strip() else {}
        req = rec.get("request")
        if req is None:
            continue
        before = last.pop(rec.get("tag", ""), None)
        if "messages" in req:
            messages = req["messages"]
        elif before is not None and req["messages_from"]["seq"] == before[0]:
            messages = before[1][: req["messages_from"]["count"]] + req["messages_added"]
        else:
            raise ValueError(f"{path}: exchange {rec.get('seq')} refers to a missing earlier exchange")
        yield rec, messages
        last[rec.get("tag", "")] = (rec["seq"], [*messages, Reply.from_json(rec["response"]).as_message()])
        while len(last) > MAX_OPEN_CONVERSATIONS:
            last.pop(next(iter(last)))


def _tool_result_ids(messages: list[dict]) -> list[str]:
    return [m.get("tool_call_id", "") for m in messages if m.get("role") == "tool"]


class ReplayModel:
    """Answers from a recorded llm.jsonl or a scripted transcript, in order, checking that each request
    still fits the recorded conversation."""

    def __init__(self, path: Path, start: int = 0) -> None:
        self.path = path
        self.name = f"replay:{path}"
        self.records = [
            rec for rec in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            if "response" in rec
        ]
        if start > len(self.records):
            raise ReplayExhausted(f"{path}: cannot start at reply {start}, only {len(self.records)} recorded")
        self.position = start  # replies consumed so far; a resumed or forked run continues from here
        self._used = set(range(start))
        self._first = start  # no reply before this one is unused
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str) -> Reply:
        with self._lock:
            n = self._next(tag)
            rec = self.records[n]
            if "request" in rec:
                # Tool result *contents* may differ (timings change on re-measure); their ids may not.
                want = rec["request"].get("tool_call_ids") or _tool_result_ids(rec["request"].get("messages", []))
                got = _tool_result_ids(messages)
                if want != got:
                    raise ReplayDiverged(
                        f"{self.path}: at reply {n} (tag {tag}) the recorded request had {len(want)} tool results "
                        f"{want[-3:]}, this one has {len(got)} {got[-3:]}"
                    )
            self._used.add(n)
            self.position += 1
            return Reply.from_json(rec["response"])

    def _next(self, tag: str) -> int:
        """The first unused reply of this conversation. With one lane that is simply the next reply; with
        several, conversations interleave differently on every run, so replies are matched by tag."""
        while self._first in self._used:
            self._first += 1
        if self._first >= len(self.records):
            raise ReplayExhausted(f"{self.path}: all {len(self.records)} recorded replies used (asked for tag {tag})")
        for i in range(self._first, len(self.records)):
            if i not in self._used and self.records[i].get("tag", tag) == tag:
                return i
        raise ReplayDiverged(f"{self.path}: expected tag {self.records[self._first]['tag']} got {tag} "
                             f"at reply {self._first}")


# ----------------------------------------------------------------------------- construction


def normalize_base_url(url: str) -> str:
    """Accept 'http://host:8000' as well as 'http://host:8000/v1'."""
    url = url.rstrip("/")
    last = urlsplit(url).path.rsplit("/", 1)[-1]
    if not (last.startswith("v") and last[1:].isdigit()):
        url += "/v1"
    return url


def make_model(llm: str | None, model: str | None, api_key: str | None) -> Model:
    """`llm`: None for the local vLLM default, "replay:PATH", or a base URL."""
    if llm and llm.startswith("replay:"):
        return ReplayModel(Path(llm.removeprefix("replay:")))
    key = api_key or env_api_key() or "EMPTY"
    sh.register_secret(key)
    base = normalize_base_url(llm) if llm else Endpoint.base_url
    return OpenAIModel(Endpoint(base_url=base, model=model or provider_for(base).default_model, api_key=key))
