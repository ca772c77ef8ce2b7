package dev.nightshift.exchange;

/** A tradable pair: bids pay in the quote currency, asks deliver the base currency. */
public record SymbolSpec(int id, int baseCurrency, int quoteCurrency) {}
