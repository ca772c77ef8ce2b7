"""Write ../showcase.jsonl: the scripted model side of the matching-engine showcase.

Every edit applies whatever the verdicts of the earlier attempts were (1, 2 and 3 are meant to be
accepted, 4 to be rejected because a test fails). verify.py replays the same ATTEMPTS on a copy of
the target, builds and tests every state and measures each step side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from agent.transcript import Transcript  # noqa: E402

PKG = "src/main/java/dev/nightshift/exchange"
FILES = HERE / "files"


def text(name: str) -> str:
    return (FILES / name).read_text()


CONFIG = f"{PKG}/ExchangeConfig.java"
BOOK = f"{PKG}/OrderBook.java"

PLAN = [
    {"title": "Thread topology for a 2-core machine: 2ME+1RE with yielding handlers",
     "hypothesis": "The preset runs 4 matching + 2 risk engines, 10 busy-spinning pipeline threads plus the producer, "
                   "on 2 cores: most handlers only skip commands of other shards while holding a core that the "
                   "stage with work needs. 2ME+1RE halves the threads; a yielding wait strategy hands the core to the "
                   "thread that has work. Topology and wait strategy are one decision: spinning threads beyond the "
                   "core count starve the pipeline.",
     "files": [CONFIG], "expected_gain": "2-4x"},
    {"title": "Order book: price levels in a sorted array, orders in intrusive FIFO lists",
     "hypothesis": "Once the threads stop fighting, the matching stage is the bottleneck, and in it the TreeMap of "
                   "boxed prices and an ArrayDeque per level: rest() boxes and walks a tree, cancel/move remove "
                   "from the middle of a deque by a linear scan. A book holds tens of levels, mostly touched near "
                   "the best price: a sorted array with the best level last and orders linked through themselves "
                   "make rest, cancel and move cheap and allocate nothing per level.",
     "files": [BOOK, f"{PKG}/Order.java"], "expected_gain": "15-40%"},
    {"title": "Remove hot-path allocation and boxing (JFR allocation profile)",
     "hypothesis": "The allocation profile is dominated by Long/Integer boxing in HashMap lookups (accounts, order "
                   "index, books by symbol, trade stats), a new ArrayList + MatchEvent per command/trade, and boxed "
                   "result counters; on 2 cores the GC threads take the cores from the pipeline.",
     "files": [f"{PKG}/{n}.java" for n in ("Command", "MatchEvent", "OrderBook", "RiskEngine", "MatchingEngine",
                                           "ResultsCollector", "ExchangeCore", "LongObjectMap")],
     "expected_gain": "10-40%"},
    {"title": "Skip re-queueing a MOVE to the same price",
     "hypothesis": "A move to the order's current price changes nothing that can match; skipping unlink/relink saves "
                   "two level operations.",
     "files": [BOOK], "expected_gain": "1-3%"},
]

# (reasoning, [(tool, args), ...]) steps per attempt, in order. A rejected attempt vanishes and the
# next one starts from the current best, so every edit must apply whatever the earlier verdicts were:
# no attempt touches text that an earlier attempt changes (whole-file writes only for files no
# earlier attempt touches).
ATTEMPTS: list[list[tuple[str, list[tuple[str, dict]]]]] = [
    [
        ("The preset decides the topology and the wait strategy; look at it first.", [("read_file", {"path": CONFIG})]),
        ("4ME+2RE busy-spin is exchange-core's many-core throughput preset: 10 spinning handlers on 2 cores. "
         "Use 2ME+1RE, and let waiting handlers yield the core to the stage that has work.",
         [("edit_file", {"path": CONFIG,
                         "old": "new ExchangeConfig(4, 2, WaitStrategyType.BUSY_SPIN,",
                         "new": "new ExchangeConfig(2, 1, WaitStrategyType.YIELDING,"})]),
        ("Shards are by symbol/user mask, so any power of two must give the same final state; run the tests.",
         [("run_build", {}), ("run_tests", {})]),
        ("Check the effect once.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "Thread topology 4ME+2RE busy-spin -> 2ME+1RE yielding: 6 pipeline threads "
                                          "that give up the core when they have nothing to do."})]),
    ],
    [
        ("With the threads no longer fighting, where does the CPU go now?", [("show_profile", {})]),
        ("The matching stage (OrderBook.process) is most of the pipeline's samples: rest() in "
         "TreeMap.computeIfAbsent and Long boxing, unlink() in ArrayDeque.remove (a linear scan), match() in "
         "TreeMap.firstEntry. Read the book and the order.",
         [("read_file", {"path": BOOK}), ("read_file", {"path": f"{PKG}/Order.java"})]),
        ("Keep every command's semantics (price-time priority, a moved order goes to the back of its new level, "
         "forEachOrder's order) and change only the structures: per side a Level[] sorted worst to best, binary "
         "search by price, best level last; each level a FIFO list linked through Order.prev/next.",
         [("write_file", {"path": f"{PKG}/Order.java", "content": text("Order.java")}),
          ("write_file", {"path": BOOK, "content": text("OrderBook.java")})]),
        ("The book tests and the reference-book state hash decide; run them.", [("run_build", {}), ("run_tests", {})]),
        ("Done.", [("finish", {"summary": "Order book levels: a sorted array per side (best last) instead of a "
                                          "TreeMap<Long, ArrayDeque>, orders in intrusive FIFO lists: O(1) unlink, "
                                          "no boxing, no per-level queue."})]),
    ],
    [
        ("Now the allocation profile.", [("show_profile", {})]),
        ("Top allocation sites: Order (needed), Long boxing in RiskEngine.account and the order index, "
         "Integer boxing in MatchingEngine.process and ResultsCollector, an ArrayList per command in the grouping "
         "stage, a MatchEvent per trade/reduce, a Long per command in ResultsCollector.merge. Read the code involved.",
         [("read_file", {"path": f"{PKG}/Command.java"}), ("read_file", {"path": f"{PKG}/RiskEngine.java"}),
          ("read_file", {"path": f"{PKG}/MatchingEngine.java"}),
          ("search", {"pattern": "orders = new|cmd.events.add", "glob": "src/main/**/OrderBook.java"}),
          ("read_file", {"path": f"{PKG}/ExchangeCore.java", "start": 45, "end": 55})]),
        ("Plan: (1) a primitive long->object open-addressing map for the order index, the accounts (per user an "
         "array indexed by currency), the books and the trade stats, keeping users()/stats() as snapshots for "
         "tests; (2) events owned by the ring slot and recycled; (3) plain long counters for results.",
         [("write_file", {"path": f"{PKG}/LongObjectMap.java", "content": text("LongObjectMap.java")}),
          ("write_file", {"path": f"{PKG}/MatchEvent.java", "content": text("MatchEvent.java")}),
          ("write_file", {"path": f"{PKG}/Command.java", "content": text("Command.java")}),
          ("write_file", {"path": f"{PKG}/ResultsCollector.java", "content": text("ResultsCollector.java")}),
          ("write_file", {"path": f"{PKG}/MatchingEngine.java", "content": text("MatchingEngine.java")}),
          ("write_file", {"path": f"{PKG}/RiskEngine.java", "content": text("RiskEngine.java")})]),
        ("In the book: the order index becomes a LongObjectMap and events come from the slot's pool.",
         [("edit_file", {"path": BOOK, "old": "import java.util.HashMap;\n", "new": ""}),
          ("edit_file", {"path": BOOK, "old": "    private final Map<Long, Order> orders = new HashMap<>();",
                         "new": "    private final LongObjectMap<Order> orders = new LongObjectMap<>();"}),
          ("edit_file", {"path": BOOK,
                         "old": "cmd.events.add(new MatchEvent(MatchEvent.Type.TRADE, maker.uid, maker.orderId, "
                                "maker.reservePrice, price, qty));",
                         "new": "cmd.addEvent(MatchEvent.Type.TRADE, maker.uid, maker.orderId, maker.reservePrice, "
                                "price, qty);"}),
          ("edit_file", {"path": BOOK, "old": "cmd.events.add(new MatchEvent(MatchEvent.Type.REDUCE, 0, 0, 0, price, size));",
                         "new": "cmd.addEvent(MatchEvent.Type.REDUCE, 0, 0, 0, price, size);"})]),
        ("The grouping stage must recycle the slot's events instead of allocating a list.",
         [("edit_file", {"path": f"{PKG}/ExchangeCore.java",
                         "old": "            cmd.group = seq / GROUP_SIZE;\n            cmd.result = ResultCode.PENDING;\n"
                                "            cmd.events = new ArrayList<>();\n",
                         "new": "            cmd.resetOutputs(seq / GROUP_SIZE);\n"})]),
        ("Build, test (slot reuse is safe: a slot is republished only after every stage passed it).",
         [("run_build", {}), ("run_tests", {})]),
        ("Done.", [("finish", {"summary": "No boxing or per-command/per-trade allocation on the hot path: "
                                          "LongObjectMap for orders, accounts, books and stats; pooled events; "
                                          "array counters."})]),
    ],
    [
        ("MOVE commands are ~20% of the flow; some keep their price.",
         [("search", {"pattern": "private void move", "glob": "src/main/**/*.java"})]),
        ("Skip unlink/relink when the price does not change.",
         [("edit_file", {"path": BOOK,
                         "old": "        unlink(order);\n        order.price = cmd.price;\n",
                         "new": "        if (cmd.price == order.price) {\n"
                                "            cmd.result = ResultCode.SUCCESS; // nothing new can match at the same price\n"
                                "            return;\n        }\n"
                                "        unlink(order);\n        order.price = cmd.price;\n"})]),
        ("Build and finish; the harness runs the tests.", [("run_build", {})]),
        ("Done.", [("finish", {"summary": "MOVE to the same price is a no-op."})]),
    ],
]

ACCEPTED = [True, True, True, False]  # what verify.py expects the harness to conclude


def main() -> None:
    t = Transcript(note="Scripted showcase transcript for matching-engine: written by the Nightshift developers, "
                        "not recorded from Kimi K2.6. Every measurement is live.")
    t.plan(PLAN, reasoning="The CPU profile is spread over 10 busy-spinning pipeline threads on a 2-core machine, "
                           "and the allocation profile shows boxing and per-command allocation on the hot path: "
                           "first fix the topology and wait strategy, then whatever dominates the new profile.")
    for steps in ATTEMPTS:
        t.attempt(steps)
    t.write(HERE.parent / "showcase.jsonl")


if __name__ == "__main__":
    main()
