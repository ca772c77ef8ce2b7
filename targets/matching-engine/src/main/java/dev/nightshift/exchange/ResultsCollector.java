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

    private final Map<Integer, SymbolStats> stats = new HashMap<>();
    private final Map<ResultCode, Long> resultCounts = new EnumMap<>(ResultCode.class);

    public void accept(Command cmd) {
        resultCounts.merge(cmd.result, 1L, Long::sum);
        for (MatchEvent e : cmd.events) {
            if (e.type == MatchEvent.Type.TRADE) {
                SymbolStats s = stats.computeIfAbsent(cmd.symbol, k -> new SymbolStats());
                s.trades++;
                s.volume += e.size;
                s.turnover += e.price * e.size;
            }
        }
    }

    public Map<Integer, SymbolStats> stats() {
        return stats;
    }

    public Map<ResultCode, Long> resultCounts() {
        return resultCounts;
    }
}
