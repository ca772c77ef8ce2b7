package dev.nightshift.exchange;

import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Price-time priority limit order book for one symbol. Each price level is a FIFO queue; the
 * best level is the first key of each side's sorted map. Writes trade/reduce events into the command.
 */
public final class OrderBook {
    private final int symbol;
    private final TreeMap<Long, ArrayDeque<Order>> bids = new TreeMap<>(Comparator.reverseOrder());
    private final TreeMap<Long, ArrayDeque<Order>> asks = new TreeMap<>();
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
        TreeMap<Long, ArrayDeque<Order>> opposite = taker.side == Side.BID ? asks : bids;
        while (taker.remaining() > 0 && !opposite.isEmpty()) {
            Map.Entry<Long, ArrayDeque<Order>> best = opposite.firstEntry();
            long levelPrice = best.getKey();
            boolean crosses = taker.side == Side.BID ? levelPrice <= taker.price : levelPrice >= taker.price;
            if (!crosses) {
                break;
            }
            ArrayDeque<Order> level = best.getValue();
            while (taker.remaining() > 0 && !level.isEmpty()) {
                Order maker = level.peekFirst();
                long qty = Math.min(taker.remaining(), maker.remaining());
                maker.filled += qty;
                taker.filled += qty;
                addTrade(cmd, maker, levelPrice, qty);
                if (maker.remaining() == 0) {
                    level.pollFirst();
                    orders.remove(maker.orderId);
                }
            }
            if (level.isEmpty()) {
                opposite.remove(levelPrice);
            }
        }
    }

    private void rest(Order order) {
        TreeMap<Long, ArrayDeque<Order>> side = order.side == Side.BID ? bids : asks;
        side.computeIfAbsent(order.price, p -> new ArrayDeque<>()).addLast(order);
        orders.put(order.orderId, order);
    }

    private void unlink(Order order) {
        TreeMap<Long, ArrayDeque<Order>> side = order.side == Side.BID ? bids : asks;
        ArrayDeque<Order> level = side.get(order.price);
        level.remove(order);
        if (level.isEmpty()) {
            side.remove(order.price);
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
        for (ArrayDeque<Order> level : bids.values()) {
            for (Order o : level) {
                visitor.visit(symbol, o.orderId, o.uid, o.side, o.price, o.reservePrice, o.remaining());
            }
        }
        for (ArrayDeque<Order> level : asks.values()) {
            for (Order o : level) {
                visitor.visit(symbol, o.orderId, o.uid, o.side, o.price, o.reservePrice, o.remaining());
            }
        }
    }

    @FunctionalInterface
    public interface OrderVisitor {
        void visit(int symbol, long orderId, long uid, Side side, long price, long reservePrice, long remaining);
    }
}
