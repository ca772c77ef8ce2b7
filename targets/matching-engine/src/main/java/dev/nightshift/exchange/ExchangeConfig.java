package dev.nightshift.exchange;

/** Pipeline shape: matching engines shard symbols, risk engines shard users; both counts powers of two. */
public record ExchangeConfig(int matchingEngines, int riskEngines, WaitStrategyType waitStrategy, int ringSize) {

    public ExchangeConfig {
        requirePowerOfTwo("matchingEngines", matchingEngines);
        requirePowerOfTwo("riskEngines", riskEngines);
        requirePowerOfTwo("ringSize", ringSize);
    }

    /** The throughput preset used by the benchmark: sized for a many-core server. */
    public static ExchangeConfig throughputPreset() {
        return new ExchangeConfig(4, 2, WaitStrategyType.BUSY_SPIN, 64 * 1024);
    }

    public ExchangeConfig withTopology(int me, int re) {
        return new ExchangeConfig(me, re, waitStrategy, ringSize);
    }

    public ExchangeConfig withWaitStrategy(WaitStrategyType wait) {
        return new ExchangeConfig(matchingEngines, riskEngines, wait, ringSize);
    }

    private static void requirePowerOfTwo(String name, int value) {
        if (value < 1 || Integer.bitCount(value) != 1) {
            throw new IllegalArgumentException(name + " must be a power of two, got " + value);
        }
    }
}
