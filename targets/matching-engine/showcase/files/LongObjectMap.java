package dev.nightshift.exchange;

import java.util.Arrays;

/**
 * Open-addressing hash map from primitive long keys to objects: no Long boxing and no node
 * object per entry (what HashMap<Long, V> allocates on every put and most lookups).
 * Linear probing; removal shifts later entries back so lookups never need tombstones.
 */
public final class LongObjectMap<V> {
    private long[] keys;
    private Object[] values;
    private int size;
    private int mask;

    public LongObjectMap() {
        this(16);
    }

    public LongObjectMap(int expected) {
        int capacity = Integer.highestOneBit(Math.max(4, expected * 2) - 1) << 1;
        keys = new long[capacity];
        values = new Object[capacity];
        mask = capacity - 1;
    }

    private static int hash(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32));
    }

    private int slot(long key) {
        int i = hash(key) & mask;
        while (values[i] != null && keys[i] != key) {
            i = (i + 1) & mask;
        }
        return i;
    }

    @SuppressWarnings("unchecked")
    public V get(long key) {
        return (V) values[slot(key)];
    }

    public boolean containsKey(long key) {
        return values[slot(key)] != null;
    }

    /** Stores a non-null value. */
    public void put(long key, V value) {
        int i = slot(key);
        if (values[i] == null) {
            if (++size * 2 > keys.length) {
                grow();
                i = slot(key);
            }
            keys[i] = key;
        }
        values[i] = value;
    }

    @SuppressWarnings("unchecked")
    public V remove(long key) {
        int i = slot(key);
        Object old = values[i];
        if (old == null) {
            return null;
        }
        values[i] = null;
        size--;
        // shift back followers whose probe chain passed through the freed slot
        int j = i;
        while (true) {
            j = (j + 1) & mask;
            if (values[j] == null) {
                return (V) old;
            }
            int home = hash(keys[j]) & mask;
            if (((j - home) & mask) >= ((j - i) & mask)) {
                keys[i] = keys[j];
                values[i] = values[j];
                values[j] = null;
                i = j;
            }
        }
    }

    public int size() {
        return size;
    }

    @SuppressWarnings("unchecked")
    public void forEach(Visitor<V> visitor) {
        for (int i = 0; i < keys.length; i++) {
            if (values[i] != null) {
                visitor.visit(keys[i], (V) values[i]);
            }
        }
    }

    private void grow() {
        long[] oldKeys = keys;
        Object[] oldValues = values;
        keys = new long[oldKeys.length * 2];
        values = new Object[oldValues.length * 2];
        mask = keys.length - 1;
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldValues[i] != null) {
                int j = slot(oldKeys[i]);
                keys[j] = oldKeys[i];
                values[j] = oldValues[i];
            }
        }
        Arrays.fill(oldValues, null);
    }

    @FunctionalInterface
    public interface Visitor<V> {
        void visit(long key, V value);
    }
}
