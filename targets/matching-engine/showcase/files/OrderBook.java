package dev.nightshift.exchange;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Price-time priority limit order book for one symbol. Each side keeps its price levels in an array
 * sorted worst to best, so the best level is the last one and most changes happen near the end
 * (a book holds tens of levels: a binary search and a short array shift beat a tree). A level is
 * an intrusive FIFO list through the orders themselves, so cancel and move unlink in O(1) without
 * a queue object per level. Writes trade/reduce events into the command.
 */
public final class OrderBook {
    private final int symbol;
    private final Levels bids = new Levels(Side.BID);
    private final Levels asks = new Levels(Side.ASK);
    private final Map<Long, Order> orders = new HashMap<>();

    public OrderBook(int symbol) {
        this.symbol = symbol;
    }

    public int symbol() {
        return symbol;
    }

    public void process(Command cmd) {
        switch (cmd.type) {
            case PLACE -> place(cmd);
            case CANCEL -> cancel(cmd);
            case MOVE -> move(cmd);
            case REDUCE -> reduce(cmd);
        }
    }

    private void place(Command cmd) {
        if (orders.containsKey(cmd.orderId)) {
            // the risk stage already held funds: give them back
            addReduce(cmd, cmd.price, cmd.size);
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        Order order = new Order(cmd.orderId, cmd.uid, cmd.side, cmd.price, cmd.reservePrice, cmd.size);
        match(cmd, order);
        if (order.remaining() > 0) {
            if (cmd.orderType == OrderType.GTC) {
                rest(order);
            } else {
                addReduce(cmd, order.price, order.remaining());
            }
        }
        cmd.result = ResultCode.SUCCESS;
    }

    private void cancel(Command cmd) {
        Order order = ownOrder(cmd);
        if (order == null) {
            return;
        }
        unlink(order);
        orders.remove(order.orderId);
        addReduce(cmd, order.price, order.remaining());
        cmd.result = ResultCode.SUCCESS;
    }

    private void reduce(Command cmd) {
        Order order = ownOrder(cmd);
        if (order == null) {
            return;
        }
        if (cmd.size <= 0) {
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        long removed = Math.min(cmd.size, order.remaining());
        order.size -= removed;
        if (order.remaining() == 0) {
            unlink(order);
            orders.remove(order.orderId);
        }
        addReduce(cmd, order.price, removed);
        cmd.result = ResultCode.SUCCESS;
    }

    private void move(Command cmd) {
        Order order = ownOrder(cmd);
        if (order == null) {
            return;
        }
        if (order.side == Side.BID && cmd.price > order.reservePrice) {
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        unlink(order);
        order.price = cmd.price;
        match(cmd, order);
        if (order.remaining() > 0) {
            rest(order); // a moved order loses its time priority
        } else {
            orders.remove(order.orderId);
        }
        cmd.result = ResultCode.SUCCESS;
    }

    /** Looks up the command's order and tells the risk stage its side and reserve price. */
    private Order ownOrder(Command cmd) {
        Order order = orders.get(cmd.orderId);
        if (order == null || order.uid != cmd.uid) {
            cmd.result = ResultCode.REJECTED_UNKNOWN_ORDER;
            return null;
        }
        cmd.side = order.side;
        cmd.reservePrice = order.reservePrice;
        return order;
    }

    private void match(Command cmd, Order taker) {
        Levels opposite = taker.side == Side.BID ? asks : bids;
        while (taker.remaining() > 0 && opposite.count > 0) {
            Level level = opposite.best();
            long levelPrice = level.price;
            boolean crosses = taker.side == Side.BID ? levelPrice <= taker.price : levelPrice >= taker.price;
            if (!crosses) {
                break;
            }
            while (taker.remaining() > 0 && level.head != null) {
                Order maker = level.head;
                long qty = Math.min(taker.remaining(), maker.remaining());
                maker.filled += qty;
                taker.filled += qty;
                addTrade(cmd, maker, levelPrice, qty);
                if (maker.remaining() == 0) {
                    level.unlink(maker);
                    orders.remove(maker.orderId);
                }
            }
            if (level.head == null) {
                opposite.removeBest();
            }
        }
    }

    private void rest(Order order) {
        (order.side == Side.BID ? bids : asks).levelAt(order.price).append(order);
        orders.put(order.orderId, order);
    }

    private void unlink(Order order) {
        Levels side = order.side == Side.BID ? bids : asks;
        int i = side.find(order.price);
        Level level = side.levels[i];
        level.unlink(order);
        if (level.head == null) {
            side.removeAt(i);
        }
    }

    /** The maker traded `qty` at `price` with the command's order. */
    private static void addTrade(Command cmd, Order maker, long price, long qty) {
        cmd.events.add(new MatchEvent(MatchEvent.Type.TRADE, maker.uid, maker.orderId, maker.reservePrice, price, qty));
    }

    /** `size` of the command owner's order left the book without trading: its hold is released. */
    private static void addReduce(Command cmd, long price, long size) {
        cmd.events.add(new MatchEvent(MatchEvent.Type.REDUCE, 0, 0, 0, price, size));
    }

    public int orderCount() {
        return orders.size();
    }

    /** Visits resting orders: bids best price first, then asks best price first; FIFO within a level. */
    public void forEachOrder(OrderVisitor visitor) {
        for (Levels side : new Levels[] {bids, asks}) {
            for (int i = side.count - 1; i >= 0; i--) {
                for (Order o = side.levels[i].head; o != null; o = o.next) {
                    visitor.visit(symbol, o.orderId, o.uid, o.side, o.price, o.reservePrice, o.remaining());
                }
            }
        }
    }

    @FunctionalInterface
    public interface OrderVisitor {
        void visit(int symbol, long orderId, long uid, Side side, long price, long reservePrice, long remaining);
    }

    /** The orders resting at one price, oldest first, linked through Order.prev/next. */
    private static final class Level {
        final long price;
        Order head;
        Order tail;

        Level(long price) {
            this.price = price;
        }

        void append(Order o) {
            o.prev = tail;
            o.next = null;
            if (tail == null) {
                head = o;
            } else {
                tail.next = o;
            }
            tail = o;
        }

        void unlink(Order o) {
            if (o.prev == null) {
                head = o.next;
            } else {
                o.prev.next = o.next;
            }
            if (o.next == null) {
                tail = o.prev;
            } else {
                o.next.prev = o.prev;
            }
            o.prev = null;
            o.next = null;
        }
    }

    /** One side's levels sorted worst to best: for bids by ascending price, for asks by descending price. */
    private static final class Levels {
        private final Side side;
        Level[] levels = new Level[16];
        int count;

        Levels(Side side) {
            this.side = side;
        }

        Level best() {
            return levels[count - 1];
        }

        /** Index of the level at `price`, or -(insertion point) - 1. */
        int find(long price) {
            int lo = 0;
            int hi = count - 1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                long p = levels[mid].price;
                if (p == price) {
                    return mid;
                }
                if (side == Side.BID ? price > p : price < p) {
                    lo = mid + 1; // better than mid: further right
                } else {
                    hi = mid - 1;
                }
            }
            return -lo - 1;
        }

        Level levelAt(long price) {
            int i = find(price);
            if (i >= 0) {
                return levels[i];
            }
            i = -i - 1;
            if (count == levels.length) {
                levels = Arrays.copyOf(levels, count * 2);
            }
            System.arraycopy(levels, i, levels, i + 1, count - i);
            count++;
            return levels[i] = new Level(price);
        }

        void removeAt(int i) {
            System.arraycopy(levels, i + 1, levels, i, count - i - 1);
            levels[--count] = null;
        }

        void removeBest() {
            levels[--count] = null;
        }
    }
}
