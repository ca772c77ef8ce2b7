package dev.nightshift.exchange;

import com.lmax.disruptor.EventHandler;
import com.lmax.disruptor.RingBuffer;
import com.lmax.disruptor.dsl.Disruptor;
import com.lmax.disruptor.dsl.ProducerType;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The pipeline: producer -> grouping -> risk pre-check (one handler per RE shard) -> matching
 * (one handler per ME shard) -> risk release (per RE shard) -> results. Every handler sees every
 * command and skips what its shard does not own.
 */
public final class ExchangeCore {
    private static final int GROUP_SIZE = 256;

    private final ExchangeConfig config;
    private final Map<Integer, SymbolSpec> symbols = new HashMap<>();
    private final List<RiskEngine> riskEngines = new ArrayList<>();
    private final List<MatchingEngine> matchingEngines = new ArrayList<>();
    private final ResultsCollector results = new ResultsCollector();
    private final Disruptor<Command> disruptor;
    private final RingBuffer<Command> ring;
    private final EventHandler<Command> resultsHandler;
    private boolean started;

    public ExchangeCore(ExchangeConfig config, List<SymbolSpec> symbolSpecs) {
        this.config = config;
        for (SymbolSpec s : symbolSpecs) {
            symbols.put(s.id(), s);
        }
        for (int i = 0; i < config.riskEngines(); i++) {
            riskEngines.add(new RiskEngine(i, config.riskEngines(), symbols));
        }
        for (int i = 0; i < config.matchingEngines(); i++) {
            matchingEngines.add(new MatchingEngine(i, config.matchingEngines(), symbolSpecs));
        }
        disruptor = new Disruptor<>(Command::new, config.ringSize(), threadFactory(),
                ProducerType.SINGLE, config.waitStrategy().create());

        EventHandler<Command> grouping = (cmd, seq, end) -> {
            cmd.group = seq / GROUP_SIZE;
            cmd.result = ResultCode.PENDING;
            cmd.events = new ArrayList<>();
        };
        @SuppressWarnings("unchecked")
        EventHandler<Command>[] pre = riskEngines.stream()
                .map(re -> (EventHandler<Command>) (cmd, seq, end) -> re.preProcess(cmd))
                .toArray(EventHandler[]::new);
        @SuppressWarnings("unchecked")
        EventHandler<Command>[] match = matchingEngines.stream()
                .map(me -> (EventHandler<Command>) (cmd, seq, end) -> me.process(cmd))
                .toArray(EventHandler[]::new);
        @SuppressWarnings("unchecked")
        EventHandler<Command>[] post = riskEngines.stream()
                .map(re -> (EventHandler<Command>) (cmd, seq, end) -> re.postProcess(cmd))
                .toArray(EventHandler[]::new);
        resultsHandler = (cmd, seq, end) -> results.accept(cmd);

        disruptor.handleEventsWith(grouping).then(pre).then(match).then(post).then(resultsHandler);
        ring = disruptor.getRingBuffer();
    }

    public ExchangeConfig config() {
        return config;
    }

    /** Opening balances; only before start(). */
    public void deposit(long uid, int currency, long amount) {
        if (started) {
            throw new IllegalStateException("deposits are taken before the session starts");
        }
        riskEngineFor(uid).deposit(uid, currency, amount);
    }

    public void start() {
        disruptor.start();
        started = true;
    }

    public void submit(CommandType type, long uid, long orderId, int symbol, long price, long reservePrice,
                       long size, Side side, OrderType orderType) {
        long seq = ring.next();
        Command cmd = ring.get(seq);
        cmd.type = type;
        cmd.uid = uid;
        cmd.orderId = orderId;
        cmd.symbol = symbol;
        cmd.price = price;
        cmd.reservePrice = reservePrice;
        cmd.size = size;
        cmd.side = side;
        cmd.orderType = orderType;
        ring.publish(seq);
    }

    /** Blocks until every published command went through the results stage. */
    public void awaitIdle() {
        long target = ring.getCursor();
        while (disruptor.getSequenceValueFor(resultsHandler) < target) {
            LockSupport.parkNanos(20_000);
        }
    }

    public void shutdown() {
        awaitIdle();
        disruptor.halt();
    }

    public RiskEngine riskEngineFor(long uid) {
        return riskEngines.get((int) (uid & (config.riskEngines() - 1)));
    }

    public List<RiskEngine> riskEngines() {
        return riskEngines;
    }

    public OrderBook book(int symbol) {
        return matchingEngines.get(symbol & (config.matchingEngines() - 1)).book(symbol);
    }

    public ResultsCollector results() {
        return results;
    }

    private static ThreadFactory threadFactory() {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, "exchange-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
