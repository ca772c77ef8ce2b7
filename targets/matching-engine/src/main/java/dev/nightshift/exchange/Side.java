package dev.nightshift.exchange;

public enum Side {
    BID, ASK;

    public Side opposite() {
        return this == BID ? ASK : BID;
    }
}
