package dev.nightshift.exchange;

/**
 * One user's funds in one currency. The pre-check stage writes only `debited` (funds moved into
 * holds) and the release stage writes only `credited` and `released`, so the two stages never race
 * on a field. Trade proceeds become spendable at the next session: a pre-check sees only
 * deposit - debited, which keeps every accept/reject decision independent of thread timing.
 */
public final class Account {
    public long deposit;
    public long debited;
    public long credited;
    public long released;

    public long free() {
        return deposit - debited + credited;
    }

    public long held() {
        return debited - released;
    }

    public long spendable() {
        return deposit - debited;
    }
}
