"""The live model: any OpenAI-compatible chat-completions endpoint, through the openai SDK, with Kimi
K2.6's defaults (as vLLM/SGLang serve it, and as Moonshot's API does).

The only module that imports `openai` (~0.7 s of start-up): commands that never talk to an endpoint
(`runs`, `show`, `report`, replays) never load it. Here: the start-up checks (`check_endpoint`, the
`response_format` probe), the mapping of HTTP failures to `LLMError`/`RequestRejected`, outages waited
out with backoff, and replies read whole or assembled from a stream.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import openai

from agent.endpoint import SAMPLING, Endpoint, provider_for
from agent.llm import Cancelled, LLMError, Reply, RequestRejected, Usage, env_api_key, response_format
from agent.wire import CHARS_PER_TOKEN, Incomplete, reply_from_chunks, reply_from_response, tokenize

log = logging.getLogger("nightshift.llm")

# The server is down, restarting or overloaded: waited out for the endpoint's patience.
OUTAGE_STATUS = frozenset({408, 429, 502, 503, 504, 529})
# The server answered but failed on this request (500 on a reply it could not parse): a few retries,
# then the request counts as rejected, which the run records as a model error.
SERVER_ERROR_STATUS = frozenset({409, 500})
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer is treated as an outage; backoff continues
BACKOFF_INITIAL_S = 1.0
CHECK_TIMEOUT_S = 5.0


# ----------------------------------------------------------------------------- the client and its start-up checks


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


# ----------------------------------------------------------------------------- what to do about a failure


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
    if isinstance(e, openai.APIError | Incomplete):
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


def _backoff(n: int, cap: float) -> float:
    """The n-th wait (n >= 1): exponential, capped, plus up to as much again of jitter (parallel clients
    then do not retry in step)."""
    base = min(BACKOFF_INITIAL_S * 2 ** (n - 1), cap)
    return base + random.uniform(0, base)


# ----------------------------------------------------------------------------- the model


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
                    self._wait(_backoff(failures, self.ep.backoff_max_s), f"[{tag}] server error ({_describe(e)})")
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
                delay = _backoff(waits, self.ep.backoff_max_s) if delay is None else delay
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
            return reply_from_response(self.client.chat.completions.create(**kwargs).model_dump())
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
            return reply_from_chunks(chunks)
        except Incomplete as e:
            raise _StreamBroken(e) from e

    # --- token counts when the server reports none -------------------------------------------------

    def _count(self, messages: list[dict], tools: list[dict], reply: Reply) -> Usage:
        """Token counts for a reply that came without usage: the server's own tokenizer (`POST /tokenize`
        as llama.cpp and vLLM serve it) when there is one, else ~4 characters a token, marked as such."""
        prompt = json.dumps(messages, ensure_ascii=False) + (json.dumps(tools) if tools else "")
        completion = reply.content + reply.reasoning + "".join(c.name + c.arguments for c in reply.tool_calls)
        if self.tokenizer is not False:
            key = _api_key(self.ep)
            counts = [tokenize(self.ep.base_url, key, self.name, text) for text in (prompt, completion)]
            if None not in counts:
                self.tokenizer = True
                return Usage(counts[0] or 0, counts[1] or 0, 0, "tokenizer")
            if self.tokenizer is None:
                self.on_notice("the server reports no token usage and has no /tokenize endpoint; token counts "
                               f"are estimated at {CHARS_PER_TOKEN} characters a token")
            self.tokenizer = False
        return Usage(-(-len(prompt) // CHARS_PER_TOKEN), -(-len(completion) // CHARS_PER_TOKEN), 0, "estimate")


def _describe(e: BaseException) -> str:
    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}: {_clip(_error_message(e), 160)}"
    if isinstance(e, _StreamBroken):
        return f"stream broken: {_clip(str(e), 160)}"
    return f"{type(e).__name__}: {_clip(str(e), 160)}"


def _clip(s: str, n: int = 200) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M")
