package dev.nightshift.exchange.bench;

import dev.nightshift.exchange.ExchangeCore;
import dev.nightshift.exchange.OrderType;
import dev.nightshift.exchange.Side;
import dev.nightshift.exchange.SymbolSpec;
import dev.nightshift.exchange.CommandType;
import java.util.List;

/** A generated trading session: symbols, opening deposits and the command stream (column arrays). */
public final class Session {
    static final CommandType[] TYPES = CommandType.values();
    static final Side[] SIDES = Side.values();
    static final OrderType[] ORDER_TYPES = OrderType.values();

    public final List<SymbolSpec> symbols;
    public final int currencies;
    long[] depositUid = new long[0];
    int[] depositCurrency = new int[0];
    long[] depositAmount = new long[0];

    public final int size;
    final byte[] type;
    final long[] uid;
    final long[] orderId;
    final int[] symbol;
    final long[] price;
    final long[] reserve;
    final long[] qty;
    final byte[] side;
    final byte[] orderType;

    Session(List<SymbolSpec> symbols, int currencies, int size) {
        this.symbols = symbols;
        this.currencies = currencies;
        this.size = size;
        type = new byte[size];
        uid = new long[size];
        orderId = new long[size];
        symbol = new int[size];
        price = new long[size];
        reserve = new long[size];
        qty = new long[size];
        side = new byte[size];
        orderType = new byte[size];
    }

    public void depositInto(ExchangeCore core) {
        for (int i = 0; i < depositUid.length; i++) {
            core.deposit(depositUid[i], depositCurrency[i], depositAmount[i]);
        }
    }

    public void submit(ExchangeCore core, int i) {
        core.submit(TYPES[type[i]], uid[i], orderId[i], symbol[i], price[i], reserve[i], qty[i],
                SIDES[side[i]], ORDER_TYPES[orderType[i]]);
    }

    public long totalDeposits(int currency) {
        long sum = 0;
        for (int i = 0; i < depositUid.length; i++) {
            if (depositCurrency[i] == currency) {
                sum += depositAmount[i];
            }
        }
        return sum;
    }
}
