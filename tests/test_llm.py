"""The LLM layer through the real openai SDK against a real (fake) HTTP server."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.endpoint import Endpoint, endpoint_for, normalize_base_url, provider_for
from agent.llm import (
    Cancelled,
    LLMError,
    ReplayDiverged,
    ReplayExhausted,
    Reply,
    RequestRejected,
    ToolCall,
    Usage,
)
from agent.llm_record import RecordingModel, ReplayModel, request_messages
from agent.openai_client import OpenAIModel, check_endpoint, probe_structured_output
from agent.toolbox import ToolError, parse_args
from agent.transcript import Transcript
from tests.fakes import openai_server as fake

TOOLS = [
    {"type": "function", "function": {"name": "read_file", "description": "Read a file.", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
    {"type": "function", "function": {"name": "run_bench", "description": "Benchmark.", "parameters": {
        "type": "object", "properties": {}}}},
]
SYSTEM = {"role": "system", "content": "You are a performance engineer."}
USER = {"role": "user", "content": "Make it faster."}
KEY = "sk-MARKER-never-record-me-42"


def model_for(srv: fake.FakeServer, **kw: object) -> OpenAIModel:
    return OpenAIModel(Endpoint(base_url=srv.base_url, api_key=KEY, **kw))  # type: ignore[arg-type]


def tool_results(reply: Reply, text: str = "ok") -> list[dict]:
    return [{"role": "tool", "tool_call_id": c.id, "content": text} for c in reply.tool_calls]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- replies


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("reasoning_key", ["reasoning", "reasoning_content"])
def test_reasoning_round_trips_under_both_keys(fake_openai, stream: bool, reasoning_key: str) -> None:
    srv = fake_openai([fake.Reply("", "I should read the hot loop first.", [("read_file", '{"path": "a.py"}')]),
                       fake.Reply("done")], reasoning_key=reasoning_key)
    model = model_for(srv, stream=stream)
    first = model.complete([SYSTEM, USER], TOOLS, tag="attempt-001")
    assert first.reasoning == "I should read the hot loop first."
    history = [SYSTEM, USER, first.as_message(), *tool_results(first)]
    model.complete(history, TOOLS, tag="attempt-001")
    echoed = srv.requests[1]["messages"][2]
    assert echoed["reasoning"] == echoed["reasoning_content"] == "I should read the hot loop first."
    assert echoed["tool_calls"][0]["id"] == "functions.read_file:0"


def test_ids_kept_verbatim_with_a_global_counter(fake_openai) -> None:
    srv = fake_openai([fake.Reply("", "r", [("read_file", '{"path": "b.py"}')]), fake.Reply("done")])
    model = model_for(srv)
    earlier = Reply("", "r0", tuple(ToolCall(f"functions.read_file:{i}", "read_file", '{"path": "x"}')
                                     for i in range(3)), "tool_calls")
    history = [SYSTEM, USER, earlier.as_message(), *tool_results(earlier)]
    reply = model.complete(history, TOOLS, tag="attempt-002")
    assert [c.id for c in reply.tool_calls] == ["functions.read_file:3"]
    history += [reply.as_message(), *tool_results(reply)]
    model.complete(history, TOOLS, tag="attempt-002")
    sent = srv.requests[1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "functions.read_file:3"
    assert sent[-1]["tool_call_id"] == "functions.read_file:3"


@pytest.mark.parametrize("stream", [True, False])
def test_parallel_tool_calls_keep_order_and_arguments(fake_openai, stream: bool) -> None:
    calls = [("read_file", '{"path": "src/a.py"}'), ("run_bench", "{}"), ("read_file", '{"path": "src/b.py"}')]
    srv = fake_openai([fake.Reply("Looking.", "three things at once", calls)])
    reply = model_for(srv, stream=stream).complete([SYSTEM, USER], TOOLS, tag="plan")
    assert [(c.name, c.arguments) for c in reply.tool_calls] == calls
    assert [c.id for c in reply.tool_calls] == ["functions.read_file:0", "functions.run_bench:1",
                                                "functions.read_file:2"]
    assert reply.finish_reason == "tool_calls"
    assert reply.content == "Looking."


@pytest.mark.parametrize("stream", [True, False])
def test_malformed_arguments_reach_the_caller_verbatim(fake_openai, stream: bool) -> None:
    broken = '{"path": "a.py", "lines": [1, 2'
    srv = fake_openai([fake.Reply("", "", [("read_file", broken)])])
    (call,) = model_for(srv, stream=stream).complete([USER], TOOLS, tag="plan").tool_calls
    assert call.arguments == broken
    with pytest.raises(ToolError, match=r"arguments are not valid JSON .*line 1 column"):  # what the model is told
        parse_args(call.arguments)


@pytest.mark.parametrize("stream", [True, False])
def test_finish_reason_length_is_reported(fake_openai, stream: bool) -> None:
    srv = fake_openai([fake.Reply("", "a long chain of thought that ran out", finish_reason="length")])
    reply = model_for(srv, stream=stream).complete([USER], TOOLS, tag="plan")
    assert reply.finish_reason == "length"
    assert reply.content == "" and reply.tool_calls == ()


def test_streaming_and_non_streaming_give_the_same_reply(fake_openai) -> None:
    def script(body: dict) -> fake.Reply:  # a function of the request, FunctionModel style
        n = len(body["messages"])
        return fake.Reply(f"saw {n} messages", "thinking " * 20, [("read_file", json.dumps({"path": f"{n}.py"}))])

    replies = []
    for stream in (True, False):
        srv = fake_openai(script)
        replies.append(model_for(srv, stream=stream).complete([SYSTEM, USER], TOOLS, tag="plan"))
        assert srv.requests[0]["stream"] is stream
    assert replies[0] == replies[1]
    assert replies[0].usage.prompt_tokens > 0 and replies[0].usage.completion_tokens > 0


def test_request_carries_kimi_defaults(fake_openai) -> None:
    srv = fake_openai([fake.Reply("a"), fake.Reply("b")])
    model_for(srv).complete([USER], TOOLS, tag="plan")
    model_for(srv, thinking=False, max_tokens=1000).complete([USER], [], tag="plan")
    on, off = srv.requests
    assert on["chat_template_kwargs"] == {"thinking": True}
    assert (on["temperature"], on["top_p"], on["max_tokens"], on["tool_choice"]) == (1.0, 0.95, 32768, "auto")
    assert on["stream_options"] == {"include_usage": True}
    assert off["chat_template_kwargs"] == {"thinking": False}
    assert (off["temperature"], off["max_tokens"]) == (0.6, 1000)
    assert "tools" not in off and "tool_choice" not in off


def test_provider_quirks_are_data() -> None:
    moonshot = provider_for("https://api.moonshot.ai/v1")
    assert moonshot.thinking_body(True) == {"thinking": {"type": "enabled"}}
    assert moonshot.thinking_body(False) == {"thinking": {"type": "disabled"}}
    assert provider_for("https://api.moonshot.cn/v1").name == "moonshot"
    assert provider_for("http://gpu-box:8000/v1").thinking_body(True) == {"chat_template_kwargs": {"thinking": True}}


def test_cached_tokens_grow_with_a_shared_prefix(fake_openai) -> None:
    srv = fake_openai([fake.Reply("", "r", [("run_bench", "{}")]), fake.Reply("done")])
    model = model_for(srv)
    first = model.complete([SYSTEM, USER], TOOLS, tag="attempt-001")
    second = model.complete([SYSTEM, USER, first.as_message(), *tool_results(first)], TOOLS, tag="attempt-001")
    assert first.usage.cached_tokens == 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


# ----------------------------------------------------------------------------- retries and failures


def test_429_with_retry_after_is_honoured(fake_openai) -> None:
    srv = fake_openai([fake.Fault(429, retry_after=1, message="engine is currently overloaded"), fake.Reply("ok")])
    t0 = time.perf_counter()
    reply = model_for(srv).complete([USER], TOOLS, tag="plan")
    waited = time.perf_counter() - t0
    assert reply.content == "ok"
    assert len(srv.requests) == 2  # exactly one retry: the SDK's own retries are off
    assert 1.0 <= waited < 3.0


def test_500_is_retried_with_backoff(fake_openai) -> None:
    srv = fake_openai([fake.Fault(500), fake.Reply("ok")])
    t0 = time.perf_counter()
    assert model_for(srv, stream=False).complete([USER], TOOLS, tag="plan").content == "ok"
    assert len(srv.requests) == 2
    assert 1.0 <= time.perf_counter() - t0 < 3.0  # first backoff: 1 s plus up to 1 s of jitter


def test_timeout_is_retried(fake_openai) -> None:
    srv = fake_openai([fake.Reply("slow", delay_s=3), fake.Reply("fast")])
    ep = Endpoint(base_url=srv.base_url, api_key=KEY, timeout_s=0.5)
    assert OpenAIModel(ep).complete([USER], TOOLS, tag="plan").content == "fast"
    assert len(srv.requests) == 2


def test_stream_cut_off_midway_is_retried(fake_openai) -> None:
    srv = fake_openai([fake.Reply("half an ans", "thinking", cut=True), fake.Reply("whole answer")])
    reply = model_for(srv).complete([USER], TOOLS, tag="plan")
    assert reply.content == "whole answer" and reply.finish_reason == "stop"
    assert len(srv.requests) == 2


def test_outage_is_waited_out_then_the_patience_ends_it(fake_openai) -> None:
    srv = fake_openai(lambda body: fake.Fault(502, retry_after=0.3))
    model = model_for(srv, patience_s=1.5)
    notices: list[str] = []
    model.on_notice = notices.append
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match=r"down since \d\d:\d\d, for longer than the endpoint patience of 1.5 s") as err:
        model.complete([USER], TOOLS, tag="plan")
    assert 1.5 <= time.perf_counter() - t0 < 4
    assert srv.base_url in str(err.value) and "moonshotai/Kimi-K2.6" in str(err.value)
    assert "optimize resume" in str(err.value)
    assert len(srv.requests) >= 4 and not isinstance(err.value, RequestRejected)
    assert all(re.match(r"endpoint down since \d\d:\d\d, next try in \d+ s \[plan\]", n) for n in notices), notices


def test_outage_longer_than_the_old_retry_window_is_survived(fake_openai) -> None:
    """Eight 503s in a row (the old client gave up after seven tries): the reply still arrives."""
    srv = fake_openai([fake.Fault(503, retry_after=0.1)] * 8 + [fake.Reply("back")])
    model = model_for(srv, patience_s=30)
    notices: list[str] = []
    model.on_notice = notices.append
    assert model.complete([USER], TOOLS, tag="plan").content == "back"
    assert len(srv.requests) == 9
    assert notices[-1].startswith("endpoint back after")


def test_backoff_is_capped(fake_openai) -> None:
    srv = fake_openai([fake.Fault(502)] * 4 + [fake.Reply("ok")])
    model = model_for(srv, patience_s=60, backoff_max_s=0.2)  # waits 0.2-0.4 s each, not 1, 2, 4, 8 s
    t0 = time.perf_counter()
    assert model.complete([USER], TOOLS, tag="plan").content == "ok"
    assert time.perf_counter() - t0 < 3


def test_waiting_stops_when_the_run_stops(fake_openai) -> None:
    srv = fake_openai(lambda body: fake.Fault(503))
    model = model_for(srv, patience_s=600)
    t0 = time.perf_counter()
    model.cancelled = lambda: time.perf_counter() - t0 > 0.5
    with pytest.raises(Cancelled):
        model.complete([USER], TOOLS, tag="plan")
    assert time.perf_counter() - t0 < 3


def test_a_repeated_server_error_is_a_rejected_request(fake_openai) -> None:
    srv = fake_openai([fake.Fault(500, message="Failed to parse input")] * 3)
    with pytest.raises(RequestRejected, match="Failed to parse input") as err:
        model_for(srv, retries=2, backoff_max_s=0.05).complete([USER], TOOLS, tag="plan")
    assert err.value.status == 500 and len(srv.requests) == 3


def test_401_fails_fast_naming_url_and_model(fake_openai) -> None:
    srv = fake_openai([fake.Reply("never")], api_key="the-right-key")
    for call in (lambda: check_endpoint(Endpoint(base_url=srv.base_url, api_key="wrong")),
                 lambda: model_for(srv).complete([USER], TOOLS, tag="plan")):
        t0 = time.perf_counter()
        with pytest.raises(LLMError, match="401") as err:
            call()
        assert time.perf_counter() - t0 < 2
        assert srv.base_url in str(err.value) and "moonshotai/Kimi-K2.6" in str(err.value)
        assert "OPENAI_API_KEY" in str(err.value)
    assert srv.requests == []  # rejected before the script; no retries


def test_right_key_is_accepted(fake_openai) -> None:
    srv = fake_openai([fake.Reply("hi")], api_key=KEY)
    check_endpoint(Endpoint(base_url=srv.base_url, api_key=KEY))
    assert model_for(srv).complete([USER], TOOLS, tag="plan").content == "hi"


def test_unknown_model_fails_fast(fake_openai) -> None:
    srv = fake_openai([fake.Reply("never")], models=("kimi-k2.6", "other"))
    ep = Endpoint(base_url=srv.base_url, model="moonshotai/Kimi-K2.6")
    with pytest.raises(LLMError, match=r"model not served.*kimi-k2\.6, other") as err:
        check_endpoint(ep)
    assert srv.base_url in str(err.value) and "moonshotai/Kimi-K2.6" in str(err.value)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match=r"404.*does not exist") as err:
        OpenAIModel(ep).complete([USER], TOOLS, tag="plan")
    assert time.perf_counter() - t0 < 2
    assert srv.base_url in str(err.value)


def test_bad_request_is_rejected_without_retry(fake_openai) -> None:
    srv = fake_openai([fake.Fault(400, message="exceeded model token limit: 262144")])
    with pytest.raises(RequestRejected, match="token limit") as err:
        model_for(srv).complete([USER], TOOLS, tag="plan")
    assert err.value.status == 400 and len(srv.requests) == 1


def test_unreachable_endpoint_fails_in_seconds() -> None:
    ep = Endpoint(base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=KEY, patience_s=0)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match="unreachable") as err:
        check_endpoint(ep)
    assert "vllm serve moonshotai/Kimi-K2.6 --tool-call-parser kimi_k2" in str(err.value)
    assert ep.base_url in str(err.value)
    with pytest.raises(LLMError, match="vllm serve"):
        OpenAIModel(ep).complete([USER], TOOLS, tag="plan")
    assert time.perf_counter() - t0 < 5
    other = Endpoint(base_url=ep.base_url, model="gemma-3-270m", api_key=KEY, patience_s=0)
    for call in (lambda: check_endpoint(other), lambda: OpenAIModel(other).complete([USER], TOOLS, tag="plan")):
        with pytest.raises(LLMError) as err:
            call()
        assert "vllm" not in str(err.value).lower() and "Kimi" not in str(err.value)  # the hint fits the server


# ----------------------------------------------------------------------------- weak and odd servers


def test_stream_broken_inside_a_200_falls_back_to_non_streaming_for_good(fake_openai) -> None:
    def script(body: dict) -> fake.Reply:  # like llama.cpp: streamed tool calls fail, unstreamed work
        return fake.Reply("", "", [("read_file", '{"path": "a.py"}')], stream_error=bool(body.get("stream")))

    srv = fake_openai(script)
    model = model_for(srv)
    notices: list[str] = []
    model.on_notice = notices.append
    first = model.complete([SYSTEM, USER], TOOLS, tag="attempt-001")
    assert first.tool_calls[0].arguments == '{"path": "a.py"}'
    model.complete([SYSTEM, USER, first.as_message(), *tool_results(first)], TOOLS, tag="attempt-001")
    assert [r["stream"] for r in srv.requests] == [True, False, False]
    assert "stream_options" not in srv.requests[-1]
    assert model.settings["stream"] is False and model.stream is False
    assert len(notices) == 1 and "streams no more" in notices[0]


def test_usage_counted_with_the_servers_tokenizer(fake_openai) -> None:
    srv = fake_openai([fake.Reply("two words")], usage=False, tokenize=True)
    reply = model_for(srv).complete([SYSTEM, USER], TOOLS, tag="plan")
    assert reply.usage.counted == "tokenizer"
    assert reply.usage.completion_tokens == 2  # the fake's tokenizer: one token a word
    assert reply.usage.prompt_tokens == len(srv.tokenized[0].split()) > 10
    assert Reply.from_json(json.loads(json.dumps(reply.to_json()))) == reply  # recorded with its origin


def test_usage_estimated_and_marked_when_the_server_cannot_count(fake_openai) -> None:
    srv = fake_openai([fake.Reply("x" * 40), fake.Reply("y")], usage=False)
    model = model_for(srv, stream=False)
    notices: list[str] = []
    model.on_notice = notices.append
    reply = model.complete([SYSTEM, USER], TOOLS, tag="plan")
    assert (reply.usage.counted, reply.usage.completion_tokens) == ("estimate", 10)
    assert reply.usage.prompt_tokens > 0
    model.complete([SYSTEM, USER], TOOLS, tag="plan")
    assert len(notices) == 1 and "estimated at 4 characters a token" in notices[0]  # said once


def test_server_usage_is_taken_as_reported(fake_openai) -> None:
    srv = fake_openai([fake.Reply("hello")], tokenize=True)
    reply = model_for(srv).complete([SYSTEM, USER], TOOLS, tag="plan")
    assert reply.usage.counted == "" and reply.usage.prompt_tokens > 0 and srv.tokenized == []


@pytest.mark.parametrize("supported", [True, False])
def test_structured_output_is_probed_and_used(fake_openai, supported: bool) -> None:
    plan = json.dumps({"strategies": [{"title": "Cache the parse"}]})
    srv = fake_openai(lambda body: fake.Reply(plan), structured=supported)
    ep = Endpoint(base_url=srv.base_url, api_key=KEY)
    assert probe_structured_output(ep) is supported
    schema = {"name": "plan", "schema": {"type": "object"}}
    OpenAIModel(ep, structured=supported).complete([SYSTEM, USER], TOOLS, tag="plan", schema=schema)
    sent = srv.requests[-1]
    if supported:
        assert sent["response_format"]["json_schema"]["name"] == "plan"
        assert "tools" not in sent and "tool_choice" not in sent  # servers refuse both at once
    else:
        assert "response_format" not in sent and sent["tools"] == TOOLS


def test_a_rejected_request_is_recorded_and_replayed(fake_openai, tmp_path: Path) -> None:
    srv = fake_openai([fake.Reply("ok"), fake.Fault(400, message="exceeds the context size")])
    path = tmp_path / "llm.jsonl"
    rec = RecordingModel(model_for(srv), path)
    rec.complete([SYSTEM, USER], TOOLS, tag="attempt-001")
    with pytest.raises(RequestRejected):
        rec.complete([SYSTEM, USER, {"role": "user", "content": "more"}], TOOLS, tag="attempt-001")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1]["rejected"] == {"status": 400, "message": "exceeds the context size"}
    replay = ReplayModel(path)
    assert replay.complete([SYSTEM, USER], TOOLS, tag="attempt-001").content == "ok"
    with pytest.raises(RequestRejected, match="exceeds the context size"):
        replay.complete([SYSTEM, USER], TOOLS, tag="attempt-001")
    assert [m for _, m in request_messages(path)][1][-1]["content"] == "more"
    assert RecordingModel(model_for(srv), path).seq == 2  # a resumed recording counts the refusal


# ----------------------------------------------------------------------------- record and replay


def test_recording_never_contains_the_key_and_replays(fake_openai, tmp_path: Path) -> None:
    srv = fake_openai([fake.Reply("", "plan it", [("read_file", '{"path": "a.py"}'), ("run_bench", "{}")]),
                       fake.Reply("", "now bench", [("run_bench", "{}")]),
                       fake.Reply('{"strategies": []}', "done")], api_key=KEY)
    log = tmp_path / "llm.jsonl"
    live = RecordingModel(model_for(srv), log)

    def conversation(model, bench_output: str) -> list[Reply]:
        history = [SYSTEM, USER]
        replies = []
        for tag in ("attempt-001", "attempt-001", "plan"):
            reply = model.complete(history, TOOLS, tag=tag)
            replies.append(reply)
            history += [reply.as_message(), *tool_results(reply, bench_output)]
        return replies

    recorded = conversation(live, "1.23 s")
    text = log.read_text()
    assert KEY not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["seq"] for line in lines] == [0, 1, 2]
    assert "tools" in lines[0]["request"] and all("tools" not in line["request"] for line in lines[1:])
    assert len({line["request"]["tools_sha256"] for line in lines}) == 1
    assert lines[0]["request"]["temperature"] == 1.0 and lines[0]["duration_s"] >= 0
    assert Reply.from_json(lines[1]["response"]) == recorded[1]

    replay = ReplayModel(log)
    assert conversation(replay, "1.19 s") == recorded  # tool result contents may differ
    assert replay.position == 3
    with pytest.raises(ReplayExhausted):
        replay.complete([USER], TOOLS, tag="plan")

    # replies are matched by conversation (tag): the plan's reply is found, but not for this request
    with pytest.raises(ReplayDiverged, match=r"at reply 2 \(tag plan\)"):
        ReplayModel(log).complete([SYSTEM, USER], TOOLS, tag="plan")
    with pytest.raises(ReplayDiverged, match="expected tag attempt-001 got attempt-002 at reply 0"):
        ReplayModel(log).complete([SYSTEM, USER], TOOLS, tag="attempt-002")

    forked = ReplayModel(log, start=1)
    wrong = [SYSTEM, USER, recorded[0].as_message(), {"role": "tool", "tool_call_id": "functions.x:9", "content": ""}]
    with pytest.raises(ReplayDiverged, match="at reply 1"):
        forked.complete(wrong, TOOLS, tag="attempt-001")
    assert forked.position == 1  # a diverged request consumes nothing, so a live model can take over here


def test_recording_resumes_numbering(fake_openai, tmp_path: Path) -> None:
    srv = fake_openai([fake.Reply("a"), fake.Reply("b")])
    log = tmp_path / "llm.jsonl"
    RecordingModel(model_for(srv), log).complete([USER], TOOLS, tag="plan")
    RecordingModel(model_for(srv), log).complete([USER], TOOLS, tag="plan")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [0, 1]
    assert "tools" not in lines[1]["request"]


def test_replay_of_a_scripted_transcript(tmp_path: Path) -> None:
    path = tmp_path / "showcase.jsonl"
    (Transcript("hand-written").plan([{"title": "vectorise"}])
     .attempt([("read it", [("read_file", {"path": "a.py"}), ("run_bench", {})]), ("done", [("finish", {})])])
     .write(path))
    model = ReplayModel(path)
    assert json.loads(model.complete([USER], TOOLS, tag="plan").content)["strategies"][0]["title"] == "vectorise"
    step = model.complete([USER], TOOLS, tag="attempt-001")
    assert [c.id for c in step.tool_calls] == ["functions.read_file:0", "functions.run_bench:1"]
    assert model.complete([USER], TOOLS, tag="attempt-001").tool_calls[0].name == "finish"
    with pytest.raises(ReplayExhausted):
        model.complete([USER], TOOLS, tag="attempt-002")


def test_reply_json_round_trip() -> None:
    reply = Reply("c", "r", (ToolCall("functions.a:0", "a", "{bad"),), "tool_calls", Usage(10, 5, 4))
    assert Reply.from_json(json.loads(json.dumps(reply.to_json()))) == reply
    plain = Reply("c", "r", (), "stop", Usage())
    assert "reasoning" not in plain.as_message() and plain.as_message()["content"] == "c"


def test_endpoints_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.kimi.com/coding/v1") == "https://api.kimi.com/coding/v1"
    local = OpenAIModel(endpoint_for(None, None))
    assert (local.ep.base_url, local.name, local.ep.api_key) == ("http://localhost:8000/v1", "moonshotai/Kimi-K2.6", KEY)
    assert KEY not in repr(local.ep)
    moon = OpenAIModel(endpoint_for("https://api.moonshot.ai", None, "k2"))
    assert moon.name == "kimi-k2.6" and moon.ep.api_key == "k2"
    assert endpoint_for("https://api.moonshot.ai/v1", None).model == "kimi-k2.6"
    assert moon.settings["extra_body"] == {"thinking": {"type": "enabled"}} and "temperature" not in moon.settings
    assert endpoint_for("http://h:1", "my-model").model == "my-model"


# ----------------------------------------------------------------------------- the fake server itself


def test_hooks_collect_failures(tmp_path: Path) -> None:
    srv = fake.FakeServer([fake.Reply("a"), fake.Reply("b")], hooks=[fake.stable_prefix(), fake.max_prompt_chars(400)])
    with pytest.raises(AssertionError, match="over the limit of 400"), srv:  # reported on close
        model = model_for(srv)
        model.complete([SYSTEM, USER], TOOLS[:1], tag="plan")
        model.complete([SYSTEM, USER], TOOLS, tag="plan")
    assert len(srv.requests) == 2
    assert [f.split(":")[0] for f in srv.failures] == ["request 1", "request 1"]
    assert "tools changed" in srv.failures[0]


def test_command_serves_a_transcript(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    Transcript("cli").plan([{"title": "x"}], reasoning="why").write(path)
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--script", str(path)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        check_endpoint(Endpoint(base_url=url))
        reply = OpenAIModel(endpoint_for(url, None)).complete([USER], TOOLS, tag="plan")
        assert reply.reasoning == "why" and json.loads(reply.content)["strategies"] == [{"title": "x"}]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_recording_stores_conversation_deltas_and_rebuilds_full_requests(tmp_path, fake_openai) -> None:
    """Histories only grow within a conversation, so each record stores what is new; the full request
    comes back from `request_messages`, byte for byte what was sent."""
    from tests.fakes.openai_server import Reply as FakeReply

    srv = fake_openai([FakeReply("", "r", [("read_file", '{"path": "a"}')]), FakeReply("done", "r2"),
                       FakeReply("other", "r3")])
    model = RecordingModel(OpenAIModel(Endpoint(base_url=srv.base_url, api_key="k")), tmp_path / "llm.jsonl")
    sent = [[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]]
    first = model.complete(sent[0], [], tag="attempt-001")
    sent.append([*sent[0], first.as_message(),
                 {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "x" * 5000}])
    model.complete(sent[1], [], tag="attempt-001")
    sent.append([{"role": "system", "content": "s"}, {"role": "user", "content": "next"}])
    model.complete(sent[2], [], tag="attempt-002")
    lines = (tmp_path / "llm.jsonl").read_text().splitlines()
    assert "messages_added" in json.loads(lines[1])["request"] and "messages" in json.loads(lines[2])["request"]
    assert [messages for _, messages in request_messages(tmp_path / "llm.jsonl")] == sent


def test_interleaved_conversations_record_and_replay_in_any_order(fake_openai, tmp_path: Path) -> None:
    """Lanes: two attempts talk to the model at once, so their exchanges interleave differently each run."""
    srv = fake_openai([fake.Reply("", "a1", [("run_bench", "{}")]), fake.Reply("", "b1", [("run_bench", "{}")]),
                       fake.Reply("a done", "a2"), fake.Reply("b done", "b2")], api_key=KEY)
    log = tmp_path / "llm.jsonl"
    live = RecordingModel(model_for(srv), log)
    a, b = [SYSTEM, USER], [SYSTEM, {"role": "user", "content": "the other strategy"}]

    def step(model, history: list[dict], tag: str) -> Reply:
        reply = model.complete(history, TOOLS, tag=tag)
        history += [reply.as_message(), *tool_results(reply, "1 s")]
        return reply

    recorded = [step(live, a, "attempt-001"), step(live, b, "attempt-002"), step(live, a, "attempt-001"),
                step(live, b, "attempt-002")]
    rebuilt = [messages for _, messages in request_messages(log)]
    assert rebuilt[2][-2:] == a[2:4] and rebuilt[3][1]["content"] == "the other strategy"
    assert "messages_from" in json.loads(log.read_text().splitlines()[2])["request"]  # deltas per conversation

    replay = ReplayModel(log)
    a, b = [SYSTEM, USER], [SYSTEM, {"role": "user", "content": "the other strategy"}]
    order = [step(replay, b, "attempt-002"), step(replay, b, "attempt-002"), step(replay, a, "attempt-001"),
             step(replay, a, "attempt-001")]
    assert order == [recorded[1], recorded[3], recorded[0], recorded[2]]
