package dev.nightshift.exchange;

import java.util.ArrayList;
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
    public List<MatchEvent> events = new ArrayList<>();

    /**
     * Event objects owned by this slot. A slot is reused only after every stage has finished with
     * it, so its events can be recycled instead of allocated per trade.
     */
    private final ArrayList<MatchEvent> pool = new ArrayList<>();

    /** Called by the grouping stage before a slot is processed again. */
    public void resetOutputs(long group) {
        this.group = group;
        this.result = ResultCode.PENDING;
        events.clear();
    }

    public void addEvent(MatchEvent.Type type, long makerUid, long makerOrderId, long makerReservePrice,
                         long price, long size) {
        int n = events.size();
        MatchEvent e;
        if (n < pool.size()) {
            e = pool.get(n);
        } else {
            e = new MatchEvent();
            pool.add(e);
        }
        e.set(type, makerUid, makerOrderId, makerReservePrice, price, size);
        events.add(e);
    }
}
