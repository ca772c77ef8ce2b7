//! Causal grouped-query attention of one new token over the KV cache, heads shared between cores.
const std = @import("std");
const ops = @import("ops.zig");
const parallel = @import("parallel.zig");

const V = 16;
const Vec = @Vector(V, f32);

pub const Args = struct {
    q: []const f32, // [heads][head_dim]
    keys: []const f32, // one layer's cache, transposed: [kv heads][head_dim][max_len]
    values: []const f32, // [kv heads][max_len][head_dim]
    out: []f32, // [heads][head_dim]
    scores: []f32, // scratch: [heads][max_len], so heads never share a row
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    max_len: usize,
    len: usize, // positions to attend to (pos + 1)
};

/// Attention for every query head. Tasks are pairs of heads that share a KV head (when the
/// grouping allows), so each pass over the cache serves two heads; tasks go to the thread pool.
pub fn attend(a: *const Args) void {
    const pairs = (a.heads / a.kv_heads) % 2 == 0;
    parallel.parallelFor(a.heads, if (pairs) 2 else 1, a, run);
}

fn run(ctx: *const anyopaque, begin: usize, end: usize) void {
    const a: *const Args = @ptrCast(@alignCast(ctx));
    if (end - begin == 2) return heads(2, a, begin);
    for (begin..end) |h| heads(1, a, h);
}

/// Heads h0 .. h0+G-1, all reading the same KV head.
fn heads(comptime G: usize, a: *const Args, h0: usize) void {
    @setFloatMode(.optimized);
    const hd = a.head_dim;
    const base = h0 / (a.heads / a.kv_heads) * a.max_len * hd;
    var q: [G][]const f32 = undefined;
    var scores: [G][]f32 = undefined;
    var out: [G][]f32 = undefined;
    inline for (0..G) |g| {
        q[g] = a.q[(h0 + g) * hd ..][0..hd];
        scores[g] = a.scores[(h0 + g) * a.max_len ..][0..a.len];
        out[g] = a.out[(h0 + g) * hd ..][0..hd];
    }
    const scale = 1.0 / @sqrt(@as(f32, @floatFromInt(hd)));
    keyScores(G, scores, q, a.keys[base..], a.max_len, scale);
    inline for (0..G) |g| ops.softmax(scores[g]);
    // out = sum_t p_t v_t, up to 32 columns per pass so the sums stay in registers.
    var j: usize = 0;
    while (j + 2 * V <= hd) : (j += 2 * V) weighted(G, 2, out, scores, a.values[base..], j, hd);
    if (j + V <= hd) {
        weighted(G, 1, out, scores, a.values[base..], j, hd);
        j += V;
    }
    while (j < hd) : (j += 1) {
        inline for (0..G) |g| {
            var sum: f32 = 0;
            for (scores[g], 0..) |p, t| sum += p * a.values[base + t * hd + j];
            out[g][j] = sum;
        }
    }
}

/// scores[g][t] = scale * sum_d q[g][d] * keys[d * stride + t]: 64 positions per pass, each key
/// vector loaded once for all G heads.
fn keyScores(comptime G: usize, scores: [G][]f32, q: [G][]const f32, keys: []const f32, stride: usize, scale: f32) void {
    @setFloatMode(.optimized);
    const len = scores[0].len;
    var t: usize = 0;
    while (t + 4 * V <= len) : (t += 4 * V) {
        var acc: [G][4]Vec = @splat(@splat(@splat(0)));
        for (0..q[0].len) |d| {
            inline for (0..4) |u| {
                const k: Vec = keys[d * stride + t + u * V ..][0..V].*;
                inline for (0..G) |g| acc[g][u] += @as(Vec, @splat(q[g][d])) * k;
            }
        }
        inline for (0..G) |g| {
            inline for (0..4) |u| scores[g][t + u * V ..][0..V].* = acc[g][u] * @as(Vec, @splat(scale));
        }
    }
    while (t < len) : (t += 1) {
        inline for (0..G) |g| {
            var sum: f32 = 0;
            for (q[g], 0..) |qd, d| sum += qd * keys[d * stride + t];
            scores[g][t] = sum * scale;
        }
    }
}

/// out[g][j .. j + k*V] = sum_t p[g][t] * values[t * stride + j ..][0 .. k*V], two positions per
/// step into separate accumulators so the adds do not wait on each other.
fn weighted(comptime G: usize, comptime k: usize, out: [G][]f32, p: [G][]f32, values: []const f32, j: usize, stride: usize) void {
    @setFloatMode(.optimized);
    var acc: [2][G][k]Vec = @splat(@splat(@splat(@splat(0))));
    const len = p[0].len;
    var t: usize = 0;
    while (t + 2 <= len) : (t += 2) {
        inline for (0..2) |s| {
            inline for (0..k) |u| {
                const v: Vec = values[(t + s) * stride + j + u * V ..][0..V].*;
                inline for (0..G) |g| acc[s][g][u] += @as(Vec, @splat(p[g][t + s])) * v;
            }
        }
    }
    if (t < len) {
        inline for (0..k) |u| {
            const v: Vec = values[t * stride + j + u * V ..][0..V].*;
            inline for (0..G) |g| acc[0][g][u] += @as(Vec, @splat(p[g][t])) * v;
        }
    }
    inline for (0..G) |g| {
        inline for (0..k) |u| out[g][j + u * V ..][0..V].* = acc[0][g][u] + acc[1][g][u];
    }
}
