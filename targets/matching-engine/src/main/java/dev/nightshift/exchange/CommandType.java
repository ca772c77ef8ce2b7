package dev.nightshift.exchange;

public enum CommandType { PLACE, CANCEL, MOVE, REDUCE }
