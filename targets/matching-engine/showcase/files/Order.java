package dev.nightshift.exchange;

public final class Order {
    public final long orderId;
    public final long uid;
    public final Side side;
    public final long reservePrice;
    public long price;
    public long size;
    public long filled;
    /** Neighbours in the order's price level (OrderBook.Level), null at either end. */
    Order prev;
    Order next;

    public Order(long orderId, long uid, Side side, long price, long reservePrice, long size) {
        this.orderId = orderId;
        this.uid = uid;
        this.side = side;
        this.price = price;
        this.reservePrice = reservePrice;
        this.size = size;
    }

    public long remaining() {
        return size - filled;
    }
}
