"""Writes ../showcase.jsonl: the scripted model side of the loganalyzer showcase.

Written by the Nightshift developers, not recorded from Kimi K2.6. Replayed with
`optimize --repo loganalyzer --llm replay:targets/loganalyzer/showcase.jsonl`; every build, test
and measurement in that run is live. Five strategies: two real optimisations, one that breaks the
parser (tests fail), one that edits the frozen benchmark (protected path) and one that changes
nothing measurable (not significant).
"""

from pathlib import Path

from agent.transcript import Transcript

SPLIT_PARSER = '''def parse_line(line: str) -> Record | None:
    """The record of one line, or None when the line is not a well-formed entry."""
    parts = line.split(" ")
    if len(parts) < 12 or not parts[3].startswith("["):
        return None
    when = datetime.strptime(parts[3][1:], "%d/%b/%Y:%H:%M:%S")
    size = parts[9]
    return Record(
        ip=parts[0],
        user=parts[2],
        time=when,
        method=parts[5].lstrip('"'),
        path=parts[6],
        status=int(parts[8]),
        size=0 if size == "-" else int(size),
        referrer=parts[10].strip('"'),
        agent=parts[11].strip('"'),
        latency=float(parts[-1]),
    )
'''

REGEX_PARSER = '''def parse_line(line: str) -> Record | None:
    """The record of one line, or None when the line is not a well-formed entry."""
    m = re.match(LINE, line)
    if m is None:
        return None
    ip, user, stamp, method, path, _proto, status, size, referrer, agent, latency = m.groups()
    when = datetime.strptime(stamp.split(" ")[0], "%d/%b/%Y:%H:%M:%S")
    return Record('''

SLICED_PARSER = '''_LINE = re.compile(LINE)
_MONTHS = {name: n for n, name in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def _timestamp(stamp: str) -> datetime:
    """'12/Mar/2026:14:02:11 +0000' without strptime, which re-parses its format on every call."""
    return datetime(int(stamp[7:11]), _MONTHS[stamp[3:6]], int(stamp[0:2]),
                    int(stamp[12:14]), int(stamp[15:17]), int(stamp[18:20]))


def parse_line(line: str) -> Record | None:
    """The record of one line, or None when the line is not a well-formed entry."""
    m = _LINE.match(line)
    if m is None:
        return None
    ip, user, stamp, method, path, _proto, status, size, referrer, agent, latency = m.groups()
    when = _timestamp(stamp)
    return Record('''


def main() -> None:
    t = Transcript(note="Scripted showcase transcript for loganalyzer: written by the Nightshift developers, "
                        "not recorded from Kimi K2.6. Every measurement in a replay is live.")
    t.plan([
        {"title": "Track unique visitors in sets instead of lists", "files": ["loganalyzer/report.py"],
         "hypothesis": "analyze() checks `ip not in visitors` on a list for every line: O(lines x visitors). "
                       "Sets make it O(1).", "expected_gain": "30-50%"},
        {"title": "Split-based line parser instead of the regular expression", "files": ["loganalyzer/parse.py"],
         "hypothesis": "str.split is cheaper than a regex match with 11 groups.", "expected_gain": "20%"},
        {"title": "Parse timestamps by slicing; precompile the line regex", "files": ["loganalyzer/parse.py"],
         "hypothesis": "The profile shows datetime.strptime (_strptime) as the top frame under parse_line; "
                       "the format is fixed, so slicing the digits is exact and much cheaper.",
         "expected_gain": "2x on parsing"},
        {"title": "Benchmark a smaller log", "files": ["bench.py"],
         "hypothesis": "Fewer lines per run make each benchmark run finish sooner.", "expected_gain": "large"},
        {"title": "Hoist the server-error threshold into a module constant", "files": ["loganalyzer/report.py"],
         "hypothesis": "Avoid re-creating the literal 500 in the hot loop.", "expected_gain": "1%"},
    ], reasoning="The CPU profile is dominated by parse_line (regex match and strptime) and by list "
                 "membership tests in analyze(). Order by expected gain; include cheap experiments.")

    report, parse = "loganalyzer/report.py", "loganalyzer/parse.py"
    t.attempt([
        ("Start from the profile, then read the aggregation loop.", [("show_profile", {}), ("read_file", {"path": report})]),
        ("Both membership tests scan lists. Replace them with sets.", [
            ("edit_file", {"path": report, "old": "    visitors: list[str] = []\n    agents: dict[str, list[str]] = {}\n",
                           "new": "    visitors: set[str] = set()\n    agents: dict[str, set[str]] = {}\n"}),
            ("edit_file", {"path": report, "old": "        if rec.ip not in visitors:\n            visitors.append(rec.ip)\n",
                           "new": "        visitors.add(rec.ip)\n"}),
            ("edit_file", {"path": report, "old": "        seen = agents.setdefault(family, [])\n        if rec.ip not in seen:\n            seen.append(rec.ip)\n",
                           "new": "        agents.setdefault(family, set()).add(rec.ip)\n"}),
        ]),
        ("Check correctness and get a rough number.", [("run_tests", {}), ("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "Unique-visitor tracking uses sets: O(1) membership instead of a list scan per line."})]),
    ])
    t.attempt([
        ("Look at the parser.", [("read_file", {"path": parse})]),
        ("Replace the regex with split on spaces.", [("edit_file", {"path": parse, "old": REGEX_PARSER.split("    return Record(")[0] + "    return Record(\n        ip=ip,\n        user=user,\n        time=when,\n        method=method,\n        path=path,\n        status=int(status),\n        size=0 if size == \"-\" else int(size),\n        referrer=referrer,\n        agent=agent,\n        latency=float(latency),\n    )\n", "new": SPLIT_PARSER})]),
        ("The benchmark lines all parse; finish.", [("finish", {"summary": "Split-based parser replaces the regex."})]),
    ])
    t.attempt([
        ("Read the parser and confirm strptime is on the hot path.", [("read_file", {"path": parse}), ("show_profile", {})]),
        ("Slice the fixed-width timestamp and precompile the regex.", [
            ("edit_file", {"path": parse, "old": REGEX_PARSER, "new": SLICED_PARSER}),
            ("run_tests", {}),
        ]),
        ("Tests pass, including every month name.", [("finish", {"summary": "Timestamps parsed by slicing with a month table; line regex compiled once."})]),
    ])
    t.attempt([
        ("The benchmark generates 20k lines; try fewer.", [("read_file", {"path": "bench.py"})]),
        ("Edit the size.", [("edit_file", {"path": "bench.py", "old": "lines(20_000,", "new": "lines(2_000,"})]),
        ("Refused: the benchmark is protected. Finish anyway.", [("finish", {"summary": "Tried to shrink the benchmark input."})]),
    ])
    t.attempt([
        ("Hoist the constant.", [
            ("edit_file", {"path": report, "old": "        if rec.status >= 500:\n", "new": "        if rec.status >= SERVER_ERROR:\n"}),
            ("edit_file", {"path": report, "old": "from loganalyzer.parse import parse_line\n",
                           "new": "from loganalyzer.parse import parse_line\n\nSERVER_ERROR = 500\n"}),
            ("run_tests", {}),
        ]),
        ("Finish.", [("finish", {"summary": "Server-error threshold is a module constant."})]),
    ])
    t.write(Path(__file__).resolve().parent.parent / "showcase.jsonl")


if __name__ == "__main__":
    main()
