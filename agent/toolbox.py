"""The tools offered to the model during an attempt, and their dispatch onto one worktree.

Schemas are built once and never change during a run (prefix caching). Every path is confined to
the worktree; every output is capped with a visible marker; protected files are refused.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.target import Target, protected_globs
from tools import gitops

OUTPUT_LIMIT = 12_000


def _tool(name: str, description: str, **params: tuple[str, str]) -> dict:
    """params: name -> (json type, description); a description starting with '?' marks it optional."""
    props = {k: {"type": t, "description": d.lstrip("?")} for k, (t, d) in params.items()}
    required = [k for k, (_, d) in params.items() if not d.startswith("?")]
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": props, "required": required},
    }}


TOOLS: list[dict] = [
    _tool("list_files", "List tracked and new files under a folder.",
          path=("string", "?folder relative to the repo root, default '.'"), glob=("string", "?e.g. '*.py'")),
    _tool("read_file", "Read a file with line numbers; optionally a line range.",
          path=("string", "file relative to the repo root"), start=("integer", "?first line, 1-based"),
          end=("integer", "?last line, inclusive")),
    _tool("search", "Search the repo's files with a regular expression; returns file:line: text.",
          pattern=("string", "Python regular expression"), glob=("string", "?limit to files matching this glob")),
    _tool("edit_file", "Replace one exact occurrence of `old` with `new` in a file.",
          path=("string", "file relative to the repo root"), old=("string", "exact text, must occur once"),
          new=("string", "replacement text")),
    _tool("write_file", "Create or overwrite a file.",
          path=("string", "file relative to the repo root"), content=("string", "the whole new content")),
    _tool("run_build", "Build the project; returns the outcome and the log tail."),
    _tool("run_tests", "Run the correctness suite; returns the outcome and the log tail."),
    _tool("run_benchmark", "Run the benchmark once (informative only: the harness measures for real)."),
    _tool("show_profile", "The latest CPU/allocation profile summary of the current best version."),
    _tool("finish", "End the attempt; the harness then verifies your change.",
          summary=("string", "what you changed and why it should be faster")),
    _tool("give_up", "End the attempt without a change worth verifying.", reason=("string", "why")),
]
TOOL_NAMES = {t["function"]["name"] for t in TOOLS}


class ToolError(Exception):
    """A tool call the model got wrong; the message goes back to it."""


def cap(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut by nightshift ...]\n{text[-half:]}"


@dataclass
class Toolbox:
    target: Target
    protected: list[str]
    profile_summary: Callable[[], str]
    metric_of: Callable[[str], str]
    ended: str | None = None  # "finish" or "give_up" once the model ends the attempt
    message: str = ""
    protected_attempts: list[str] = field(default_factory=list)  # refused writes; any one rejects the attempt

    def __post_init__(self) -> None:
        self.protected = list(dict.fromkeys([*self.protected, *protected_globs(self.target.spec)]))

    @property
    def root(self) -> Path:
        return self.target.worktree

    def call(self, name: str, args: dict) -> str:
        if name not in TOOL_NAMES:
            raise ToolError(f"unknown tool '{name}'; available: {', '.join(sorted(TOOL_NAMES))}")
        try:
            return cap(getattr(self, "_" + name)(**args))
        except TypeError as e:
            raise ToolError(f"bad arguments for {name}: {e}") from e

    def _path(self, rel: str, *, writing: bool = False) -> Path:
        root = self.root.resolve()
        if not isinstance(rel, str) or "\0" in rel:
            raise ToolError("a path must be a string relative to the repository root")
        path = (root / rel).resolve()  # resolves '..' and symlinks, so both escapes are caught here
        if path != root and root not in path.parents:
            if writing:
                self.protected_attempts.append(f"{rel} (outside the worktree)")
            raise ToolError(f"'{rel}' is outside the repository; paths are relative to its root")
        relative = path.relative_to(root).as_posix()
        if relative == ".git" or relative.startswith(".git/"):
            if writing:
                self.protected_attempts.append(f"{rel} (git metadata)")
            raise ToolError("the .git folder is off limits")
        # The path as written matters too: 'link/x' through an in-repo symlink to a protected file.
        named = Path(rel).as_posix().lstrip("/")
        if writing and (gitops.matches(relative, self.protected) or gitops.matches(named, self.protected)):
            self.protected_attempts.append(relative)
            raise ToolError(f"'{relative}' is protected (tests, benchmark and spec are frozen); change the code under test instead")
        return path

    def _list_files(self, path: str = ".", glob: str | None = None) -> str:
        base = self._path(path)
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "."],
                             cwd=base, capture_output=True, text=True).stdout.splitlines()
        files = [f for f in out if glob is None or Path(f).match(glob)]
        return "\n".join(files) or "(no files)"

    def _read_file(self, path: str, start: int = 1, end: int | None = None) -> str:
        p = self._path(path)
        if not p.is_file():
            raise ToolError(f"no file '{path}'")
        lines = p.read_text(errors="replace").splitlines()
        end = len(lines) if end is None else min(end, len(lines))
        return "\n".join(f"{n:5d}  {lines[n - 1]}" for n in range(max(1, start), end + 1)) or "(empty range)"

    def _search(self, pattern: str, glob: str | None = None) -> str:
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ToolError(f"bad regular expression: {e}") from e
        hits = []
        for rel in self._list_files(".", glob).splitlines():
            try:
                p = self._path(rel)  # a tracked symlink may point outside the worktree
            except ToolError:
                continue
            if not p.is_file() or p.stat().st_size > 2_000_000:
                continue
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                if rx.search(line):
                    hits.append(f"{rel}:{n}: {line.strip()[:200]}")
                    if len(hits) >= 200:
                        return "\n".join(hits) + "\n[... more matches cut; narrow the pattern ...]"
        return "\n".join(hits) or "(no matches)"

    def _edit_file(self, path: str, old: str, new: str) -> str:
        p = self._path(path, writing=True)
        if not p.is_file():
            raise ToolError(f"no file '{path}'")
        text = p.read_text()
        count = text.count(old)
        if count != 1:
            hint = "read the file again and copy the text exactly" if count == 0 else "include more surrounding lines"
            raise ToolError(f"`old` occurs {count} times in {path}; it must occur exactly once ({hint})")
        p.write_text(text.replace(old, new))
        return f"edited {path}"

    def _write_file(self, path: str, content: str) -> str:
        p = self._path(path, writing=True)
        if p.is_dir():
            raise ToolError(f"'{path}' is a folder")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        return f"wrote {path} ({len(content.splitlines())} lines)"

    def _run_build(self) -> str:
        result = self.target.build()
        if result is None:
            return "this target has no build step"
        return f"build {'OK' if result.ok else 'FAILED'} ({result.wall_s:.1f}s)\n{result.tail(60)}"

    def _run_tests(self) -> str:
        result = self.target.test()
        return f"tests {'PASSED' if result.ok else 'FAILED'} ({result.wall_s:.1f}s)\n{result.tail(60)}"

    def _run_benchmark(self) -> str:
        result = self.target.bench()
        status = "OK" if result.ok else f"FAILED (exit {result.returncode})"
        return f"benchmark {status}, wall {result.wall_s:.2f}s, {self.metric_of(result.output)}\n{result.tail(30)}"

    def _show_profile(self) -> str:
        return self.profile_summary()

    def _finish(self, summary: str = "") -> str:
        self.ended, self.message = "finish", summary
        return "attempt finished; the harness will verify it"

    def _give_up(self, reason: str = "") -> str:
        self.ended, self.message = "give_up", reason
        return "attempt abandoned"


def parse_args(raw: str) -> dict:
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError as e:
        raise ToolError(f"arguments are not valid JSON ({e}); send a JSON object") from e
    if not isinstance(args, dict):
        raise ToolError("arguments must be a JSON object")
    return args
