"""One strategy's conversation: the model works with tools until it finishes, gives up or runs out."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from agent import prompts
from agent.llm import Model, Reply
from agent.toolbox import TOOLS, Toolbox, ToolError, parse_args


@dataclass
class Conversation:
    tool_calls: int = 0
    ended: str = "budget"  # finish | give_up | budget | stalled
    message: str = ""


def converse(model: Model, toolbox: Toolbox, system: str, brief: str, *, tag: str, max_tool_calls: int,
             before_call: Callable[[], None], on_reply: Callable[[Reply], None],
             on_tool: Callable[[str, str], None] = lambda name, out: None,
             context_limit: int = 160_000) -> Conversation:
    messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": brief}]
    result, nudges, last_call, streak = Conversation(), 0, "", 0
    while result.tool_calls < max_tool_calls:
        before_call()  # budgets and signals are checked before every model call
        reply = model.complete(messages, TOOLS, tag=tag)
        on_reply(reply)
        messages.append(reply.as_message())
        if reply.usage.prompt_tokens + reply.usage.completion_tokens > context_limit:
            messages = compact(model, messages, tag=tag, before_call=before_call, on_reply=on_reply)
        if not reply.tool_calls:
            nudges += 1
            if nudges > 3:
                result.ended = "stalled"
                result.message = f"{nudges} replies without a tool call (last: {_gist(reply)})"
                return result
            messages.append({"role": "user", "content": prompts.CUT_OFF if reply.finish_reason == "length" else prompts.NO_TOOL})
            continue
        for call in reply.tool_calls:
            result.tool_calls += 1
            signature = call.name + json.dumps(call.arguments)
            streak = streak + 1 if signature == last_call else 1
            last_call = signature
            try:
                output = toolbox.call(call.name, parse_args(call.arguments))
            except ToolError as e:
                output = f"error: {e}"
            if streak >= 3:
                output += "\n" + prompts.REPEATED.format(n=streak)
            on_tool(call.name, output)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        if toolbox.ended:
            result.ended, result.message = toolbox.ended, toolbox.message
            return result
        if streak >= 6:
            result.ended = "stalled"
            result.message = f"the same tool call {streak} times in a row ({last_call[:120]})"
            return result
    return result


def compact(model: Model, messages: list[dict], *, tag: str, before_call: Callable[[], None],
            on_reply: Callable[[Reply], None]) -> list[dict]:
    """Near the context limit: a fixed summarising prompt (recorded like any exchange) replaces the
    history after the brief; the system prompt and tools stay byte-identical for prefix caching."""
    pending = messages[-1].get("tool_calls") or []
    history = messages[:-1] if pending else messages  # summarise before the unanswered tool calls
    before_call()
    summary = model.complete(history + [{"role": "user", "content": prompts.COMPACT}], TOOLS, tag=f"{tag}-compact")
    on_reply(summary)
    kept = [*messages[:2], {"role": "user", "content": prompts.COMPACTED.format(summary=summary.content)}]
    return kept + ([messages[-1]] if pending else [])


def _gist(reply: Reply) -> str:
    if reply.finish_reason == "length":
        return "cut off at the token limit"
    text = " ".join((reply.content or reply.reasoning).split())
    return repr(text[:100]) if text else "empty"
