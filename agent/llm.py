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
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import openai

log = logging.getLogger("nightshift.llm")

VLLM_HINT = (
    "Serve Kimi K2.6 with: vllm serve moonshotai/Kimi-K2.6 --tool-call-parser kimi_k2 "
    "--enable-auto-tool-choice --reasoning-parser kimi_k2 --trust-remote-code "
    "(SGLang: same parsers), or pass --llm URL / --model NAME for another endpoint."
)
OTHER_HINT = "Start the server (or check its log), or pass --llm URL / --model NAME for another endpoint."
# The server is down, restarting or overloaded: waited out for the endpoint's patience.
OUTAGE_STATUS = frozenset({408, 429, 502, 503, 504, 529})
# The server answered but failed on this request (500 on a reply it could not parse): a few retries,
# then the request counts as rejected, which the run records as a model error.
SERVER_ERROR_STATUS = frozenset({409, 500})
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer is treated as an outage; backoff continues
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
CHECK_TIMEOUT_S = 5.0
CHARS_PER_TOKEN = 4  # the stated estimate when neither the server's usage nor its tokenizer is available


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


# ----------------------------------------------------------------------------- the live model


class Model(Protocol):
    name: str

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str,
                 schema: dict | None = None) -> Reply: ...
    # schema: {"name": ..., "schema": JSON schema} that the reply's content must follow; a server that
    # supports `response_format` enforces it, others get the tools as usual (the caller validates anyway).


@dataclass(frozen=True)
class Endpoint:
    base_url: str = "http://localhost:8000/v1"
    model: str = "moonshotai/Kimi-K2.6"
    api_key: str = field(default="", repr=False)  # from OPENAI_API_KEY, or "EMPTY"; NEVER recorded or logged
    thinking: bool = True
    max_tokens: int = 32768  # reasoning and answer share this budget
    timeout_s: float = 600  # per read; streaming keeps long generations under it
    retries: int = 3  # for a server that answers 500 to this request; outages are waited out instead
    stream: bool = True
    patience_s: float = 1800.0  # an unreachable or overloaded endpoint is waited out this long
    backoff_max_s: float = BACKOFF_MAX_S


@dataclass(frozen=True)
class Provider:
    """How one family of servers wants Kimi's knobs set."""

    name: str
    hosts: tuple[str, ...]
    default_model: str
    max_tokens_param: str
    send_sampling: bool  # Moonshot fixes temperature/top_p itself for K2.x
    thinking_body: Callable[[bool], dict]
    hint: Callable[[str], str]  # advice when the endpoint is unreachable, given the model name


def _self_hosted_hint(model: str) -> str:
    return VLLM_HINT if "kimi" in model.lower() else OTHER_HINT


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "moonshot", ("api.moonshot.ai", "api.moonshot.cn", "api.kimi.com"), "kimi-k2.6",
        "max_completion_tokens", False,
        lambda on: {"thinking": {"type": "enabled" if on else "disabled"}},
        lambda model: "Check the network and the provider's status page; the run can be resumed later.",
    ),
    # vLLM / SGLang / llama.cpp: the Kimi chat template reads `thinking` (not `enable_thinking`, which
    # leaks the chain of thought into content on some deployments); other templates ignore it.
    Provider(
        "self-hosted", (), "moonshotai/Kimi-K2.6", "max_tokens", True,
        lambda on: {"chat_template_kwargs": {"thinking": on}},
        _self_hosted_hint,
    ),
)
SAMPLING = {True: {"temperature": 1.0, "top_p": 0.95}, False: {"temperature": 0.6, "top_p": 0.95}}


def provider_for(base_url: str) -> Provider:
    host = urlsplit(base_url).hostname or ""
    return next((p for p in PROVIDERS if host in p.hosts), PROVIDERS[-1])


def env_api_key() -> str | None:
    """OPENAI_API_KEY, moved out of os.environ when first seen (at import): no child process ever inherits
    it (start-up registers it with tools.sh, which drops it from every environment and redacts it from every output)."""
    global _ENV_KEY
    if "OPENAI_API_KEY" in os.environ:
        _ENV_KEY = os.environ.pop("OPENAI_API_KEY") or None
    return _ENV_KEY


_ENV_KEY: str | None = None
env_api_key()


def _api_key(ep: Endpoint) -> str:
    return ep.api_key or env_api_key() or "EMPTY"


def _client(ep: Endpoint, timeout: float) -> openai.OpenAI:
    # max_retries=0: our own loop is the only retry layer, so Retry-After, counts and patience are ours.
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
        raise LLMError(ep.base_url, ep.model, f"unreachable ({type(e).__name__}: {e})",
                       provider_for(ep.base_url).hint(ep.model)) from None
    except openai.APIStatusError as e:
        raise _status_error(ep, e) from None
    finally:
        client.close()
    if ep.model not in ids:
        raise LLMError(ep.base_url, ep.model, "model not served",
                       f"This endpoint serves: {', '.join(ids) or '(nothing)'}; pass --model with one of them.")


def response_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": schema["name"], "schema": schema["schema"], "strict": True}}


PROBE_SCHEMA = {"name": "probe", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}},
                                            "required": ["ok"], "additionalProperties": False}}


def probe_structured_output(ep: Endpoint) -> bool:
    """Does the server accept `response_format` with a JSON schema? One tiny request, once per run: a
    400/422 means no; an answer means yes. (vLLM, SGLang and llama.cpp accept it.)"""
    provider = provider_for(ep.base_url)
    client = _client(ep, 60.0)
    try:
        client.chat.completions.create(
            model=ep.model, messages=[{"role": "user", "content": 'Answer {"ok": true}'}],
            response_format=response_format(PROBE_SCHEMA),  # type: ignore[arg-type]
            extra_body={provider.max_tokens_param: 8, **provider.thinking_body(False)})
        return True
    except openai.APIStatusError as e:
        if e.status_code in (400, 404, 422, 500, 501):
            return False
        raise _status_error(ep, e) from None
    except openai.APIError:
        return False
    finally:
        client.close()


class _Incomplete(Exception):
    """The server answered 200 but the reply was cut off (no choices / no finish)."""


class _StreamBroken(Exception):
    """A stream failed in the middle of an HTTP 200 response."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def _kind(e: BaseException) -> str:
    """outage (wait it out) | server-error (a few retries) | fatal."""
    if isinstance(e, openai.APIStatusError):
        if e.status_code in OUTAGE_STATUS:
            return "outage"
        return "server-error" if e.status_code in SERVER_ERROR_STATUS or e.status_code >= 500 else "fatal"
    if isinstance(e, openai.APIConnectionError) or _transport_error(e):
        return "outage"  # refused, reset, timed out: the server is down or restarting
    if isinstance(e, openai.APIError | _Incomplete):
        return "server-error"
    return "fatal"


def _transport_error(e: BaseException) -> bool:
    """A connection dropped while a response was being read: the SDK's HTTP library raises its own
    exception types there (httpx or its successor, by SDK version), unwrapped."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11")


def _retry_after(e: BaseException | None) -> float | None:
    if not isinstance(e, openai.APIStatusError):
        return None
    value = e.response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP_S) if value is not None else None
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def backoff(n: int, cap: float, initial: float = BACKOFF_INITIAL_S) -> float:
    """The n-th wait (n >= 1): exponential, capped, plus up to as much again of jitter (parallel clients
    then do not retry in step)."""
    base = min(initial * 2 ** (n - 1), cap)
    return base + random.uniform(0, base)


class OpenAIModel:
    """A `Model` backed by any OpenAI-compatible chat-completions endpoint, with Kimi K2.6 defaults.

    Once a run has started, an outage (refused connections, timeouts, 502/503/504/429) is waited out for
    `Endpoint.patience_s` with capped backoff and a progress line; a stream that breaks in the middle of a
    200 response is retried without streaming, and streaming stays off for the rest of the run."""

    def __init__(self, ep: Endpoint, *, structured: bool = False) -> None:
        self.ep = ep
        self.name = ep.model
        self.provider = provider_for(ep.base_url)
        self.client = _client(ep, ep.timeout_s)
        self.structured = structured  # the server enforces response_format (probed once per run)
        self.stream = ep.stream
        self.tokenizer: bool | None = None  # the server's /tokenize works (probed on first need)
        self.on_notice: Callable[[str], None] = lambda text: log.warning("%s", text)
        self.cancelled: Callable[[], bool] = lambda: False  # the run is stopping: stop waiting
        self.sleep: Callable[[float], None] = time.sleep
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

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
        down_since: float | None = None  # wall-clock start of the current outage
        waits = failures = 0
        while True:
            try:
                reply = self._attempt(messages, tools, schema)
            except Exception as e:  # classified below; anything unknown is re-raised as it is
                kind = _kind(e)
                if kind == "fatal":
                    if isinstance(e, openai.APIStatusError):
                        raise _status_error(self.ep, e) from None
                    raise
                if kind == "server-error":
                    failures += 1
                    if failures > self.ep.retries:
                        status = e.status_code if isinstance(e, openai.APIStatusError) else 200
                        raise RequestRejected(self.ep.base_url, self.name, status,
                                              f"failed {failures} times: {_describe(e)}") from None
                    self._wait(backoff(failures, self.ep.backoff_max_s), f"[{tag}] server error ({_describe(e)})")
                    continue
                now = time.time()
                down_since = down_since or now
                waits += 1
                if now - down_since >= self.ep.patience_s:
                    raise LLMError(
                        self.ep.base_url, self.name,
                        f"down since {_clock(down_since)}, for longer than the endpoint patience of "
                        f"{self.ep.patience_s:g} s (last error {_describe(e)})",
                        self.provider.hint(self.name) + " The run is resumable: `optimize resume RUN`.") from None
                delay = _retry_after(e)
                delay = backoff(waits, self.ep.backoff_max_s) if delay is None else delay
                delay = max(0.0, min(delay, down_since + self.ep.patience_s - now))
                self._wait(delay, f"endpoint down since {_clock(down_since)}, next try in {delay:.0f} s "
                                  f"[{tag}] ({_describe(e)})")
                continue
            if down_since is not None:
                self.on_notice(f"endpoint back after {time.time() - down_since:.0f} s; continuing [{tag}]")
            if not (reply.usage.prompt_tokens or reply.usage.completion_tokens):
                reply = replace(reply, usage=self._count(messages, tools, reply))
            return reply

    def _wait(self, seconds: float, notice: str) -> None:
        self.on_notice(notice)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.cancelled():
                raise Cancelled()
            self.sleep(min(left, 0.5))
        if self.cancelled():
            raise Cancelled()

    def _attempt(self, messages: list[dict], tools: list[dict], schema: dict | None) -> Reply:
        if not self.stream:
            return self._once(messages, tools, schema, stream=False)
        try:
            return self._once(messages, tools, schema, stream=True)
        except _StreamBroken as broken:
            # Some servers (llama.cpp with automatic tool calls) fail in the middle of a 200 stream and
            # answer the same request fine without streaming. If that works, stream no more this run.
            reply = self._once(messages, tools, schema, stream=False)
            self.stream = False
            self.settings["stream"] = False
            self.settings.pop("stream_options", None)
            self.on_notice(f"the server broke a streamed reply ({broken}); the same request without "
                           "streaming worked, so this run streams no more")
            return reply

    def _once(self, messages: list[dict], tools: list[dict], schema: dict | None, *, stream: bool) -> Reply:
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages, **self.settings, "stream": stream}
        if not stream:
            kwargs.pop("stream_options", None)
        if schema is not None and self.structured:
            kwargs["response_format"] = response_format(schema)
            tools = []  # servers refuse tools and a schema together; the schema is the whole answer
        if tools:
            kwargs["tools"] = tools
        else:
            kwargs.pop("tool_choice")
        if not stream:
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
        with self.client.chat.completions.create(**kwargs) as response:
            chunks: list[dict] = []
            try:
                for chunk in response:
                    chunks.append(chunk.model_dump())
            except Exception as e:
                if isinstance(e, openai.APIStatusError) or not (isinstance(e, openai.APIError) or _transport_error(e)):
                    raise
                raise _StreamBroken(e) from e
        try:
            return _assemble(chunks)
        except _Incomplete as e:
            raise _StreamBroken(e) from e

    # --- token counts when the server reports none -------------------------------------------------

    def _count(self, messages: list[dict], tools: list[dict], reply: Reply) -> Usage:
        """Token counts for a reply that came without usage: the server's own tokenizer (`POST /tokenize`
        as llama.cpp and vLLM serve it) when there is one, else ~4 characters a token, marked as such."""
        prompt = json.dumps(messages, ensure_ascii=False) + (json.dumps(tools) if tools else "")
        completion = reply.content + reply.reasoning + "".join(c.name + c.arguments for c in reply.tool_calls)
        if self.tokenizer is not False:
            counts = [self._tokenize(prompt), self._tokenize(completion)]
            if None not in counts:
                self.tokenizer = True
                return Usage(counts[0] or 0, counts[1] or 0, 0, "tokenizer")
            if self.tokenizer is None:
                self.on_notice("the server reports no token usage and has no /tokenize endpoint; token counts "
                               f"are estimated at {CHARS_PER_TOKEN} characters a token")
            self.tokenizer = False
        return Usage(-(-len(prompt) // CHARS_PER_TOKEN), -(-len(completion) // CHARS_PER_TOKEN), 0, "estimate")

    def _tokenize(self, text: str) -> int | None:
        if not text:
            return 0
        root = self.ep.base_url.rstrip("/").rsplit("/", 1)[0]  # /tokenize sits beside /v1, not under it
        request = urllib.request.Request(
            f"{root}/tokenize", json.dumps({"model": self.name, "prompt": text, "content": text}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {_api_key(self.ep)}"})
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


def _describe(e: BaseException) -> str:
    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}: {_clip(_error_message(e), 160)}"
    if isinstance(e, _StreamBroken):
        return f"stream broken: {_clip(str(e), 160)}"
    return f"{type(e).__name__}: {_clip(str(e), 160)}"


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M")


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
                if "response" in rec or "rejected" in rec:
                    self.seq = max(self.seq, int(rec.get("seq", self.seq)) + 1)
                if "tools" in rec.get("request", {}):
                    self._tools_stored.add(rec["request"]["tools_sha256"])

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            reply = self.inner.complete(messages, tools, tag=tag, schema=schema)
        except RequestRejected as e:  # recorded too, so a replay meets the same refusal at the same point
            with self._lock:
                self._write(tag, messages, tools, e, started, time.perf_counter() - t0, schema)
            raise
        duration = time.perf_counter() - t0
        with self._lock:
            self._write(tag, messages, tools, reply, started, duration, schema)
        return reply

    def _write(self, tag: str, messages: list[dict], tools: list[dict], reply: Reply | RequestRejected,
               started: datetime, duration: float, schema: dict | None = None) -> None:
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
        if isinstance(reply, Reply):
            self._last[tag] = (self.seq, [*messages, reply.as_message()])
        else:
            self._last[tag] = (self.seq, list(messages))
        while len(self._last) > MAX_OPEN_CONVERSATIONS:  # oldest first: dicts keep insertion order
            self._last.pop(next(iter(self._last)))
        if sha not in self._tools_stored:
            request["tools"] = tools
            self._tools_stored.add(sha)
        request.update(getattr(self.inner, "settings", {}))
        if schema is not None and getattr(self.inner, "structured", False):
            request["response_format"] = response_format(schema)  # and no tools were sent with it
        record = {"seq": self.seq, "tag": tag, "time": started.isoformat(timespec="milliseconds"),
                  "duration_s": round(duration, 3), "request": request}
        if isinstance(reply, Reply):
            record["response"] = reply.to_json()
        else:
            record["rejected"] = {"status": reply.status, "message": reply.detail}
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
        answer = [Reply.from_json(rec["response"]).as_message()] if "response" in rec else []
        last[rec.get("tag", "")] = (rec["seq"], [*messages, *answer])
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
            if "response" in rec or "rejected" in rec
        ]
        if start > len(self.records):
            raise ReplayExhausted(f"{path}: cannot start at reply {start}, only {len(self.records)} recorded")
        self.position = start  # replies consumed so far; a resumed or forked run continues from here
        self._used = set(range(start))
        self._first = start  # no reply before this one is unused
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
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
            if "rejected" in rec:
                raise RequestRejected(self.name, rec.get("request", {}).get("model", ""),
                                      int(rec["rejected"].get("status", 400)), rec["rejected"].get("message", ""))
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


def endpoint_for(llm: str | None, model: str | None, api_key: str | None = None, **settings: Any) -> Endpoint:
    """The endpoint a run talks to: `llm` is None for the local vLLM default or a base URL; without
    `model`, the provider's own default (Moonshot's API serves `kimi-k2.6`, not the HF repo id)."""
    base = normalize_base_url(llm) if llm else Endpoint.base_url
    key = api_key or env_api_key() or "EMPTY"
    return Endpoint(base_url=base, model=model or provider_for(base).default_model, api_key=key, **settings)


def make_model(llm: str | None, model: str | None, api_key: str | None, **settings: Any) -> Model:
    """`llm`: None for the local vLLM default, "replay:PATH", or a base URL."""
    if llm and llm.startswith("replay:"):
        return ReplayModel(Path(llm.removeprefix("replay:")))
    return OpenAIModel(endpoint_for(llm, model, api_key, **settings))
