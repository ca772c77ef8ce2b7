//! The numeric kernels of the forward pass. Plain scalar loops: a first, obvious port.
const std = @import("std");

/// out[i] = sum_j w[i, j] * x[j], with w row-major [out.len, x.len].
pub fn matvec(out: []f32, w: []const f32, x: []const f32) void {
    const n = x.len;
    std.debug.assert(w.len == out.len * n);
    for (out, 0..) |*o, i| {
        const row = w[i * n ..][0..n];
        var sum: f32 = 0;
        for (row, x) |a, b| sum += a * b;
        o.* = sum;
    }
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

pub fn dot(a: []const f32, b: []const f32) f32 {
    var sum: f32 = 0;
    for (a, b) |x, y| sum += x * y;
    return sum;
}

pub fn silu(x: f32) f32 {
    return x / (1.0 + @exp(-x));
}
