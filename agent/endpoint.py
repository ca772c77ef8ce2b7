"""Where the model is served and how that server wants to be asked: the `Endpoint` a run talks to and
the table of provider quirks (Moonshot's API vs. self-hosted vLLM/SGLang/llama.cpp), kept as data, not `if`s.

No network and no SDK here: agent/openai_client.py does the talking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agent.llm import env_api_key

VLLM_HINT = (
    "Serve Kimi K2.6 with: vllm serve moonshotai/Kimi-K2.6 --tool-call-parser kimi_k2 "
    "--enable-auto-tool-choice --reasoning-parser kimi_k2 --trust-remote-code "
    "(SGLang: same parsers), or pass --llm URL / --model NAME for another endpoint."
)
OTHER_HINT = "Start the server (or check its log), or pass --llm URL / --model NAME for another endpoint."
BACKOFF_MAX_S = 60.0  # the longest wait between two tries of an endpoint that is down


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


# ----------------------------------------------------------------------------- from the command line


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

