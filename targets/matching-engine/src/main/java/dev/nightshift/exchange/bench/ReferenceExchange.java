package dev.nightshift.exchange.bench;

import dev.nightshift.exchange.CommandType;
import dev.nightshift.exchange.OrderType;
import dev.nightshift.exchange.ResultCode;
import dev.nightshift.exchange.Side;
import dev.nightshift.exchange.SymbolSpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The same exchange rules, written as plainly as possible and run on one thread: each book side is
 * a list kept sorted by (price priority, arrival). Its final state is what the pipeline must reach.
 */
public final class ReferenceExchange {
    private static final class Ord {
        long id;
        long uid;
        Side side;
        long price;
        long reserve;
        long remaining;
        long arrival;
    }

    private static final class Book {
        final List<Ord> bids = new ArrayList<>();
        final List<Ord> asks = new ArrayList<>();
        final Map<Long, Ord> live = new HashMap<>();
        long trades;
        long volume;
        long turnover;
    }

    private final Map<Integer, SymbolSpec> specs = new HashMap<>();
    private final Map<Integer, Book> books = new HashMap<>();
    /** uid * 64 + currency -> {deposit - debited (spendable), free, held} */
    private final Map<Long, long[]> accounts = new HashMap<>();
    private final long[] resultCounts = new long[ResultCode.values().length];
    private long arrivals;

    public static String digest(Session s) {
        ReferenceExchange ref = new ReferenceExchange();
        for (SymbolSpec spec : s.symbols) {
            ref.specs.put(spec.id(), spec);
            ref.books.put(spec.id(), new Book());
        }
        for (int i = 0; i < s.depositUid.length; i++) {
            long[] a = ref.account(s.depositUid[i], s.depositCurrency[i]);
            a[0] += s.depositAmount[i];
            a[1] += s.depositAmount[i];
        }
        for (int i = 0; i < s.size; i++) {
            ResultCode r = ref.apply(Session.TYPES[s.type[i]], s.uid[i], s.orderId[i], s.symbol[i], s.price[i],
                    s.reserve[i], s.qty[i], Session.SIDES[s.side[i]], Session.ORDER_TYPES[s.orderType[i]]);
            ref.resultCounts[r.ordinal()]++;
        }
        return ref.digest();
    }

    private long[] account(long uid, int currency) {
        return accounts.computeIfAbsent(uid * 64 + currency, k -> new long[3]);
    }

    private ResultCode apply(CommandType type, long uid, long id, int symbol, long price, long reserve, long size,
                             Side side, OrderType orderType) {
        SymbolSpec spec = specs.get(symbol);
        Book book = books.get(symbol);
        if (type == CommandType.PLACE) {
            if (size <= 0 || price <= 0 || (side == Side.BID && price > reserve) || spec == null) {
                return ResultCode.REJECTED_INVALID;
            }
            long[] acc = account(uid, side == Side.BID ? spec.quoteCurrency() : spec.baseCurrency());
            long amount = side == Side.BID ? reserve * size : size;
            if (acc[0] < amount) {
                return ResultCode.REJECTED_NSF;
            }
            acc[0] -= amount;
            acc[1] -= amount;
            acc[2] += amount;
            if (find(book, id) != null) {
                release(uid, side, reserve, size, spec);
                return ResultCode.REJECTED_INVALID;
            }
            Ord o = new Ord();
            o.id = id;
            o.uid = uid;
            o.side = side;
            o.price = price;
            o.reserve = reserve;
            o.remaining = size;
            match(book, o, spec);
            if (o.remaining > 0) {
                if (orderType == OrderType.GTC) {
                    insert(book, o);
                } else {
                    release(uid, side, reserve, o.remaining, spec);
                }
            }
            return ResultCode.SUCCESS;
        }
        if (book == null) {
            return ResultCode.REJECTED_INVALID;
        }
        Ord o = find(book, id);
        if (o == null || o.uid != uid) {
            return ResultCode.REJECTED_UNKNOWN_ORDER;
        }
        switch (type) {
            case CANCEL -> {
                remove(book, o);
                release(o.uid, o.side, o.reserve, o.remaining, spec);
            }
            case REDUCE -> {
                if (size <= 0) {
                    return ResultCode.REJECTED_INVALID;
                }
                long removed = Math.min(size, o.remaining);
                o.remaining -= removed;
                if (o.remaining == 0) {
                    remove(book, o);
                }
                release(o.uid, o.side, o.reserve, removed, spec);
            }
            case MOVE -> {
                if (o.side == Side.BID && price > o.reserve) {
                    return ResultCode.REJECTED_INVALID;
                }
                remove(book, o);
                o.price = price;
                match(book, o, spec);
                if (o.remaining > 0) {
                    insert(book, o);
                }
            }
            default -> throw new IllegalStateException();
        }
        return ResultCode.SUCCESS;
    }

    private static List<Ord> sideOf(Book b, Side side) {
        return side == Side.BID ? b.bids : b.asks;
    }

    private static Ord find(Book b, long id) {
        return b.live.get(id);
    }

    private static void remove(Book b, Ord o) {
        sideOf(b, o.side).remove(o);
        b.live.remove(o.id);
    }

    /** True when `a` has priority over `b` on the same side. */
    private static boolean before(Ord a, Ord b) {
        if (a.price != b.price) {
            return a.side == Side.BID ? a.price > b.price : a.price < b.price;
        }
        return a.arrival < b.arrival;
    }

    private void insert(Book b, Ord o) {
        o.arrival = arrivals++;
        List<Ord> list = sideOf(b, o.side);
        int i = 0;
        while (i < list.size() && before(list.get(i), o)) {
            i++;
        }
        list.add(i, o);
        b.live.put(o.id, o);
    }

    private void match(Book b, Ord taker, SymbolSpec spec) {
        List<Ord> opposite = sideOf(b, taker.side.opposite());
        while (taker.remaining > 0 && !opposite.isEmpty()) {
            Ord maker = opposite.get(0);
            boolean crosses = taker.side == Side.BID ? maker.price <= taker.price : maker.price >= taker.price;
            if (!crosses) {
                return;
            }
            long qty = Math.min(taker.remaining, maker.remaining);
            taker.remaining -= qty;
            maker.remaining -= qty;
            if (maker.remaining == 0) {
                opposite.remove(0);
                b.live.remove(maker.id);
            }
            settle(taker.uid, taker.side, taker.reserve, maker.price, qty, spec);
            settle(maker.uid, maker.side, maker.reserve, maker.price, qty, spec);
            b.trades++;
            b.volume += qty;
            b.turnover += maker.price * qty;
        }
    }

    private void settle(long uid, Side side, long reserve, long price, long qty, SymbolSpec spec) {
        long[] base = account(uid, spec.baseCurrency());
        long[] quote = account(uid, spec.quoteCurrency());
        if (side == Side.BID) {
            quote[2] -= reserve * qty;
            quote[1] += (reserve - price) * qty;
            base[1] += qty;
        } else {
            base[2] -= qty;
            quote[1] += price * qty;
        }
    }

    private void release(long uid, Side side, long reserve, long qty, SymbolSpec spec) {
        long[] acc = account(uid, side == Side.BID ? spec.quoteCurrency() : spec.baseCurrency());
        long amount = side == Side.BID ? reserve * qty : qty;
        acc[2] -= amount;
        acc[1] += amount;
    }

    private String digest() {
        StateDigest d = new StateDigest();
        List<Integer> ids = new ArrayList<>(books.keySet());
        ids.sort(null);
        for (int id : ids) {
            Book b = books.get(id);
            for (Ord o : b.bids) {
                d.order(id, o.id, o.uid, o.side, o.price, o.remaining);
            }
            for (Ord o : b.asks) {
                d.order(id, o.id, o.uid, o.side, o.price, o.remaining);
            }
        }
        List<long[]> rows = new ArrayList<>();
        accounts.forEach((key, a) -> rows.add(new long[] {key / 64, key % 64, a[1], a[2]}));
        d.accounts(rows);
        for (int id : ids) {
            Book b = books.get(id);
            if (b.trades > 0) {
                d.stats(id, b.trades, b.volume, b.turnover);
            }
        }
        for (long n : resultCounts) {
            d.add(n);
        }
        return d.hex();
    }
}
