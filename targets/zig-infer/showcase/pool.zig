//! A helper thread for data-parallel loops. A job is cut into chunks that the caller and the
//! helper claim from a shared counter, so the caller never waits for the helper to wake up: if
//! the helper is slow (or descheduled on a busy machine) the caller simply does more chunks and
//! only waits for chunks the helper has already started.
//!
//! The counter packs the job's generation (high 32 bits) with the next chunk index (low 32
//! bits), so a helper holding a stale job can never claim a chunk of a newer one. Jobs alternate
//! between two slots: the slot being written is never the one a current claimant reads.
const std = @import("std");

pub const Job = struct {
    ctx: *const anyopaque,
    run: *const fn (ctx: *const anyopaque, begin: usize, end: usize) void,
    n: usize,
    chunk: usize,
    chunks: u32,
};

var jobs: [2]Job = undefined;
var counter = std.atomic.Value(u64).init(0); // generation << 32 | next chunk
var done = std.atomic.Value(u32).init(0); // chunks of the current job finished
var started = false;

/// Claims and runs chunks of generation `gen` until none are left; returns how many it ran.
fn work(gen: u32, job: *const Job) void {
    while (true) {
        const cur = counter.load(.acquire);
        if (cur >> 32 != gen or @as(u32, @truncate(cur)) >= job.chunks) return;
        if (counter.cmpxchgWeak(cur, cur + 1, .acq_rel, .acquire) != null) continue;
        const c: usize = @as(u32, @truncate(cur));
        const begin = c * job.chunk;
        job.run(job.ctx, begin, @min(begin + job.chunk, job.n));
        _ = done.fetchAdd(1, .release);
    }
}

fn helper() void {
    var last: u32 = 0;
    var spins: u32 = 0;
    while (true) {
        const gen: u32 = @intCast(counter.load(.acquire) >> 32);
        if (gen == last) {
            std.atomic.spinLoopHint();
            spins += 1;
            if (spins == 1 << 12) {
                spins = 0;
                std.Thread.yield() catch {};
            }
            continue;
        }
        last = gen;
        work(gen, &jobs[gen & 1]);
    }
}

/// Calls run(ctx, begin, end) over [0, n) in chunks of `chunk`, spread over this thread and the
/// helper. Not re-entrant: one caller thread.
pub fn parallelFor(n: usize, chunk: usize, ctx: *const anyopaque, run: *const fn (*const anyopaque, usize, usize) void) void {
    if (!started) {
        started = true;
        if (std.Thread.spawn(.{}, helper, .{})) |t| t.detach() else |_| {}
    }
    const gen: u32 = @as(u32, @intCast(counter.load(.monotonic) >> 32)) +% 1;
    const chunks: u32 = @intCast((n + chunk - 1) / chunk);
    jobs[gen & 1] = .{ .ctx = ctx, .run = run, .n = n, .chunk = chunk, .chunks = chunks };
    done.store(0, .monotonic);
    counter.store(@as(u64, gen) << 32, .release);
    work(gen, &jobs[gen & 1]);
    while (done.load(.acquire) != chunks) std.atomic.spinLoopHint();
}
