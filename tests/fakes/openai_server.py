"""A real HTTP server that speaks chat completions the way vLLM serving Kimi K2.6 does.

Scripted by a list of replies/faults (consumed one per request) or by a function of the request body,
like pydantic-ai's FunctionModel. It records every request body and runs assertion hooks on each;
hook failures are collected and raised when the server is closed.

    with FakeServer([Reply("hi")]) as srv:
        OpenAI(base_url=srv.base_url, api_key="x").chat.completions.create(...)

Also a command: `python -m tests.fakes.openai_server --script FILE.jsonl --port N` serves the replies of
a transcript or llm.jsonl (the ReplayModel format), so `optimize --llm http://127.0.0.1:N/v1` can use it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

DEFAULT_MODEL = "moonshotai/Kimi-K2.6"


@dataclass
class Reply:
    """One scripted answer. finish_reason None means "tool_calls" if there are calls, else "stop"."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, raw arguments string)
    finish_reason: str | None = None
    delay_s: float = 0.0  # sleep before answering (a slow server, or a client timeout)
    cut: bool = False  # streaming: drop the connection after the text, before finish_reason and [DONE]
    stream_error: bool = False  # streaming: an error event after the text, inside the 200 (as llama.cpp does
    #                             when it cannot stream a tool call); the same request unstreamed is answered


@dataclass
class Fault:
    """Answer one request with an HTTP error instead of a reply."""

    status: int = 500
    retry_after: float | None = None
    message: str = "injected fault"
    delay_s: float = 0.0


Step = Reply | Fault
Script = list[Step] | Callable[[dict], Step]
Hook = Callable[[dict, "FakeServer"], None]


class FakeServer:
    def __init__(
        self,
        script: Script,
        *,
        models: tuple[str, ...] = (DEFAULT_MODEL,),
        api_key: str | None = None,
        reasoning_key: Literal["reasoning", "reasoning_content"] = "reasoning",
        hooks: list[Hook] | None = None,
        port: int = 0,
        chunk_chars: int = 7,
        usage: bool = True,
        tokenize: bool = False,
        structured: bool = True,
    ) -> None:
        self.script = script
        self.models = models
        self.api_key = api_key
        self.reasoning_key = reasoning_key
        self.hooks = hooks or []
        self.chunk_chars = chunk_chars  # small, so clients must really assemble fragments
        self.send_usage = usage  # False: like llama.cpp streaming, no token counts at all
        self.tokenize = tokenize  # serve POST /tokenize (llama.cpp's form: {"content"} -> {"tokens"})
        self.structured = structured  # accept response_format json_schema (else 400, as older servers)
        self.tokenized: list[str] = []  # texts sent to /tokenize
        self.probes = 0  # structured-output probes answered
        self.requests: list[dict] = []  # every chat-completions body received, in order
        self.failures: list[str] = []  # hook failures and protocol misuse, reported on close
        self._lock = threading.Lock()
        self._pos = 0
        self._previous_prompt = ""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def check(self) -> None:
        if self.failures:
            raise AssertionError("fake OpenAI server: " + "; ".join(self.failures))

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close()
        if exc_type is None:
            self.check()

    # -- the protocol, called from handler threads

    def next_step(self, body: dict) -> Step | None:
        with self._lock:
            self.requests.append(body)
            for hook in self.hooks:
                try:
                    hook(body, self)
                except AssertionError as e:
                    self.failures.append(f"request {len(self.requests) - 1}: {e}")
            if callable(self.script):
                return self.script(body)
            if self._pos >= len(self.script):
                self.failures.append(f"script exhausted at request {len(self.requests) - 1}")
                return None
            self._pos += 1
            return self.script[self._pos - 1]

    def usage(self, body: dict, reply: Reply) -> dict:
        """Plausible token counts: 4 characters a token; cached = common prefix with the last request."""
        prompt = json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))
        with self._lock:
            prev, self._previous_prompt = self._previous_prompt, prompt
        common = 0
        for a, b in zip(prev, prompt, strict=False):
            if a != b:
                break
            common += 1
        out = len(reply.content) + len(reply.reasoning) + sum(len(n) + len(a) for n, a in reply.tool_calls)
        prompt_tokens = len(prompt) // 4
        completion = out // 4 + 1
        return {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": common // 4},
        }


def tool_call_ids(body: dict, reply: Reply) -> list[str]:
    """Kimi's ids: functions.NAME:IDX, IDX counting the tool calls already in the conversation."""
    seen = sum(len(m.get("tool_calls") or []) for m in body.get("messages", []) if m.get("role") == "assistant")
    return [f"functions.{name}:{seen + i}" for i, (name, _) in enumerate(reply.tool_calls)]


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _pieces(text: str, n: int) -> Iterator[str]:
    for i in range(0, len(text), n):
        yield text[i : i + n]


def _handler(srv: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; SSE ends when the socket closes

        def log_message(self, *_: Any) -> None:  # keep test output quiet
            pass

        def _json(self, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
            self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": status}},
                       headers)

        def _authorized(self) -> bool:
            if srv.api_key is None or self.headers.get("Authorization") == f"Bearer {srv.api_key}":
                return True
            self._error(401, "Invalid API key", "invalid_authentication_error")
            return False

        def do_GET(self) -> None:
            try:
                if self.path.rstrip("/") != "/v1/models":
                    return self._error(404, f"no route {self.path}", "NotFoundError")
                if self._authorized():
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "vllm"} for m in srv.models]
                    self._json(200, {"object": "list", "data": data})
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_POST(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                self._post()

        def _post(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/tokenize"):
                return self._error(404, f"no route {self.path}", "NotFoundError")
            if not self._authorized():
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as e:
                return self._error(400, f"body is not JSON: {e}", "BadRequestError")
            if self.path.rstrip("/") == "/tokenize":
                return self._tokenize(body)
            if body.get("model") not in srv.models:
                # vLLM's wording for an unknown model
                return self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            if body.get("response_format") and not srv.structured:
                return self._error(400, "response_format is not supported", "BadRequestError")
            if ((body.get("response_format") or {}).get("json_schema") or {}).get("name") == "probe":
                srv.probes += 1  # Nightshift's capability probe is answered off-script
                return self._json(200, self._completion(body, Reply('{"ok": true}')))
            step = srv.next_step(body)
            if step is None:
                return self._error(400, "fake server: script exhausted", "BadRequestError")
            time.sleep(step.delay_s)
            if isinstance(step, Fault):
                headers = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
                return self._error(step.status, step.message, "InjectedFault", headers)
            if body.get("stream"):
                self._stream(body, step)
            else:
                self._json(200, self._completion(body, step))

        def _tokenize(self, body: dict) -> None:
            if not srv.tokenize:
                return self._error(404, f"no route {self.path}", "NotFoundError")
            text = str(body.get("content", ""))
            srv.tokenized.append(text)
            self._json(200, {"tokens": list(range(len(text.split())))})  # one token a word: easy to check

        def _completion(self, body: dict, reply: Reply) -> dict:
            ids = tool_call_ids(body, reply)
            message: dict[str, Any] = {"role": "assistant", "content": reply.content or None,
                                       srv.reasoning_key: reply.reasoning or None}
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, (n, a) in zip(ids, reply.tool_calls, strict=True)
            ]
            return {
                "id": f"chatcmpl-{len(srv.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}],
                **({"usage": srv.usage(body, reply)} if srv.send_usage else {}),
            }

        def _stream(self, body: dict, reply: Reply) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            head = {"id": f"chatcmpl-{len(srv.requests)}", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": body["model"]}

            def send(delta: dict, finish: str | None = None) -> None:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                self.wfile.write(f"data: {json.dumps({**head, 'choices': [choice]})}\n\n".encode())
                self.wfile.flush()

            n = srv.chunk_chars
            send({"role": "assistant", "content": ""})
            for piece in _pieces(reply.reasoning, n):
                send({srv.reasoning_key: piece})
            for piece in _pieces(reply.content, n):
                send({"content": piece})
            if reply.cut:
                return
            if reply.stream_error:
                error = {"error": {"message": "Cannot stream a tool call", "type": "server_error", "code": 500}}
                self.wfile.write(f"error: {json.dumps(error)}\ndata: {json.dumps(error)}\n\n".encode())
                self.wfile.flush()
                return
            for index, (call_id, (name, args)) in enumerate(zip(tool_call_ids(body, reply), reply.tool_calls,
                                                                strict=True)):
                send({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                      "function": {"name": name, "arguments": ""}}]})
                for piece in _pieces(args, n):
                    send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            send({}, _finish(reply))
            if (body.get("stream_options") or {}).get("include_usage") and srv.send_usage:
                chunk = {**head, "choices": [], "usage": srv.usage(body, reply)}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


# ----------------------------------------------------------------------------- hooks


def max_prompt_chars(limit: int) -> Hook:
    """Fail any request whose messages and tools serialize to more than `limit` characters."""

    def hook(body: dict, _: FakeServer) -> None:
        size = len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))
        assert size <= limit, f"prompt is {size} characters, over the limit of {limit}"

    return hook


def stable_prefix() -> Hook:
    """System prompt and tool schemas byte-identical across requests, so prefix caching works."""

    def probe(b: dict) -> bool:  # the one structured-output probe of a live run: no system prompt, no tools
        return ((b.get("response_format") or {}).get("json_schema") or {}).get("name") == "probe"

    def hook(body: dict, srv: FakeServer) -> None:  # plans (a JSON schema) and attempts (tools) each keep theirs
        if probe(body):
            return
        first = next(r for r in srv.requests if not probe(r) and ("tools" in r) == ("tools" in body))

        def prefix(b: dict) -> str:
            system = [m for m in b.get("messages", [])[:1] if m.get("role") == "system"]
            return json.dumps(system) + json.dumps(b.get("tools"))

        assert prefix(body) == prefix(first), "system prompt or tools changed since the first request"

    return hook


# ----------------------------------------------------------------------------- transcripts and the command


def load_script(path: Path) -> list[Step]:
    """The replies of a transcript or llm.jsonl file (lines with a "response" key), in order."""
    steps: list[Step] = []
    for line in path.read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if "response" not in rec:
            continue
        r = rec["response"]
        calls = [(c["name"], c.get("arguments", "")) for c in r.get("tool_calls") or []]
        steps.append(Reply(r.get("content") or "", r.get("reasoning") or "", calls, r.get("finish_reason")))
    return steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--script", type=Path, required=True, help="transcript or llm.jsonl to serve replies from")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", action="append", help=f"model id to serve (default {DEFAULT_MODEL})")
    ap.add_argument("--api-key", default=None, help="require this bearer key")
    args = ap.parse_args(argv)
    srv = FakeServer(load_script(args.script), models=tuple(args.model or [DEFAULT_MODEL]),
                     api_key=args.api_key, port=args.port)
    print(f"serving {len(srv.script)} replies from {args.script} at {srv.base_url}", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
        for failure in srv.failures:
            print(f"warning: {failure}", flush=True)


if __name__ == "__main__":
    main()
