"""The model's tools on a real worktree: confinement, protected paths, capped output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import parse_spec
from agent.target import Target
from agent.toolbox import OUTPUT_LIMIT, Toolbox, ToolError


@pytest.fixture
def box(tmp_path: Path) -> Toolbox:
    wt, outside = tmp_path / "wt", tmp_path / "outside"
    (wt / "src").mkdir(parents=True)
    (wt / "tests").mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET-OUTSIDE\n")
    (wt / "src" / "app.py").write_text("def f():\n    return 1\n")
    (wt / "tests" / "test_app.py").write_text("def test_f():\n    assert True\n")
    (wt / "big.txt").write_text("needle\n" * 50_000)
    (wt / "out").symlink_to(outside)  # a directory symlink leaving the worktree
    (wt / "tlink").symlink_to("tests")  # an in-repo symlink onto a protected folder
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    subprocess.run(["git", "add", "-A"], cwd=wt, check=True)
    # the tests run pytest, so pytest's configuration files are frozen as well as tests/**
    spec = parse_spec({"test": {"cmd": f"echo seed={{seed}}; echo TOKEN=$OPENAI_API_KEY; {sys.executable} -m pytest --version"},
                       "bench": {"cmd": "echo 'rate: 5 op/s'", "metric": {"regex": r"rate: (\d+)"}}}, "t")
    return Toolbox(Target(spec, wt), ["tests/**"], lambda: "profile!", lambda out: "metric: ok")


@pytest.mark.parametrize("path", ["../outside/secret.txt", "src/../../outside/secret.txt", "out/secret.txt",
                                  "/etc/passwd", "out"])
def test_reads_outside_the_worktree_are_refused(box: Toolbox, path: str) -> None:
    with pytest.raises(ToolError, match="outside the repository"):
        box.call("read_file", {"path": path})
    assert box.protected_attempts == []  # reading is refused, not held against the attempt


@pytest.mark.parametrize("path", ["../escape.txt", "src/../../escape.txt", "out/escape.txt", "/tmp/escape.txt"])
def test_writes_outside_are_refused_and_recorded(box: Toolbox, path: str) -> None:
    with pytest.raises(ToolError, match="outside the repository"):
        box.call("write_file", {"path": path, "content": "x"})
    assert not (box.root.parent / "escape.txt").exists() and not (box.root.parent / "outside" / "escape.txt").exists()
    assert box.protected_attempts == [f"{path} (outside the worktree)"]


@pytest.mark.parametrize("path", ["tests/test_app.py", "tests/new_test.py", "tlink/test_app.py", "optimize.toml",
                                  "conftest.py", "src/conftest.py", "pytest.ini", "pyproject.toml"])
def test_protected_writes_are_refused_and_recorded(box: Toolbox, path: str) -> None:
    before = (box.root / "tests" / "test_app.py").read_text()
    with pytest.raises(ToolError, match="protected"):
        box.call("write_file", {"path": path, "content": "x"})
    assert box.protected_attempts and (box.root / "tests" / "test_app.py").read_text() == before
    assert not (box.root / "conftest.py").exists()


def test_git_metadata_is_off_limits(box: Toolbox) -> None:
    with pytest.raises(ToolError, match=".git"):
        box.call("write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\n"})
    with pytest.raises(ToolError, match=".git"):
        box.call("read_file", {"path": ".git/config"})
    assert box.protected_attempts == [".git/hooks/pre-commit (git metadata)"]


def test_edit_and_write_inside(box: Toolbox) -> None:
    assert box.call("edit_file", {"path": "src/app.py", "old": "return 1", "new": "return 2"}) == "edited src/app.py"
    assert "return 2" in (box.root / "src" / "app.py").read_text()
    with pytest.raises(ToolError, match="occurs 0 times"):
        box.call("edit_file", {"path": "src/app.py", "old": "return 1", "new": "x"})
    box.call("write_file", {"path": "src/new/mod.py", "content": "X = 1\n"})
    assert (box.root / "src" / "new" / "mod.py").read_text() == "X = 1\n"
    assert box.protected_attempts == []


def test_search_skips_files_behind_escaping_symlinks(box: Toolbox) -> None:
    (box.root / "leak.txt").symlink_to(box.root.parent / "outside" / "secret.txt")
    subprocess.run(["git", "add", "leak.txt"], cwd=box.root, check=True)
    assert "SECRET-OUTSIDE" not in box.call("search", {"pattern": "SECRET"})
    assert "src/app.py:1" in box.call("search", {"pattern": "def f"})


def test_output_is_capped(box: Toolbox) -> None:
    out = box.call("read_file", {"path": "big.txt"})
    assert len(out) <= OUTPUT_LIMIT + 200 and "cut by nightshift" in out


def test_tests_get_a_fresh_seed_and_no_api_key(box: Toolbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-toolbox-marker")
    first, second = box.call("run_tests", {}), box.call("run_tests", {})
    seeds = [re.search(r"seed=(\d+)", out).group(1) for out in (first, second)]  # type: ignore[union-attr]
    assert seeds[0] != seeds[1] and "sk-toolbox-marker" not in first + second and "PASSED" in first


def test_unknown_tool_and_bad_arguments(box: Toolbox) -> None:
    with pytest.raises(ToolError, match="unknown tool"):
        box.call("rm_rf", {})
    with pytest.raises(ToolError, match="bad arguments"):
        box.call("read_file", {"file": "src/app.py"})


def test_finish_ends_the_attempt(box: Toolbox) -> None:
    box.call("finish", {"summary": "done"})
    assert (box.ended, box.message) == ("finish", "done")
    assert os.path.exists(box.root / "src" / "app.py")
