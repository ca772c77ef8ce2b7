package dev.nightshift.exchange;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/** The accounts of the users in one shard (uid & mask == shard), shared by its two stages. */
public final class RiskEngine {
    private final int shard;
    private final int mask;
    /** Symbol specs by id, keyed by a primitive: a Map<Integer, ...> lookup boxes ids above 127. */
    private final LongObjectMap<SymbolSpec> symbols = new LongObjectMap<>();
    /** uid -> accounts indexed by currency (grown on demand): no boxing on the hot path */
    private final LongObjectMap<Account[]> users = new LongObjectMap<>(1 << 16);

    public RiskEngine(int shard, int count, Map<Integer, SymbolSpec> symbols) {
        this.shard = shard;
        this.mask = count - 1;
        symbols.forEach((id, spec) -> this.symbols.put(id, spec));
    }

    public boolean owns(long uid) {
        return (uid & mask) == shard;
    }

    public void deposit(long uid, int currency, long amount) {
        account(uid, currency).deposit += amount;
    }

    /** A snapshot for inspection (tests, invariant checks); not used on the hot path. */
    public Map<Long, Map<Integer, Account>> users() {
        Map<Long, Map<Integer, Account>> out = new HashMap<>();
        users.forEach((uid, accounts) -> {
            Map<Integer, Account> byCurrency = new HashMap<>();
            for (int c = 0; c < accounts.length; c++) {
                if (accounts[c] != null) {
                    byCurrency.put(c, accounts[c]);
                }
            }
            out.put(uid, byCurrency);
        });
        return out;
    }

    private Account account(long uid, int currency) {
        Account[] accounts = users.get(uid);
        if (accounts == null || accounts.length <= currency) {
            accounts = accounts == null ? new Account[currency + 1] : Arrays.copyOf(accounts, currency + 1);
            users.put(uid, accounts);
        }
        Account a = accounts[currency];
        if (a == null) {
            a = new Account();
            accounts[currency] = a;
        }
        return a;
    }

    /** Stage R1: hold funds for a new order, or reject it. */
    public void preProcess(Command cmd) {
        if (cmd.type != CommandType.PLACE || !owns(cmd.uid)) {
            return;
        }
        if (cmd.size <= 0 || cmd.price <= 0 || (cmd.side == Side.BID && cmd.price > cmd.reservePrice)) {
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        SymbolSpec spec = symbols.get(cmd.symbol);
        if (spec == null) {
            cmd.result = ResultCode.REJECTED_INVALID;
            return;
        }
        Account account;
        long amount;
        if (cmd.side == Side.BID) {
            account = account(cmd.uid, spec.quoteCurrency());
            amount = cmd.reservePrice * cmd.size;
        } else {
            account = account(cmd.uid, spec.baseCurrency());
            amount = cmd.size;
        }
        if (account.spendable() < amount) {
            cmd.result = ResultCode.REJECTED_NSF;
            return;
        }
        account.debited += amount;
    }

    /** Stage R2: settle trades and release holds for the users of this shard. */
    public void postProcess(Command cmd) {
        if (cmd.events.isEmpty()) {
            return;
        }
        SymbolSpec spec = symbols.get(cmd.symbol);
        boolean takerHere = owns(cmd.uid);
        for (int i = 0, n = cmd.events.size(); i < n; i++) {
            MatchEvent e = cmd.events.get(i);
            if (e.type == MatchEvent.Type.REDUCE) {
                if (takerHere) {
                    release(cmd.uid, cmd.side, cmd.reservePrice, e.size, spec);
                }
                continue;
            }
            if (takerHere) {
                settle(cmd.uid, cmd.side, cmd.reservePrice, e.price, e.size, spec);
            }
            if (owns(e.makerUid)) {
                settle(e.makerUid, cmd.side.opposite(), e.makerReservePrice, e.price, e.size, spec);
            }
        }
    }

    private void settle(long uid, Side side, long reservePrice, long price, long size, SymbolSpec spec) {
        Account base = account(uid, spec.baseCurrency());
        Account quote = account(uid, spec.quoteCurrency());
        if (side == Side.BID) {
            quote.released += reservePrice * size;
            quote.credited += (reservePrice - price) * size;
            base.credited += size;
        } else {
            base.released += size;
            quote.credited += price * size;
        }
    }

    private void release(long uid, Side side, long reservePrice, long size, SymbolSpec spec) {
        Account account = account(uid, side == Side.BID ? spec.quoteCurrency() : spec.baseCurrency());
        long amount = side == Side.BID ? reservePrice * size : size;
        account.released += amount;
        account.credited += amount;
    }
}
