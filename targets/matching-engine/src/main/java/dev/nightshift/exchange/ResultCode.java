package dev.nightshift.exchange;

public enum ResultCode {
    PENDING,
    SUCCESS,
    /** Risk pre-check: not enough free funds to hold for the order. */
    REJECTED_NSF,
    /** Bad arguments (size, price above the bid's reserve price). */
    REJECTED_INVALID,
    /** Cancel/move/reduce of an order that is not on the book (filled, cancelled, or someone else's). */
    REJECTED_UNKNOWN_ORDER
}
