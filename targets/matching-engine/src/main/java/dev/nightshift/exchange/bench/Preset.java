package dev.nightshift.exchange.bench;

/** Benchmark workloads; everything is derived from the seed, so a preset is one fixed command stream. */
public record Preset(String name, int symbols, int currencies, int users, int commands, int bookCap, int iterations, long seed) {

    public static Preset named(String name) {
        return switch (name) {
            case "small" -> new Preset("small", 16, 4, 500, 40_000, 100, 2, 1L);
            case "medium" -> new Preset("medium", 2_000, 16, 50_000, 250_000, 100, 3, 42L);
            case "peak" -> new Preset("peak", 8, 4, 5_000, 400_000, 1_000, 3, 7L);
            default -> throw new IllegalArgumentException("unknown preset " + name + " (small, medium, peak)");
        };
    }

    public Preset withCommands(int n) {
        return new Preset(name, symbols, currencies, users, n, bookCap, iterations, seed);
    }

    public Preset withIterations(int n) {
        return new Preset(name, symbols, currencies, users, commands, bookCap, n, seed);
    }
}
