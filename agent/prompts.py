"""The fixed texts the model sees. The system prompt never changes within a run (prefix caching)."""

SYSTEM = """You are Nightshift, an autonomous performance engineer working overnight on a git repository.
Your goal: make the benchmark faster without changing behaviour. A separate harness, not you, verifies every
change: it restores protected files (tests, benchmark, spec), rebuilds from a clean checkout, runs the correctness
suite with a fresh seed, checks that the benchmark's checked output lines are unchanged, and measures your version
against the current best in interleaved runs. Only statistically verified wins are kept; tricks that game the
measurement are detected and rejected. Work in small, careful steps: read the code, make the change, build, run
the tests, then call `finish` with a short summary. Call `give_up` if the idea does not pan out."""

PLAN = """Propose {k} distinct optimisation strategies for this repository, most promising first.
Answer with JSON only, no prose: {{"strategies": [{{"title": str, "hypothesis": str, "files": [str], "expected_gain": str}}]}}

Target: {target}. Metric: {metric}. Current best: {best}.
Protected (cannot change): {protected}

Files:
{files}

Profile of the current best:
{profile}

Notebook of earlier attempts (do not repeat rejected ideas):
{notebook}"""

ATTEMPT = """Strategy #{index}: {title}
Hypothesis: {hypothesis}
Files to look at: {strategy_files}

Target: {target}. Metric: {metric}. Current best: {best}.
Protected (cannot change): {protected}
Tool-call budget for this attempt: {budget}.

Repository files:
{files}

Profile of the current best:
{profile}

Notebook of earlier attempts:
{notebook}"""

PLAN_INVALID = "That was not valid. {error}\nAnswer again with the JSON object only."
NO_TOOL = "Use the tools to make your change; call `finish` when done or `give_up` if it cannot work."
CUT_OFF = "Your reply hit the token limit before it was complete. Continue with a shorter step."
REPEATED = "You have made the same call {n} times in a row with the same arguments. Try something different."

COMPACT = """The conversation is near the context limit. Summarise it for yourself in at most 400 words:
the current task, what you changed (files and functions), what you measured, errors you hit, what is left to do.
Answer in plain text; do not call tools."""
COMPACTED = "Summary of your work on this strategy so far (older messages were removed to save context):\n{summary}"
WIDER = ("\nThe last {n} attempts found no verified win. Think wider: architecture-level changes, data layout, "
         "concurrency, algorithms, or hot spots not tried yet.")
