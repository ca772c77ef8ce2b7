"""A compressed overnight run: a scripted model that behaves like a busy agent, on a tiny real target.

Shared by tests/test_long_run.py (the evidence) and benchmarks/long_run.py (overhead and memory).
The model is a function of the request body served by tests/fakes/openai_server.py: plan requests
get fresh strategies (and, from the second plan on, a repeat of a rejected one, which the harness
must skip); attempt requests get ~26 tool calls, some batched, ending in a faster, a broken or a
no-op edit. Progress within an attempt is read from the conversation itself (tool results so far,
plus the count the model wrote into its own summary when the harness compacted the conversation).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.openai_server import Hook, Reply, max_prompt_chars, stable_prefix
from tests.tiny_target import FAST, SLOW, WRONG, git, make_repo

ROOT = Path(__file__).resolve().parent.parent.parent

# Two words per title from disjoint lists: any two titles share at most one word, so the notebook's
# similarity check (Jaccard of title words + 0.2 for the same files) never calls a fresh idea a repeat.
VERBS = ["Unroll", "Vectorise", "Inline", "Hoist", "Batch", "Specialise", "Fuse", "Precompute", "Simplify",
         "Reorder", "Flatten", "Narrow", "Devirtualise", "Reduce", "Pipeline", "Split", "Merge", "Shortcut",
         "Prune", "Tile", "Widen", "Defer", "Streamline", "Compact"]
NOUNS = ["accumulator", "multiply", "ranges", "loops", "integers", "indexing", "arithmetic", "locals", "builtins",
         "formula", "squares", "counters", "iteration", "additions", "temporaries", "branches", "products",
         "bounds", "generators", "closures", "lookups", "conversions", "summation", "recurrence"]
N = len(VERBS)
# 576 ideas, more than the fastest machine gets through before the deadline; neighbours share no word.
TITLES = [f"{VERBS[k % N]} {NOUNS[(k + k // N) % N]}" for k in range(N * N)]

BENCH = '''import time
from work import sum_of_squares

time.sleep({sleep})  # the rest of a realistic benchmark: fixed cost the candidate cannot change
start = time.perf_counter()
result = sum_of_squares({n})
elapsed = time.perf_counter() - start
print(f"result: {{result}}")
print(f"rate: {{{n} / 1e6 / max(elapsed, 1e-6):.3f}} Mops/s")
'''
SPEC = '''name = "longrun"
[test]
cmd = "python test_work.py"
timeout = "120s"
[bench]
cmd = "python bench.py"
timeout = "120s"
{metric}
same_output = ['^result: ']
[guard]
protected = ["test_work.py", "bench.py", "optimize.toml"]
[decide]
min_effect = "5%"
looks = {looks}
calibration_pairs = 3
noise_multiple = 1.0
confirm_pairs = 3
'''
# Plain asserts run by python itself: a suite that starts in milliseconds (pytest's start-up would
# dominate a compressed run); the "N passed" line is what the verifier counts.
TEST = '''import time

from work import sum_of_squares


def test_small() -> None:
    assert [sum_of_squares(n) for n in range(6)] == [0, 0, 1, 5, 14, 30]


def test_large() -> None:
    assert sum_of_squares(1000) == sum(i * i for i in range(1000))


if __name__ == "__main__":
    time.sleep({sleep})  # a slower suite
    test_small()
    test_large()
    print("2 passed")
'''


def make_target(root: Path, *, bench_sleep: float = 0.0, test_sleep: float = 0.0, looks: str = "[3]",
                n: int = 300_000) -> Path:
    """The tiny target plus a long notes file (big tool outputs). With `bench_sleep` the benchmark
    is a wall-time one (a sleep would hide a faster timed region from the metric's sanity guard)."""
    metric = ("metric = { regex = 'rate: ([0-9.]+) Mops/s', unit = \"Mops/s\", better = \"higher\" }"
              if bench_sleep == 0 else "")
    repo = make_repo(root, spec=SPEC.format(metric=metric, looks=looks), work=SLOW,
                     bench=BENCH.format(sleep=bench_sleep, n=n),
                     test=TEST.format(sleep=test_sleep))
    lines = [f"{i:04d} note: measured sum_of_squares at n={i * 1000}, loop overhead dominates; keep the API" for i in range(400)]
    (repo / "NOTES.md").write_text("# Performance notes\n" + "\n".join(lines) + "\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notes")
    return repo


def _explore(index: int) -> list[tuple[str, dict]]:
    """22 reading calls: files, searches, slices of the notes (varied, so no call repeats 3 times)."""
    calls: list[tuple[str, dict]] = []
    for i in range(22):
        match i % 7:
            case 0:
                calls.append(("read_file", {"path": "work.py"}))
            case 1:
                calls.append(("search", {"pattern": f"n=({index}|{i})[0-9]*000,"}))
            case 2:
                calls.append(("read_file", {"path": "NOTES.md", "start": 1 + 60 * (i % 6), "end": 60 + 60 * (i % 6)}))
            case 3:
                calls.append(("list_files", {"glob": "*.py"} if i % 2 else {}))
            case 4:
                calls.append(("show_profile", {}))
            case 5:
                calls.append(("read_file", {"path": "test_work.py" if i % 2 else "bench.py"}))
            case _:
                calls.append(("read_file", {"path": "NOTES.md", "start": 200 + i, "end": 320 + i}))
    if index % 4 == 1:  # some attempts try the benchmark themselves
        calls[3] = ("run_benchmark", {})
    return calls


KINDS = ("faster", "broken", "no-op")


def attempt_calls(index: int, kind: str) -> list[tuple[str, dict]]:
    """Every tool call of attempt `index`: explore, edit, finish. "faster" writes the closed form (after
    the first win, the same idea again, reworded), "broken" a wrong formula the tests must catch,
    "no-op" an edit that changes nothing."""
    if kind == "faster":
        edit = [("write_file", {"path": "work.py", "content": f"# attempt {index}\n{FAST}"}), ("run_tests", {})]
    elif kind == "broken":
        edit = [("write_file", {"path": "work.py", "content": WRONG}), ("read_file", {"path": "work.py"})]
    else:
        line = "def sum_of_squares(n: int) -> int:"
        edit = [("edit_file", {"path": "work.py", "old": line, "new": line}), ("read_file", {"path": "work.py"})]
    return [*_explore(index), *edit, ("read_file", {"path": "work.py", "start": 1, "end": 3}),
            ("finish", {"summary": f"attempt {index}: {kind} edit of sum_of_squares"})]


def _batch(done: int, total: int) -> int:
    """How many calls the next reply carries (1–3); the final `finish` always comes alone."""
    return max(1, min(1 + done % 3, total - 1 - done))


CARRIED = re.compile(r"(\d+) tool calls so far")


@dataclass
class ScriptedModel:
    """The fake server's script: `FakeServer(ScriptedModel(), hooks=...)`."""

    kinds: tuple[str, ...] = KINDS  # the edit of attempt i is kinds[(i - 1) % len(kinds)]
    plans: int = 0
    titles_offered: list[str] = field(default_factory=list)
    repeats_offered: list[str] = field(default_factory=list)
    compactions: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict) -> Reply:
        with self._lock:
            messages = body["messages"]
            if messages[1]["content"].startswith("Propose"):
                return self._plan(messages[1]["content"])
            return self._attempt(messages)

    def _plan(self, request: str) -> Reply:
        self.plans += 1
        rejected = re.findall(r"^#\d{3} (.+?) \[[^\]]*\] -> (?:rejected|error)", request, re.M)
        strategies = []
        if rejected:  # like a model that forgets: propose again the idea rejected most recently
            strategies.append(rejected[-1])
            self.repeats_offered.append(rejected[-1])
        fresh = TITLES[len(self.titles_offered): len(self.titles_offered) + 6 - len(strategies)]
        self.titles_offered += fresh
        plan = {"strategies": [{"title": t, "hypothesis": f"{t.lower()} removes interpreter work from the hot loop",
                                "files": ["work.py"], "expected_gain": "2x"} for t in strategies + fresh]}
        return Reply(content=json.dumps(plan), reasoning="The profile says the loop dominates.")

    def _attempt(self, messages: list[dict]) -> Reply:
        index = int(re.search(r"Strategy #(\d+)", messages[1]["content"]).group(1))
        carried, since = 0, messages[2:]
        for i, m in enumerate(messages):  # after a compaction, count from the model's own summary
            if m["role"] == "user" and (found := CARRIED.search(m["content"] or "")):
                carried, since = int(found.group(1)), messages[i + 1:]
        done = carried + sum(m["role"] == "tool" for m in since)
        if messages[-1]["role"] == "user" and "near the context limit" in messages[-1]["content"]:
            self.compactions += 1
            return Reply(content=f"Strategy #{index}: {done} tool calls so far. Read work.py, the notes and the "
                                 "tests; the loop in sum_of_squares is the hot spot. Next: make the edit and finish.")
        calls = attempt_calls(index, self.kinds[(index - 1) % len(self.kinds)])
        step = calls[done: done + _batch(done, len(calls))]
        return Reply(reasoning=f"Step {done} of strategy #{index}.",
                     tool_calls=[(name, json.dumps(args)) for name, args in step])


def hooks(window_tokens: int) -> list[Hook]:
    """The server's checks on every request: within the context window (4 characters a token, as the
    fake server counts usage) and the same system prompt and tools as the first request."""
    return [max_prompt_chars(window_tokens * 4), stable_prefix()]


@dataclass
class RssSampler:
    """VmRSS of one process every `every` seconds, each with the number of iterations recorded so far."""

    pid: int
    runs: Path  # the runs directory; the run's events.jsonl is found once it exists
    every: float = 0.5
    samples: list[tuple[int, int]] = field(default_factory=list)  # (iterations done, RSS in kB)
    _stop: threading.Event = field(default_factory=threading.Event)
    _offset: int = 0
    _iterations: int = 0

    def start(self) -> RssSampler:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                return
            rss = next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:")), None)
            if rss is not None:
                self.samples.append((self._count(), rss))

    def _count(self) -> int:
        """Iterations recorded: reads only what was appended to events.jsonl since the last sample."""
        events = next(self.runs.glob("*/events.jsonl"), None)
        if events is not None:
            with events.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            self._iterations += complete.count(b'"type":"iteration"')
        return self._iterations

    def at(self, iteration: int) -> int | None:
        """The first RSS sampled once `iteration` iterations were recorded."""
        return next((rss for n, rss in self.samples if n >= iteration), None)


    def during(self, first: int) -> list[int]:
        """RSS samples from iteration `first` until the last iteration (excluded: confirmation and report)."""
        last = max((n for n, _ in self.samples), default=0)
        return [rss for n, rss in self.samples if first <= n < last]


def start_run(repo: Path, runs: Path, base_url: str, *, hours: float, iterations: int, context_limit: int,
              extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`optimize` as a child process (its RSS can then be sampled from outside)."""
    cmd = [sys.executable, "-m", "agent.cli", "--repo", str(repo), "--llm", base_url, "--runs-dir", str(runs),
           "--no-profile", "--hours", f"{hours:.6f}", "--iterations", str(iterations),
           "--context-limit", str(context_limit), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**_env(), "OPENAI_API_KEY": "sk-longrun"})


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def run_dir(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if (p / "run.json").exists()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]


def exchanges(run: Path) -> list[dict]:
    """Tag and token usage of every recorded exchange (llm.jsonl is read line by line: it is large)."""
    out = []
    with (run / "llm.jsonl").open() as f:
        for line in f:
            rec = json.loads(line)
            out.append({"tag": rec["tag"], "usage": rec["response"]["usage"]})
    return out
