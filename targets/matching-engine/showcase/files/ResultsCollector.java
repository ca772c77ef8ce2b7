package dev.nightshift.exchange;

import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;

/** The last stage: what a gateway would report back; here, per-symbol trade statistics. */
public final class ResultsCollector {
    public static final class SymbolStats {
        public long trades;
        public long volume;
        public long turnover;
    }

    // primitive keys: computeIfAbsent on a Map<Integer, ...> boxed the symbol id on every trade
    private final LongObjectMap<SymbolStats> stats = new LongObjectMap<>();
    // a plain counter per result code: merge() on a Map<ResultCode, Long> boxed a Long per command
    private final long[] resultCounts = new long[ResultCode.values().length];

    public void accept(Command cmd) {
        resultCounts[cmd.result.ordinal()]++;
        SymbolStats s = null;
        for (int i = 0, n = cmd.events.size(); i < n; i++) {
            MatchEvent e = cmd.events.get(i);
            if (e.type == MatchEvent.Type.TRADE) {
                if (s == null) {
                    s = stats.get(cmd.symbol);
                    if (s == null) {
                        s = new SymbolStats();
                        stats.put(cmd.symbol, s);
                    }
                }
                s.trades++;
                s.volume += e.size;
                s.turnover += e.price * e.size;
            }
        }
    }

    /** A snapshot for inspection; not used on the hot path. */
    public Map<Integer, SymbolStats> stats() {
        Map<Integer, SymbolStats> out = new HashMap<>();
        stats.forEach((symbol, s) -> out.put((int) symbol, s));
        return out;
    }

    public Map<ResultCode, Long> resultCounts() {
        Map<ResultCode, Long> out = new EnumMap<>(ResultCode.class);
        for (ResultCode code : ResultCode.values()) {
            if (resultCounts[code.ordinal()] > 0) {
                out.put(code, resultCounts[code.ordinal()]);
            }
        }
        return out;
    }
}
