package dev.nightshift.exchange;

/** The order books of the symbols in one shard (symbol & mask == shard). */
public final class MatchingEngine {
    private final int shard;
    private final int mask;
    // keyed by a primitive: a Map<Integer, OrderBook> lookup boxes every symbol id above 127
    private final LongObjectMap<OrderBook> books = new LongObjectMap<>();

    public MatchingEngine(int shard, int count, Iterable<SymbolSpec> symbols) {
        this.shard = shard;
        this.mask = count - 1;
        for (SymbolSpec s : symbols) {
            if (owns(s.id())) {
                books.put(s.id(), new OrderBook(s.id()));
            }
        }
    }

    public boolean owns(int symbol) {
        return (symbol & mask) == shard;
    }

    public OrderBook book(int symbol) {
        return books.get(symbol);
    }

    public void process(Command cmd) {
        if (!owns(cmd.symbol) || cmd.result != ResultCode.PENDING) {
            return;
        }
        OrderBook book = books.get(cmd.symbol);
        if (book == null) {
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        book.process(cmd);
    }
}
