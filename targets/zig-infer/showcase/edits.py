"""The edits of the showcase attempts: (path, old, new) triples for edit_file, old text exactly as
in the baseline sources.

Every attempt edits regions that no other attempt touches (or writes whole new files), so its
edits apply whichever earlier attempts were accepted or rejected: a rejected attempt vanishes and
the next one starts from the current best. tests/test_target_zig_infer.py checks this for every
combination of earlier verdicts.
"""

from __future__ import annotations

Edit = tuple[str, str, str]

SIMD_MATVEC_OLD = """/// out[i] = sum_j w[i, j] * x[j], with w row-major [out.len, x.len].
pub fn matvec(out: []f32, w: []const f32, x: []const f32) void {
    const n = x.len;
    std.debug.assert(w.len == out.len * n);
    for (out, 0..) |*o, i| {
        const row = w[i * n ..][0..n];
        var sum: f32 = 0;
        for (row, x) |a, b| sum += a * b;
        o.* = sum;
    }
}"""

SIMD_MATVEC_NEW = """/// Lanes per SIMD vector: 16 f32 is one AVX-512 register (LLVM splits it on narrower CPUs).
const V = 16;
const Vec = @Vector(V, f32);

/// out[i] = sum_j w[i, j] * x[j], with w row-major [out.len, x.len].
/// Four rows per pass: each x vector is loaded once for four rows, and the four independent
/// accumulators hide the latency of the vector multiply-add.
pub fn matvec(out: []f32, w: []const f32, x: []const f32) void {
    // Lets LLVM reassociate: tree reductions and fused multiply-adds instead of strict order.
    @setFloatMode(.optimized);
    const n = x.len;
    std.debug.assert(w.len == out.len * n);
    const nv = n - n % V;
    var i: usize = 0;
    while (i + 4 <= out.len) : (i += 4) {
        var acc: [4]Vec = @splat(@splat(0));
        var j: usize = 0;
        while (j < nv) : (j += V) {
            const vx: Vec = x[j..][0..V].*;
            inline for (0..4) |r| acc[r] += @as(Vec, w[(i + r) * n + j ..][0..V].*) * vx;
        }
        inline for (0..4) |r| {
            var sum = @reduce(.Add, acc[r]);
            for (w[(i + r) * n + nv ..][0 .. n - nv], x[nv..]) |a, b| sum += a * b;
            out[i + r] = sum;
        }
    }
    while (i < out.len) : (i += 1) out[i] = dot(w[i * n ..][0..n], x);
}"""

SIMD_DOT_OLD = """pub fn dot(a: []const f32, b: []const f32) f32 {
    var sum: f32 = 0;
    for (a, b) |x, y| sum += x * y;
    return sum;
}"""

SIMD_DOT_NEW = """/// SIMD dot product: two vector accumulators, then a scalar tail.
pub fn dot(a: []const f32, b: []const f32) f32 {
    @setFloatMode(.optimized);
    const n = a.len;
    var acc: [2]Vec = @splat(@splat(0));
    var j: usize = 0;
    while (j + 2 * V <= n) : (j += 2 * V) {
        inline for (0..2) |u| acc[u] += @as(Vec, a[j + u * V ..][0..V].*) * @as(Vec, b[j + u * V ..][0..V].*);
    }
    if (j + V <= n) {
        acc[0] += @as(Vec, a[j..][0..V].*) * @as(Vec, b[j..][0..V].*);
        j += V;
    }
    var sum = @reduce(.Add, acc[0] + acc[1]);
    while (j < n) : (j += 1) sum += a[j] * b[j];
    return sum;
}"""

EXP_SOFTMAX_OLD = """/// In-place softmax.
pub fn softmax(x: []f32) void {
    var max: f32 = -std.math.inf(f32);
    for (x) |v| max = @max(max, v);
    var sum: f32 = 0;
    for (x) |*v| {
        v.* = @exp(v.* - max);
        sum += v.*;
    }
    for (x) |*v| v.* /= sum;
}"""

EXP_SOFTMAX_NEW = """/// In-place softmax, 16 lanes at a time with expVec; a scalar @exp for the tail.
pub fn softmax(x: []f32) void {
    const W = 16;
    const nv = x.len - x.len % W;
    var vmax: @Vector(W, f32) = @splat(-std.math.inf(f32));
    var j: usize = 0;
    while (j < nv) : (j += W) vmax = @max(vmax, @as(@Vector(W, f32), x[j..][0..W].*));
    var max = @reduce(.Max, vmax);
    for (x[nv..]) |v| max = @max(max, v);
    var vsum: @Vector(W, f32) = @splat(0);
    j = 0;
    while (j < nv) : (j += W) {
        const e = expVec(W, @as(@Vector(W, f32), x[j..][0..W].*) - @as(@Vector(W, f32), @splat(max)));
        x[j..][0..W].* = e;
        vsum += e;
    }
    var sum = @reduce(.Add, vsum);
    for (x[nv..]) |*v| {
        v.* = @exp(v.* - max);
        sum += v.*;
    }
    const inv = 1.0 / sum;
    for (x) |*v| v.* *= inv;
}

/// exp for a vector to about 1 ulp: x = n ln2 + r with |r| <= ln2/2, exp(r) by the Cephes
/// degree-6 polynomial, 2^n by building the float's exponent bits. Inputs below -87 give
/// ~1e-38 instead of 0, which no softmax sum notices.
fn expVec(comptime W: usize, x_in: @Vector(W, f32)) @Vector(W, f32) {
    const F = @Vector(W, f32);
    const x = @min(@max(x_in, @as(F, @splat(-87.0))), @as(F, @splat(88.0)));
    const n = @round(x * @as(F, @splat(1.44269504088896341)));
    // ln2 split in two so n * ln2_hi is exact and the reduction loses no bits.
    const r = x - n * @as(F, @splat(0.693359375)) + n * @as(F, @splat(2.12194440e-4));
    var p: F = @splat(1.9875691500e-4);
    inline for (.{ 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1 }) |c| {
        p = p * r + @as(F, @splat(c));
    }
    const e = p * r * r + r + @as(F, @splat(1.0));
    const bits: @Vector(W, i32) = (@as(@Vector(W, i32), @intFromFloat(n)) + @as(@Vector(W, i32), @splat(127))) << @splat(23);
    return e * @as(F, @bitCast(bits));
}"""

ROPE_OLD = """/// Rotary embedding of one head in place, pairing element i with i + dim/2 (HF "rotate half").
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
}"""

ROPE_NEW = """/// Rotary embedding of one head in place, pairing element i with i + dim/2 (HF "rotate half").
/// Every head of every layer rotates by the same angles at a given position, so the cos/sin
/// table is computed once per (pos, dim, theta) and reused: pow/cos/sin once per token.
pub fn rope(v: []f32, pos: usize, theta: f64) void {
    const half = v.len / 2;
    if (half > rope_table.cos.len) return ropeDirect(v, pos, theta);
    const tab = &rope_table;
    if (tab.pos != pos or tab.dim != v.len or tab.theta != theta) {
        for (0..half) |i| {
            const inv_freq = std.math.pow(f64, theta, -@as(f64, @floatFromInt(2 * i)) / @as(f64, @floatFromInt(v.len)));
            const angle = @as(f64, @floatFromInt(pos)) * inv_freq;
            tab.cos[i] = @floatCast(@cos(angle));
            tab.sin[i] = @floatCast(@sin(angle));
        }
        tab.* = .{ .pos = pos, .dim = v.len, .theta = theta, .cos = tab.cos, .sin = tab.sin };
    }
    for (0..half) |i| {
        const a = v[i];
        const b = v[i + half];
        v[i] = a * tab.cos[i] - b * tab.sin[i];
        v[i + half] = b * tab.cos[i] + a * tab.sin[i];
    }
}

/// The angles of the last position rotated (one engine thread calls rope, so one table).
var rope_table: struct { pos: usize = std.math.maxInt(usize), dim: usize = 0, theta: f64 = 0, cos: [256]f32 = undefined, sin: [256]f32 = undefined } = .{};

fn ropeDirect(v: []f32, pos: usize, theta: f64) void {
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
}"""

FAST_EXP_SILU_OLD = """pub fn silu(x: f32) f32 {
    return x / (1.0 + @exp(-x));
}"""

FAST_EXP_SILU_NEW = """pub fn silu(x: f32) f32 {
    return x / (1.0 + fastExp(-x));
}

/// exp(x) by writing a scaled x straight into the float's exponent bits (Schraudolph 1999):
/// one multiply-add and a bit cast instead of a libm call. Clamped to the f32 exponent range.
fn fastExp(x: f32) f32 {
    const y = @min(@max(x, -87.0), 88.0);
    const bits: i32 = @intFromFloat(12102203.0 * y + 1064866805.0);
    return @bitCast(bits);
}"""

# model.zig: the matrix-vector products go through parallel.zig (two cores), q/k/v and gate/up
# each as one job.
THREADS_MODEL: list[tuple[str, str]] = [
    ('const ops = @import("ops.zig");\n', 'const ops = @import("ops.zig");\nconst parallel = @import("parallel.zig");\n'),
    ("""        ops.matvec(s.q, l.wq, s.xb);
        ops.matvec(s.k, l.wk, s.xb);
        ops.matvec(s.v, l.wv, s.xb);
""", """        parallel.matvecs(&.{ .{ .out = s.q, .w = l.wq }, .{ .out = s.k, .w = l.wk }, .{ .out = s.v, .w = l.wv } }, s.xb);
"""),
    ("        ops.matvec(s.xb2, l.wo, s.att);\n", "        parallel.matvec(s.xb2, l.wo, s.att);\n"),
    ("""        ops.matvec(s.hb, l.gate, s.xb);
        ops.matvec(s.hb2, l.up, s.xb);
""", """        parallel.matvecs(&.{ .{ .out = s.hb, .w = l.gate }, .{ .out = s.hb2, .w = l.up } }, s.xb);
"""),
    ("        ops.matvec(s.xb, l.down, s.hb);\n", "        parallel.matvec(s.xb, l.down, s.hb);\n"),
    ("    ops.matvec(s.logits, m.lm_head, s.x);\n", "    parallel.matvec(s.logits, m.lm_head, s.x);\n"),
]

# model.zig: attention moves to attention.zig (heads over both cores) with a transposed key cache.
ATTENTION_MODEL: list[tuple[str, str]] = [
    ('const safetensors = @import("safetensors.zig");\n',
     'const safetensors = @import("safetensors.zig");\nconst attention = @import("attention.zig");\n'),
    ("""    /// [layer][kv head][position][head_dim]
    key_cache: []f32,
""", """    /// [layer][kv head][head_dim][position]: transposed, so attention scores for consecutive
    /// positions are plain vector multiply-adds with no horizontal sums.
    key_cache: []f32,
    /// [layer][kv head][position][head_dim]
"""),
    ("            .scores = try arena.alloc(f32, max_len),\n",
     "            .scores = try arena.alloc(f32, cfg.num_attention_heads * max_len), // a row per head\n"),
    ("""    const group = c.num_attention_heads / c.num_key_value_heads;
    const scale = 1.0 / @sqrt(@as(f32, @floatFromInt(hd)));
""", ""),
    ("            @memcpy(s.key_cache[slot..][0..hd], kh);\n",
     """            const kt = s.key_cache[(li * c.num_key_value_heads + h) * hd * s.max_len ..];
            for (kh, 0..) |v, j| kt[j * s.max_len + pos] = v;
"""),
    ("""        for (0..c.num_attention_heads) |h| {
            const kvh = h / group;
            const base = (li * c.num_key_value_heads + kvh) * s.max_len * hd;
            const qh = s.q[h * hd ..][0..hd];
            const scores = s.scores[0 .. pos + 1];
            for (scores, 0..) |*sc, t| sc.* = ops.dot(qh, s.key_cache[base + t * hd ..][0..hd]) * scale;
            ops.softmax(scores);
            const out = s.att[h * hd ..][0..hd];
            @memset(out, 0);
            for (scores, 0..) |p, t| {
                const vt = s.value_cache[base + t * hd ..][0..hd];
                for (out, vt) |*o, v| o.* += p * v;
            }
        }
""", """        const layer_cache = c.num_key_value_heads * s.max_len * hd;
        attention.attend(&.{
            .q = s.q,
            .keys = s.key_cache[li * layer_cache ..][0..layer_cache],
            .values = s.value_cache[li * layer_cache ..][0..layer_cache],
            .out = s.att,
            .scores = s.scores,
            .heads = c.num_attention_heads,
            .kv_heads = c.num_key_value_heads,
            .head_dim = hd,
            .max_len = s.max_len,
            .len = pos + 1,
        });
"""),
]

SIMD: list[Edit] = [("src/ops.zig", SIMD_MATVEC_OLD, SIMD_MATVEC_NEW), ("src/ops.zig", SIMD_DOT_OLD, SIMD_DOT_NEW)]
THREADS: list[Edit] = [("src/model.zig", old, new) for old, new in THREADS_MODEL]
EXP_SOFTMAX: list[Edit] = [("src/ops.zig", EXP_SOFTMAX_OLD, EXP_SOFTMAX_NEW)]
FAST_EXP: list[Edit] = [("src/ops.zig", FAST_EXP_SILU_OLD, FAST_EXP_SILU_NEW)]
ATTENTION: list[Edit] = [("src/model.zig", old, new) for old, new in ATTENTION_MODEL]
ROPE: list[Edit] = [("src/ops.zig", ROPE_OLD, ROPE_NEW)]
