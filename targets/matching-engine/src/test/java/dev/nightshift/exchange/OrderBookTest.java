package dev.nightshift.exchange;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Order-book semantics, driven through the book directly (one thread, no pipeline). */
class OrderBookTest {
    private final OrderBook book = new OrderBook(7);

    private Command cmd(CommandType type, long uid, long orderId, long price, long size, Side side, OrderType ot) {
        Command c = new Command();
        c.type = type;
        c.uid = uid;
        c.orderId = orderId;
        c.symbol = 7;
        c.price = price;
        c.reservePrice = side == Side.BID ? price + 10 : price;
        c.size = size;
        c.side = side;
        c.orderType = ot;
        c.result = ResultCode.PENDING;
        c.events = new ArrayList<>();
        book.process(c);
        return c;
    }

    private Command gtc(long uid, long id, long price, long size, Side side) {
        return cmd(CommandType.PLACE, uid, id, price, size, side, OrderType.GTC);
    }

    /** "id@price:remaining" for every resting order in visiting order. */
    private List<String> resting() {
        List<String> out = new ArrayList<>();
        book.forEachOrder((sym, id, uid, side, price, reserve, rem) -> out.add(side + " " + id + "@" + price + ":" + rem));
        return out;
    }

    private static List<String> trades(Command c) {
        List<String> out = new ArrayList<>();
        for (MatchEvent e : c.events) {
            out.add(e.type == MatchEvent.Type.TRADE ? "T " + e.makerOrderId + "@" + e.price + "x" + e.size : "R " + e.size);
        }
        return out;
    }

    @Test
    void restingOrdersAreSortedByPriceThenTime() {
        gtc(1, 1, 100, 5, Side.BID);
        gtc(2, 2, 101, 5, Side.BID);
        gtc(3, 3, 100, 5, Side.BID);
        gtc(4, 4, 105, 5, Side.ASK);
        gtc(5, 5, 104, 5, Side.ASK);
        assertEquals(List.of("BID 2@101:5", "BID 1@100:5", "BID 3@100:5", "ASK 5@104:5", "ASK 4@105:5"), resting());
    }

    @Test
    void aggressiveOrderTradesAtMakerPricesInPriorityOrder() {
        gtc(1, 1, 101, 3, Side.ASK);
        gtc(2, 2, 100, 3, Side.ASK);
        gtc(3, 3, 100, 3, Side.ASK);
        Command taker = gtc(9, 9, 101, 7, Side.BID);
        assertEquals(ResultCode.SUCCESS, taker.result);
        assertEquals(List.of("T 2@100x3", "T 3@100x3", "T 1@101x1"), trades(taker));
        assertEquals(List.of("ASK 1@101:2"), resting());
    }

    @Test
    void gtcRemainderRestsAndIocRemainderIsReleased() {
        gtc(1, 1, 100, 2, Side.ASK);
        Command g = gtc(9, 9, 100, 5, Side.BID);
        assertEquals(List.of("T 1@100x2"), trades(g));
        assertEquals(List.of("BID 9@100:3"), resting());
        Command ioc = cmd(CommandType.PLACE, 8, 8, 99, 4, Side.ASK, OrderType.IOC);
        assertEquals(List.of("T 9@100x3", "R 1"), trades(ioc));
        assertEquals(List.of(), resting());
    }

    @Test
    void nonCrossingOrderDoesNotTrade() {
        gtc(1, 1, 101, 2, Side.ASK);
        Command bid = gtc(2, 2, 100, 2, Side.BID);
        assertEquals(List.of(), trades(bid));
        assertEquals(List.of("BID 2@100:2", "ASK 1@101:2"), resting());
    }

    @Test
    void cancelRemovesOnlyOwnOrders() {
        gtc(1, 1, 100, 4, Side.BID);
        Command wrongOwner = cmd(CommandType.CANCEL, 2, 1, 0, 0, Side.BID, OrderType.GTC);
        assertEquals(ResultCode.REJECTED_UNKNOWN_ORDER, wrongOwner.result);
        Command cancel = cmd(CommandType.CANCEL, 1, 1, 0, 0, Side.ASK, OrderType.GTC);
        assertEquals(ResultCode.SUCCESS, cancel.result);
        assertEquals(Side.BID, cancel.side); // the book tells the risk stage the real side
        assertEquals(List.of("R 4"), trades(cancel));
        assertEquals(List.of(), resting());
        assertEquals(ResultCode.REJECTED_UNKNOWN_ORDER, cmd(CommandType.CANCEL, 1, 1, 0, 0, Side.BID, OrderType.GTC).result);
    }

    @Test
    void reduceShrinksAndRemovesAtZero() {
        gtc(1, 1, 100, 5, Side.ASK);
        assertEquals(List.of("R 2"), trades(cmd(CommandType.REDUCE, 1, 1, 0, 2, Side.ASK, OrderType.GTC)));
        assertEquals(List.of("ASK 1@100:3"), resting());
        assertEquals(List.of("R 3"), trades(cmd(CommandType.REDUCE, 1, 1, 0, 10, Side.ASK, OrderType.GTC)));
        assertEquals(List.of(), resting());
    }

    @Test
    void moveLosesTimePriorityAndCanTrade() {
        gtc(1, 1, 100, 2, Side.BID);
        gtc(2, 2, 100, 2, Side.BID);
        gtc(3, 3, 99, 2, Side.BID);
        cmd(CommandType.MOVE, 1, 1, 100, 0, Side.BID, OrderType.GTC);
        assertEquals(List.of("BID 2@100:2", "BID 1@100:2", "BID 3@99:2"), resting());
        Command move = cmd(CommandType.MOVE, 3, 3, 98, 0, Side.BID, OrderType.GTC);
        assertEquals(ResultCode.SUCCESS, move.result);
        gtc(4, 4, 103, 3, Side.ASK);
        Command cross = cmd(CommandType.MOVE, 4, 4, 100, 0, Side.ASK, OrderType.GTC);
        assertEquals(List.of("T 2@100x2", "T 1@100x1"), trades(cross));
        assertEquals(List.of("BID 1@100:1", "BID 3@98:2"), resting());
    }

    @Test
    void bidCannotMoveAboveItsReservePrice() {
        gtc(1, 1, 100, 2, Side.BID); // reserve 110
        assertEquals(ResultCode.REJECTED_INVALID, cmd(CommandType.MOVE, 1, 1, 111, 0, Side.BID, OrderType.GTC).result);
        assertEquals(ResultCode.SUCCESS, cmd(CommandType.MOVE, 1, 1, 110, 0, Side.BID, OrderType.GTC).result);
        assertEquals(List.of("BID 1@110:2"), resting());
    }
}
