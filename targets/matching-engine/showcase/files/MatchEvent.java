package dev.nightshift.exchange;

/**
 * What the matching engine tells the risk release stage. TRADE: the command's order (the taker)
 * traded with a resting maker order. REDUCE: part of the command owner's order left the book
 * without trading (cancel, reduce, IOC remainder), so its hold is released.
 *
 * Mutable and pooled per ring slot (see Command.addEvent): the hot path allocates no events.
 */
public final class MatchEvent {
    public enum Type { TRADE, REDUCE }

    public Type type;
    public long makerUid;
    public long makerOrderId;
    public long makerReservePrice;
    public long price;
    public long size;

    public MatchEvent() {}

    public MatchEvent(Type type, long makerUid, long makerOrderId, long makerReservePrice, long price, long size) {
        set(type, makerUid, makerOrderId, makerReservePrice, price, size);
    }

    void set(Type type, long makerUid, long makerOrderId, long makerReservePrice, long price, long size) {
        this.type = type;
        this.makerUid = makerUid;
        this.makerOrderId = makerOrderId;
        this.makerReservePrice = makerReservePrice;
        this.price = price;
        this.size = size;
    }
}
