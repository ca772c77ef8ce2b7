"""Planning: ask for K strategies as JSON, validate them, send errors back a bounded number of times."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import BaseModel, Field, ValidationError

from agent import prompts
from agent.llm import Model, Reply
from agent.toolbox import TOOLS


class Strategy(BaseModel):
    title: str = Field(min_length=3, max_length=200)
    hypothesis: str = ""
    files: list[str] = Field(default_factory=list)
    expected_gain: str = ""


class Plan(BaseModel):
    strategies: list[Strategy] = Field(min_length=1)


class PlanFailed(Exception):
    """No usable plan after the allowed replies; the run records a model-error attempt and goes on."""


def _text(max_length: int) -> dict:
    return {"type": "string", "maxLength": max_length}


# What a server with `response_format` support is held to. Lengths are capped so that a weak model
# cannot ramble inside a string until its token budget runs out (the JSON would never close).
PLAN_SCHEMA = {"name": "plan", "schema": {
    "type": "object", "additionalProperties": False, "required": ["strategies"],
    "properties": {"strategies": {"type": "array", "minItems": 1, "maxItems": 8, "items": {
        "type": "object", "additionalProperties": False,
        "required": ["title", "hypothesis", "files", "expected_gain"],
        "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 80},
                       "hypothesis": _text(240),
                       "files": {"type": "array", "maxItems": 4, "items": _text(100)},
                       "expected_gain": _text(40)}}}}}}


def parse_plan(text: str) -> Plan:
    """The JSON object in the reply (code fences tolerated), validated."""
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ValueError("no JSON object found in the reply")
    try:
        return Plan.model_validate(json.loads(m.group(0)))
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from e
    except ValidationError as e:
        raise ValueError("; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())) from e


def plan(model: Model, system: str, request: str, *, tries: int = 3,
         before_call: Callable[[], None] = lambda: None, on_reply: Callable[[Reply], None] = lambda r: None) -> Plan:
    messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": request}]
    error = "no reply"
    for _ in range(tries):
        before_call()
        reply = model.complete(messages, TOOLS, tag="plan", schema=PLAN_SCHEMA)
        on_reply(reply)
        messages.append(reply.as_message())
        if reply.tool_calls:
            error = "Tools are not available while planning."
            messages += [{"role": "tool", "tool_call_id": c.id, "content": error} for c in reply.tool_calls]
        else:
            try:
                return parse_plan(reply.content)
            except ValueError as e:
                error = str(e)
        messages.append({"role": "user", "content": prompts.PLAN_INVALID.format(error=error)})
    raise PlanFailed(f"no valid plan after {tries} replies: {error}")
