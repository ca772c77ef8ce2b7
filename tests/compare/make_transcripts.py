"""Writes strong.jsonl and weak.jsonl beside this file: two scripted "models" for `optimize compare` on the
bundled loganalyzer target (`PYTHONPATH=. python tests/compare/make_transcripts.py` from the repository root).

Written by the Nightshift developers, not recorded from any model. The strong one finds the two real wins
of the loganalyzer showcase (sets for unique visitors, timestamps by slicing); the weak one breaks the
parser (tests fail) and then tries to edit the frozen benchmark (protected path). Every measurement in a
comparison driven by them is live.
"""

from pathlib import Path

from agent.transcript import Transcript
from targets.loganalyzer.showcase.make_transcript import REGEX_PARSER, SLICED_PARSER, SPLIT_PARSER

HERE = Path(__file__).resolve().parent
REPORT, PARSE = "loganalyzer/report.py", "loganalyzer/parse.py"
REGEX_BODY = REGEX_PARSER.split("    return Record(")[0] + (
    "    return Record(\n        ip=ip,\n        user=user,\n        time=when,\n        method=method,\n        path=path,\n"
    "        status=int(status),\n        size=0 if size == \"-\" else int(size),\n        referrer=referrer,\n"
    "        agent=agent,\n        latency=float(latency),\n    )\n")


def strong() -> Transcript:
    t = Transcript(note="Scripted strong arm for optimize compare on loganalyzer (not a recorded model).")
    t.plan([
        {"title": "Track unique visitors in sets instead of lists", "files": [REPORT],
         "hypothesis": "List membership per line is O(visitors); sets make it O(1).", "expected_gain": "30-50%"},
        {"title": "Parse timestamps by slicing; precompile the line regex", "files": [PARSE],
         "hypothesis": "strptime re-parses its format on every line; the format is fixed.", "expected_gain": "2x"},
    ], reasoning="The profile is dominated by parse_line and list membership tests in analyze().")
    t.attempt([
        ("Read the aggregation loop.", [("read_file", {"path": REPORT})]),
        ("Replace both list scans with sets.", [
            ("edit_file", {"path": REPORT, "old": "    visitors: list[str] = []\n    agents: dict[str, list[str]] = {}\n",
                           "new": "    visitors: set[str] = set()\n    agents: dict[str, set[str]] = {}\n"}),
            ("edit_file", {"path": REPORT, "old": "        if rec.ip not in visitors:\n            visitors.append(rec.ip)\n",
                           "new": "        visitors.add(rec.ip)\n"}),
            ("edit_file", {"path": REPORT, "old": "        seen = agents.setdefault(family, [])\n        if rec.ip not in seen:\n"
                                                  "            seen.append(rec.ip)\n",
                           "new": "        agents.setdefault(family, set()).add(rec.ip)\n"}),
        ]),
        ("Done.", [("finish", {"summary": "Unique visitors tracked in sets."})]),
    ])
    t.attempt([
        ("Slice the fixed-width timestamp and precompile the regex.", [
            ("edit_file", {"path": PARSE, "old": REGEX_PARSER, "new": SLICED_PARSER}),
        ]),
        ("Done.", [("finish", {"summary": "Timestamps parsed by slicing; regex compiled once."})]),
    ])
    return t


def weak() -> Transcript:
    t = Transcript(note="Scripted weak arm for optimize compare on loganalyzer (not a recorded model).")
    t.plan([
        {"title": "Split-based line parser instead of the regular expression", "files": [PARSE],
         "hypothesis": "str.split is cheaper than a regex with 11 groups.", "expected_gain": "20%"},
        {"title": "Benchmark a smaller log", "files": ["bench.py"],
         "hypothesis": "Fewer lines make each run finish sooner.", "expected_gain": "large"},
    ], reasoning="Parsing looks expensive; the benchmark is also large.")
    t.attempt([
        ("Replace the regex with split on spaces.", [("edit_file", {"path": PARSE, "old": REGEX_BODY, "new": SPLIT_PARSER})]),
        ("Done.", [("finish", {"summary": "Split-based parser."})]),
    ])
    t.attempt([
        ("Shrink the benchmark input.", [("edit_file", {"path": "bench.py", "old": "lines(20_000,",
                                                        "new": "lines(2_000,"})]),
        ("Refused; finish anyway.", [("finish", {"summary": "Tried to shrink the benchmark."})]),
    ])
    return t


if __name__ == "__main__":
    strong().write(HERE / "strong.jsonl")
    weak().write(HERE / "weak.jsonl")
