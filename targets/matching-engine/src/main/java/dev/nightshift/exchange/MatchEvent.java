package dev.nightshift.exchange;

/**
 * What the matching engine tells the risk release stage. TRADE: the command's order (the taker)
 * traded with a resting maker order. REDUCE: part of the command owner's order left the book
 * without trading (cancel, reduce, IOC remainder), so its hold is released.
 */
public final class MatchEvent {
    public enum Type { TRADE, REDUCE }

    public final Type type;
    public final long makerUid;
    public final long makerOrderId;
    public final long makerReservePrice;
    public final long price;
    public final long size;

    public MatchEvent(Type type, long makerUid, long makerOrderId, long makerReservePrice, long price, long size) {
        this.type = type;
        this.makerUid = makerUid;
        this.makerOrderId = makerOrderId;
        this.makerReservePrice = makerReservePrice;
        this.price = price;
        this.size = size;
    }
}
