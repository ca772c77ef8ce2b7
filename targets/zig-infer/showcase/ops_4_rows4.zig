//! The numeric kernels of the forward pass. Dot products use SIMD vectors; matrix-vector
//! products split their rows over both cores.
const std = @import("std");
const pool = @import("pool.zig");

/// Lanes per SIMD vector: 16 f32 fills one AVX-512 register (LLVM splits it on narrower CPUs).
const V = 16;
const Vec = @Vector(V, f32);

const Matvec = struct {
    out: []f32,
    w: []const f32,
    x: []const f32,

    /// Four rows at a time when the shapes allow: each chunk of x is loaded once for four rows.
    fn rows(ctx: *const anyopaque, begin: usize, end: usize) void {
        const m: *const Matvec = @ptrCast(@alignCast(ctx));
        const n = m.x.len;
        var i = begin;
        while (i + 4 <= end and n % V == 0) : (i += 4) {
            var acc: [4]Vec = .{ @splat(0), @splat(0), @splat(0), @splat(0) };
            var j: usize = 0;
            while (j < n) : (j += V) {
                const vx: Vec = m.x[j..][0..V].*;
                inline for (0..4) |r| {
                    const vw: Vec = m.w[(i + r) * n + j ..][0..V].*;
                    acc[r] += vw * vx;
                }
            }
            inline for (0..4) |r| m.out[i + r] = @reduce(.Add, acc[r]);
        }
        while (i < end) : (i += 1) m.out[i] = dot(m.w[i * n ..][0..n], m.x);
    }
};

/// out[i] = sum_j w[i, j] * x[j], with w row-major [out.len, x.len]; rows split over two threads.
pub fn matvec(out: []f32, w: []const f32, x: []const f32) void {
    std.debug.assert(w.len == out.len * x.len);
    const job: Matvec = .{ .out = out, .w = w, .x = x };
    // Small products finish before a hand-off to the helper would pay for itself.
    if (w.len < 32 * 1024) return Matvec.rows(&job, 0, out.len);
    pool.parallelFor(out.len, 16, &job, Matvec.rows);
}

/// out = x / sqrt(mean(x^2) + eps) * weight
pub fn rmsnorm(out: []f32, x: []const f32, weight: []const f32, eps: f32) void {
    var ss: f32 = 0;
    for (x) |v| ss += v * v;
    const scale = 1.0 / @sqrt(ss / @as(f32, @floatFromInt(x.len)) + eps);
    for (out, x, weight) |*o, v, w| o.* = v * scale * w;
}

/// Rotary embedding of one head in place, pairing element i with i + dim/2 (HF "rotate half").
pub fn rope(v: []f32, pos: usize, theta: f64) void {
    const half = v.len / 2;
    for (0..half) |i| {
        const inv_freq = std.math.pow(f64, theta, -@as(f64, @floatFromInt(2 * i)) / @as(f64, @floatFromInt(v.len)));
        const angle = @as(f64, @floatFromInt(pos)) * inv_freq;
        const c: f32 = @floatCast(@cos(angle));
        const s: f32 = @floatCast(@sin(angle));
        const a = v[i];
        const b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

/// In-place softmax.
pub fn softmax(x: []f32) void {
    var max: f32 = -std.math.inf(f32);
    for (x) |v| max = @max(max, v);
    var sum: f32 = 0;
    for (x) |*v| {
        v.* = @exp(v.* - max);
        sum += v.*;
    }
    for (x) |*v| v.* /= sum;
}

/// SIMD dot product: four independent vector accumulators hide the add latency.
pub fn dot(a: []const f32, b: []const f32) f32 {
    const n = a.len;
    var acc: [4]Vec = .{ @splat(0), @splat(0), @splat(0), @splat(0) };
    var j: usize = 0;
    while (j + 4 * V <= n) : (j += 4 * V) {
        inline for (0..4) |u| {
            const va: Vec = a[j + u * V ..][0..V].*;
            const vb: Vec = b[j + u * V ..][0..V].*;
            acc[u] += va * vb;
        }
    }
    while (j + V <= n) : (j += V) {
        const va: Vec = a[j..][0..V].*;
        const vb: Vec = b[j..][0..V].*;
        acc[0] += va * vb;
    }
    var sum = @reduce(.Add, (acc[0] + acc[1]) + (acc[2] + acc[3]));
    while (j < n) : (j += 1) sum += a[j] * b[j];
    return sum;
}

pub fn silu(x: f32) f32 {
    return x / (1.0 + @exp(-x));
}
