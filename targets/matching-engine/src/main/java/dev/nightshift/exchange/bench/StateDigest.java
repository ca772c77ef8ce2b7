package dev.nightshift.exchange.bench;

import dev.nightshift.exchange.Account;
import dev.nightshift.exchange.ExchangeCore;
import dev.nightshift.exchange.OrderBook;
import dev.nightshift.exchange.ResultCode;
import dev.nightshift.exchange.ResultsCollector;
import dev.nightshift.exchange.RiskEngine;
import dev.nightshift.exchange.Side;
import dev.nightshift.exchange.SymbolSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A 64-bit hash of the final exchange state in one canonical order: resting orders (per symbol,
 * bids then asks, price-time order), non-empty accounts sorted by (uid, currency), per-symbol trade
 * statistics and result-code counts. Independent of the thread topology.
 */
public final class StateDigest {
    private long h = 0x9E3779B97F4A7C15L;
    private long items;

    void add(long v) {
        h ^= v;
        h *= 0xBF58476D1CE4E5B9L;
        h ^= h >>> 31;
        items++;
    }

    void order(int symbol, long orderId, long uid, Side side, long price, long remaining) {
        add(symbol);
        add(orderId);
        add(uid);
        add(side.ordinal());
        add(price);
        add(remaining);
    }

    void accounts(List<long[]> rows) {
        rows.sort(Comparator.<long[]>comparingLong(r -> r[0]).thenComparingLong(r -> r[1]));
        for (long[] r : rows) {
            if (r[2] != 0 || r[3] != 0) {
                for (long v : r) {
                    add(v);
                }
            }
        }
    }

    void stats(int symbol, long trades, long volume, long turnover) {
        add(symbol);
        add(trades);
        add(volume);
        add(turnover);
    }

    public String hex() {
        return String.format("%016x", h) + "/" + items;
    }

    public static String of(ExchangeCore core, List<SymbolSpec> symbols) {
        StateDigest d = new StateDigest();
        int[] ids = symbols.stream().mapToInt(SymbolSpec::id).sorted().toArray();
        for (int id : ids) {
            OrderBook book = core.book(id);
            book.forEachOrder((sym, orderId, uid, side, price, reserve, remaining) ->
                    d.order(sym, orderId, uid, side, price, remaining));
        }
        List<long[]> rows = new ArrayList<>();
        for (RiskEngine re : core.riskEngines()) {
            for (Map.Entry<Long, Map<Integer, Account>> u : re.users().entrySet()) {
                for (Map.Entry<Integer, Account> a : u.getValue().entrySet()) {
                    rows.add(new long[] {u.getKey(), a.getKey(), a.getValue().free(), a.getValue().held()});
                }
            }
        }
        d.accounts(rows);
        Map<Integer, ResultsCollector.SymbolStats> stats = new TreeMap<>(core.results().stats());
        for (Map.Entry<Integer, ResultsCollector.SymbolStats> e : stats.entrySet()) {
            d.stats(e.getKey(), e.getValue().trades, e.getValue().volume, e.getValue().turnover);
        }
        long[] counts = new long[ResultCode.values().length];
        core.results().resultCounts().forEach((code, n) -> counts[code.ordinal()] = n);
        Arrays.stream(counts).forEach(d::add);
        return d.hex();
    }
}
