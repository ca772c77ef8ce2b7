//! One helper thread for data-parallel loops on two cores, and matvec on top of it.
//!
//! A job's range is cut into chunks. The calling thread claims chunks from the front, the helper
//! from the back, so when both run they meet near the middle and each core keeps touching the
//! same rows (and keeps them in its own L2) token after token. If the helper is descheduled on a
//! busy machine the caller simply takes its chunks too: nobody waits for a sleeping thread.
//!
//! State is one 64-bit word: job generation (16 bits) | front (24) | back (24), so a claim is one
//! compare-and-swap and a helper holding a stale job can never claim a chunk of a newer one.
const std = @import("std");
const ops = @import("ops.zig");

pub const Fn = *const fn (ctx: *const anyopaque, begin: usize, end: usize) void;

const Job = struct { ctx: *const anyopaque, run: Fn, n: usize, chunk: usize };

var job: Job = undefined;
var state = std.atomic.Value(u64).init(0);
var done = std.atomic.Value(usize).init(0); // chunks of the current job finished
var started = false;

const mask24: u64 = (1 << 24) - 1;

fn pack(gen: u64, front: u64, back: u64) u64 {
    return gen << 48 | front << 24 | back;
}

/// Claims one chunk of generation `gen` from the front or the back; null when none is left.
fn claim(gen: u64, from_back: bool) ?usize {
    var cur = state.load(.acquire);
    while (true) {
        const front = cur >> 24 & mask24;
        const back = cur & mask24;
        if (cur >> 48 != gen or front >= back) return null;
        const next = if (from_back) pack(gen, front, back - 1) else pack(gen, front + 1, back);
        cur = state.cmpxchgWeak(cur, next, .acq_rel, .acquire) orelse return if (from_back) back - 1 else front;
    }
}

fn runChunks(gen: u64, j: Job, from_back: bool) void {
    while (claim(gen, from_back)) |c| {
        const begin = c * j.chunk;
        j.run(j.ctx, begin, @min(begin + j.chunk, j.n));
        _ = done.fetchAdd(1, .release);
    }
}

fn helper() void {
    var last: u64 = 0;
    var idle: u32 = 0;
    while (true) {
        const gen = state.load(.acquire) >> 48;
        if (gen == last) {
            std.atomic.spinLoopHint();
            idle += 1;
            // Between tokens there is nothing to do; let other processes have the core.
            if (idle % 4096 == 0) std.Thread.yield() catch {};
            continue;
        }
        idle = 0;
        last = gen;
        runChunks(gen, job, true);
    }
}

/// run(ctx, begin, end) over [0, n) in chunks of `chunk`, shared between this thread and the
/// helper. Returns when every chunk is done. One calling thread only (not re-entrant).
pub fn parallelFor(n: usize, chunk: usize, ctx: *const anyopaque, run: Fn) void {
    const chunks = (n + chunk - 1) / chunk;
    if (chunks < 2) return run(ctx, 0, n);
    if (!started) {
        started = true;
        if (std.Thread.spawn(.{}, helper, .{})) |t| t.detach() else |_| {}
    }
    const gen = ((state.load(.monotonic) >> 48) + 1) & 0xffff;
    // The previous job is finished and no helper can claim a chunk of a stale generation, so
    // the shared job can be overwritten before the new generation is published.
    job = .{ .ctx = ctx, .run = run, .n = n, .chunk = chunk };
    done.store(0, .monotonic);
    state.store(pack(gen, 0, chunks), .release);
    runChunks(gen, job, false);
    while (done.load(.acquire) != chunks) std.atomic.spinLoopHint();
}

/// One matrix-vector product: out = w x, w row-major [out.len, x.len].
pub const Product = struct { out: []f32, w: []const f32 };

const Matvecs = struct { products: []const Product, x: []const f32 };

/// Rows [begin, end) of the products stacked on top of each other.
fn matvecRows(ctx: *const anyopaque, begin: usize, end: usize) void {
    const m: *const Matvecs = @ptrCast(@alignCast(ctx));
    const n = m.x.len;
    var first: usize = 0; // global index of the current product's row 0
    for (m.products) |p| {
        const lo = @max(begin, first);
        const hi = @min(end, first + p.out.len);
        if (lo < hi) ops.matvec(p.out[lo - first .. hi - first], p.w[(lo - first) * n .. (hi - first) * n], m.x);
        first += p.out.len;
    }
}

/// ops.matvec for several products of the same x (q/k/v, gate/up) as one job whose rows are
/// shared between both cores: one hand-off instead of one per product.
pub fn matvecs(products: []const Product, x: []const f32) void {
    var rows: usize = 0;
    for (products) |p| {
        std.debug.assert(p.w.len == p.out.len * x.len);
        rows += p.out.len;
    }
    const m: Matvecs = .{ .products = products, .x = x };
    // 32 rows per chunk: a multiple of the kernel's row blocking, and a few microseconds of work.
    parallelFor(rows, 32, &m, matvecRows);
}

pub fn matvec(out: []f32, w: []const f32, x: []const f32) void {
    matvecs(&.{.{ .out = out, .w = w }}, x);
}
