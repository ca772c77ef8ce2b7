package dev.nightshift.exchange.bench;

import dev.nightshift.exchange.CommandType;
import dev.nightshift.exchange.OrderType;
import dev.nightshift.exchange.Side;
import dev.nightshift.exchange.SymbolSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Deterministic order flow: per symbol a drifting mid price, GTC orders around it (some crossing),
 * aggressive IOC orders, and cancel/move/reduce of recently placed orders. Opening deposits cover
 * every hold a user will ever need, except for a few deliberately oversized orders that exceed the
 * whole market's supply, so accept/reject never depends on the order in which trades settle.
 */
public final class CommandGenerator {
    private static final long OVERSIZED = 1_000_000_000L;

    private CommandGenerator() {}

    public static Session generate(Preset p) {
        SplittableRandom rnd = new SplittableRandom(p.seed());
        List<SymbolSpec> specs = new ArrayList<>();
        for (int s = 0; s < p.symbols(); s++) {
            specs.add(new SymbolSpec(s, 1 + s % (p.currencies() - 1), 0));
        }
        long[] mid = new long[p.symbols()];
        for (int s = 0; s < p.symbols(); s++) {
            mid[s] = 1_000 + rnd.nextInt(9_000);
        }
        // GTC orders per symbol that may still rest (the generator does not know about fills):
        // targets for cancel/move/reduce, and a cap on their number keeps the books bounded
        List<List<long[]>> live = new ArrayList<>();
        for (int s = 0; s < p.symbols(); s++) {
            live.add(new ArrayList<>());
        }
        long[][] need = new long[p.users() + 1][p.currencies()];

        Session out = new Session(specs, p.currencies(), p.commands());
        long nextOrderId = 1;
        for (int i = 0; i < p.commands(); i++) {
            int s = rnd.nextInt(p.symbols());
            SymbolSpec spec = specs.get(s);
            if (rnd.nextInt(8) == 0) {
                mid[s] = Math.max(100, mid[s] + rnd.nextInt(-2, 3));
            }
            List<long[]> orders = live.get(s);
            int roll = rnd.nextInt(1000);
            if (orders.size() >= p.bookCap() && roll < 560) {
                roll = 560 + rnd.nextInt(150); // full book: cancel instead of placing
            }
            if (roll < 560 || orders.isEmpty()) {
                long uid = 1 + rnd.nextInt(p.users());
                boolean ioc = roll >= 480 && roll < 560;
                Side side = rnd.nextBoolean() ? Side.BID : Side.ASK;
                long price = ioc ? mid[s] + rnd.nextInt(0, 12) * sign(side) : mid[s] - rnd.nextInt(-4, 30) * sign(side);
                long reserve = side == Side.BID ? price + rnd.nextInt(0, 20) : price;
                long size = 1 + rnd.nextInt(20);
                if (rnd.nextInt(1000) == 0) {
                    size = OVERSIZED; // always NSF: bigger than every deposit in the market
                } else if (side == Side.BID) {
                    need[(int) uid][spec.quoteCurrency()] += reserve * size;
                } else {
                    need[(int) uid][spec.baseCurrency()] += size;
                }
                long id = nextOrderId++;
                set(out, i, CommandType.PLACE, uid, id, s, price, reserve, size, side, ioc ? OrderType.IOC : OrderType.GTC);
                if (!ioc) {
                    orders.add(new long[] {id, uid, reserve, side.ordinal()});
                }
                continue;
            }
            int k = rnd.nextInt(orders.size());
            long[] o = orders.get(k);
            long uid = o[1];
            long id = o[0];
            Side side = Session.SIDES[(int) o[3]];
            if (rnd.nextInt(200) == 0) {
                uid = 1 + rnd.nextInt(p.users()); // someone else's order: rejected unless it is theirs
            }
            if (roll < 710) {
                set(out, i, CommandType.CANCEL, uid, id, s, 0, 0, 0, side, OrderType.GTC);
                orders.set(k, orders.get(orders.size() - 1));
                orders.remove(orders.size() - 1);
            } else if (roll < 910) {
                long price = mid[s] - rnd.nextInt(-6, 30) * sign(side);
                set(out, i, CommandType.MOVE, uid, id, s, price, o[2], 0, side, OrderType.GTC);
            } else {
                set(out, i, CommandType.REDUCE, uid, id, s, 0, 0, 1 + rnd.nextInt(10), side, OrderType.GTC);
            }
        }
        return withDeposits(out, need, rnd);
    }

    private static long sign(Side side) {
        return side == Side.BID ? 1 : -1;
    }

    private static void set(Session out, int i, CommandType type, long uid, long orderId, int symbol, long price,
                            long reserve, long size, Side side, OrderType orderType) {
        out.type[i] = (byte) type.ordinal();
        out.uid[i] = uid;
        out.orderId[i] = orderId;
        out.symbol[i] = symbol;
        out.price[i] = price;
        out.reserve[i] = reserve;
        out.qty[i] = size;
        out.side[i] = (byte) side.ordinal();
        out.orderType[i] = (byte) orderType.ordinal();
    }

    private static Session withDeposits(Session s, long[][] need, SplittableRandom rnd) {
        List<long[]> rows = new ArrayList<>();
        for (int uid = 1; uid < need.length; uid++) {
            for (int c = 0; c < need[uid].length; c++) {
                if (need[uid][c] > 0 || c == 0) {
                    rows.add(new long[] {uid, c, need[uid][c] + rnd.nextInt(1_000)});
                }
            }
        }
        s.depositUid = new long[rows.size()];
        s.depositCurrency = new int[rows.size()];
        s.depositAmount = new long[rows.size()];
        for (int i = 0; i < rows.size(); i++) {
            s.depositUid[i] = rows.get(i)[0];
            s.depositCurrency[i] = (int) rows.get(i)[1];
            s.depositAmount[i] = rows.get(i)[2];
        }
        return s;
    }
}
