"""The house rules, checked on the source: the import layers that keep each part in its one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports() -> dict[str, set[str]]:
    """Every module of agent/ and tools/ -> the modules it imports (at any depth of the file)."""
    out: dict[str, set[str]] = {}
    for path in sorted([*ROOT.glob("agent/**/*.py"), *ROOT.glob("tools/**/*.py")]):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        out[name] = found
    return out


def offenders(rule) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, found in imports().items() for imp in found if rule(mod, imp))


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_tools_never_import_the_agent() -> None:
    """tools/ is what the loop uses on a target; each tool works alone, with no LLM and no agent inside."""
    assert offenders(lambda mod, imp: under(mod, "tools") and under(imp, "agent")) == []


# The model side: the protocol, where the endpoint is, the live client, the wire format, the record.
MODEL_SIDE = ("agent.llm", "agent.endpoint", "agent.openai_client", "agent.wire", "agent.llm_record")


def model_side(name: str) -> bool:
    return any(under(name, m) for m in MODEL_SIDE)


def test_the_verifier_never_talks_to_the_model() -> None:
    assert offenders(lambda mod, imp: under(mod, "agent.verify") and model_side(imp)) == []


def test_the_model_side_never_runs_target_commands() -> None:
    assert offenders(lambda mod, imp: model_side(mod) and under(imp, "tools")) == []


def test_only_the_client_imports_the_openai_sdk() -> None:
    """`import openai` costs ~0.7 s; one module pays it, and only a run with a live endpoint loads that one."""
    assert offenders(lambda mod, imp: mod != "agent.openai_client" and under(imp, "openai")) == []


def test_commands_without_an_endpoint_never_load_the_sdk() -> None:
    """`runs`, `show`, `report`, replays, resumes: the CLI and everything those commands import start
    without the openai SDK (the test suite starts the CLI hundreds of times)."""
    code = ("import sys, agent.cli, agent.show, agent.report, agent.replay, agent.resume\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openai'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ray_is_reached_only_through_the_executor() -> None:
    """Local runs must not import the Ray module; only the executor chooses it."""
    allowed = {"agent.executor", "agent.remote"}
    assert offenders(lambda mod, imp: mod not in allowed and under(imp, "agent.remote")) == []
    assert offenders(lambda mod, imp: mod != "agent.remote" and under(imp, "ray")) == []


def test_the_rule_sees_imports_inside_functions() -> None:
    """The check has teeth: a lazy import inside a function counts as much as one at the top."""
    found = imports()
    assert "tools.profile.pyspy" in found["tools.profile"]  # imported inside _capture()
