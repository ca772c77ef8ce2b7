package dev.nightshift.exchange;

/** GTC rests on the book until filled or cancelled; IOC matches what it can and drops the rest. */
public enum OrderType { GTC, IOC }
