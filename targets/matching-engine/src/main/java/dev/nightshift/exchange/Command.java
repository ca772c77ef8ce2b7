package dev.nightshift.exchange;

import java.util.List;

/** One slot of the ring buffer; the producer fills the inputs, the stages fill the outputs. */
public final class Command {
    // inputs
    public CommandType type;
    public long uid;
    public long orderId;
    public int symbol;
    /** Limit price for PLACE, new price for MOVE. */
    public long price;
    /** Highest price a bid may ever trade or move to; funds are held at this price. */
    public long reservePrice;
    public long size;
    public Side side;
    public OrderType orderType;

    // outputs
    public long group;
    public ResultCode result;
    public List<MatchEvent> events;
}
