package dev.nightshift.exchange.bench;

import dev.nightshift.exchange.Account;
import dev.nightshift.exchange.ExchangeConfig;
import dev.nightshift.exchange.ExchangeCore;
import dev.nightshift.exchange.RiskEngine;
import dev.nightshift.exchange.Side;
import dev.nightshift.exchange.SymbolSpec;
import dev.nightshift.exchange.WaitStrategyType;
import java.util.Locale;
import java.util.Map;

/**
 * Throughput benchmark in the style of exchange-core's PerfThroughput: per iteration a fresh core
 * gets the same deposits and command stream. After one warm-up session it prints one line per timed
 * iteration (e.g. "1. 0.433 MT/s"), their mean (e.g. "Average: 0.441 MT/s") and a checksum of the
 * final state (e.g. "checksum: 3f2a9c0d1e4b5a67/12345"). Every session
 * checks the invariants and the state against the single-threaded reference; any failure exits
 * with status 1.
 *
 * Usage: ThroughputBenchmark PRESET [--iterations N] [--me N --re N] [--wait busy_spin|yielding|blocking]
 */
public final class ThroughputBenchmark {
    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: ThroughputBenchmark small|medium|peak [--iterations N] [--me N] [--re N] [--wait W]");
            System.exit(2);
        }
        Preset preset = Preset.named(args[0]);
        ExchangeConfig config = ExchangeConfig.throughputPreset();
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--iterations" -> preset = preset.withIterations(Integer.parseInt(args[i + 1]));
                case "--commands" -> preset = preset.withCommands(Integer.parseInt(args[i + 1]));
                case "--me" -> config = config.withTopology(Integer.parseInt(args[i + 1]), config.riskEngines());
                case "--re" -> config = config.withTopology(config.matchingEngines(), Integer.parseInt(args[i + 1]));
                case "--wait" -> config = config.withWaitStrategy(
                        WaitStrategyType.valueOf(args[i + 1].toUpperCase(Locale.ROOT)));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        System.out.printf("preset %s: %d commands, %d symbols, %d users; %dME+%dRE %s ring %d%n",
                preset.name(), preset.commands(), preset.symbols(), preset.users(),
                config.matchingEngines(), config.riskEngines(), config.waitStrategy(), config.ringSize());
        Session session = CommandGenerator.generate(preset);
        String expected = ReferenceExchange.digest(session);
        // one untimed session first: the JIT compiles the hot path there instead of inside iteration 1
        Outcome warm = runOnce(session, config);
        if (!warm.digest.equals(expected)) {
            fail("warm-up: final state " + warm.digest + " differs from the reference " + expected);
        }
        System.out.printf(Locale.ROOT, "warm-up: %.3f MT/s%n", warm.mtps);
        double sum = 0;
        for (int it = 1; it <= preset.iterations(); it++) {
            Outcome out = runOnce(session, config);
            if (!out.digest.equals(expected)) {
                fail("iteration " + it + ": final state " + out.digest + " differs from the reference " + expected);
            }
            System.out.printf(Locale.ROOT, "%d. %.3f MT/s%n", it, out.mtps);
            sum += out.mtps;
        }
        System.out.printf(Locale.ROOT, "Average: %.3f MT/s%n", sum / preset.iterations());
        System.out.println("checksum: " + expected);
    }

    public record Outcome(double mtps, String digest) {}

    /** One timed session on a fresh core; checks invariants and returns the state digest. */
    public static Outcome runOnce(Session session, ExchangeConfig config) {
        ExchangeCore core = new ExchangeCore(config, session.symbols);
        session.depositInto(core);
        core.start();
        long t0 = System.nanoTime();
        for (int i = 0; i < session.size; i++) {
            session.submit(core, i);
        }
        core.awaitIdle();
        long elapsed = System.nanoTime() - t0;
        core.shutdown();
        checkInvariants(core, session);
        return new Outcome(session.size * 1e3 / elapsed, StateDigest.of(core, session.symbols));
    }

    /** Funds are conserved per currency, nothing negative, and no book is crossed. */
    public static void checkInvariants(ExchangeCore core, Session session) {
        long[] total = new long[session.currencies];
        for (RiskEngine re : core.riskEngines()) {
            for (Map.Entry<Long, Map<Integer, Account>> u : re.users().entrySet()) {
                for (Map.Entry<Integer, Account> a : u.getValue().entrySet()) {
                    Account acc = a.getValue();
                    if (acc.held() < 0 || acc.free() < 0) {
                        fail("negative funds: uid " + u.getKey() + " currency " + a.getKey()
                                + " free " + acc.free() + " held " + acc.held());
                    }
                    total[a.getKey()] += acc.free() + acc.held();
                }
            }
        }
        for (int c = 0; c < session.currencies; c++) {
            if (total[c] != session.totalDeposits(c)) {
                fail("currency " + c + " not conserved: " + total[c] + " != deposits " + session.totalDeposits(c));
            }
        }
        for (SymbolSpec spec : session.symbols) {
            long[] best = {Long.MIN_VALUE, Long.MAX_VALUE};
            core.book(spec.id()).forEachOrder((sym, id, uid, side, price, reserve, remaining) -> {
                if (remaining <= 0) {
                    fail("symbol " + sym + ": order " + id + " rests with size " + remaining);
                }
                if (side == Side.BID) {
                    best[0] = Math.max(best[0], price);
                } else {
                    best[1] = Math.min(best[1], price);
                }
            });
            if (best[0] >= best[1]) {
                fail("symbol " + spec.id() + ": crossed book, bid " + best[0] + " >= ask " + best[1]);
            }
        }
    }

    private static void fail(String message) {
        throw new IllegalStateException("INVARIANT VIOLATED: " + message);
    }
}
