package dev.nightshift.exchange;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nightshift.exchange.bench.CommandGenerator;
import dev.nightshift.exchange.bench.Preset;
import dev.nightshift.exchange.bench.ReferenceExchange;
import dev.nightshift.exchange.bench.Session;
import dev.nightshift.exchange.bench.ThroughputBenchmark;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The whole pipeline on the small preset: same final state as the reference, for every topology. */
class ExchangeCoreTest {
    private static final Session SMALL = CommandGenerator.generate(Preset.named("small"));
    private static final String EXPECTED = ReferenceExchange.digest(SMALL);

    @ParameterizedTest
    @CsvSource({"1,1,BLOCKING", "2,1,YIELDING", "4,2,BUSY_SPIN", "2,2,BLOCKING"})
    void everyTopologyReachesTheReferenceState(int me, int re, WaitStrategyType wait) {
        ExchangeConfig config = new ExchangeConfig(me, re, wait, 1024);
        ThroughputBenchmark.Outcome out = ThroughputBenchmark.runOnce(SMALL, config); // checks invariants too
        assertEquals(EXPECTED, out.digest());
    }

    @Test
    void generatorIsDeterministic() {
        Session again = CommandGenerator.generate(Preset.named("small"));
        assertEquals(EXPECTED, ReferenceExchange.digest(again));
    }

    @Test
    void fundsAreHeldSettledAndReleased() {
        SymbolSpec spec = new SymbolSpec(0, 1, 0);
        ExchangeCore core = new ExchangeCore(new ExchangeConfig(1, 2, WaitStrategyType.BLOCKING, 64), List.of(spec));
        core.deposit(1, 0, 10_000); // buyer: quote currency
        core.deposit(2, 1, 50); // seller: base currency
        core.start();
        core.submit(CommandType.PLACE, 2, 1, 0, 100, 100, 30, Side.ASK, OrderType.GTC);
        core.submit(CommandType.PLACE, 1, 2, 0, 100, 110, 20, Side.BID, OrderType.GTC); // holds 2200, pays 2000
        core.submit(CommandType.PLACE, 1, 3, 0, 90, 90, 1_000, Side.BID, OrderType.GTC); // NSF: 90000 > 7800
        core.submit(CommandType.CANCEL, 2, 1, 0, 0, 0, 0, Side.ASK, OrderType.GTC);
        core.shutdown();
        Account buyerQuote = core.riskEngineFor(1).users().get(1L).get(0);
        Account buyerBase = core.riskEngineFor(1).users().get(1L).get(1);
        Account sellerBase = core.riskEngineFor(2).users().get(2L).get(1);
        Account sellerQuote = core.riskEngineFor(2).users().get(2L).get(0);
        assertEquals(8_000, buyerQuote.free());
        assertEquals(0, buyerQuote.held());
        assertEquals(20, buyerBase.free());
        assertEquals(30, sellerBase.free());
        assertEquals(0, sellerBase.held());
        assertEquals(2_000, sellerQuote.free());
        assertEquals(1L, core.results().resultCounts().get(ResultCode.REJECTED_NSF));
        assertTrue(core.book(0).orderCount() == 0);
    }
}
