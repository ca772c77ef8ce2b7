//! infer: greedy decoding with a Qwen3-style model (fp32 safetensors + config.json).
//!
//!   infer --model DIR [--steps N] [--dump-logits FILE]
//!
//! Loads the model, prints "ready", reads one line of prompt token ids (spaces or commas) from
//! stdin, then prints one "token: ID" line per generated token, flushing each as it is made so
//! a driver can time prefill and decode. --dump-logits writes every forward pass's logits as
//! raw little-endian f32 rows.
const std = @import("std");
const Io = std.Io;
const model = @import("model.zig");
const safetensors = @import("safetensors.zig");

const usage = "usage: infer --model DIR [--steps N] [--dump-logits FILE]\n";

pub fn main(init: std.process.Init) !void {
    const arena = init.arena.allocator();
    const io = init.io;
    const args = try init.minimal.args.toSlice(arena);

    var model_dir: ?[]const u8 = null;
    var steps: usize = 32;
    var dump_path: ?[]const u8 = null;
    var i: usize = 1;
    while (i < args.len) : (i += 1) {
        const arg = args[i];
        if (i + 1 >= args.len) return fail(usage);
        i += 1;
        if (std.mem.eql(u8, arg, "--model")) {
            model_dir = args[i];
        } else if (std.mem.eql(u8, arg, "--steps")) {
            steps = std.fmt.parseInt(usize, args[i], 10) catch return fail(usage);
        } else if (std.mem.eql(u8, arg, "--dump-logits")) {
            dump_path = args[i];
        } else return fail(usage);
    }
    const dir_path = model_dir orelse return fail(usage);

    // Load config and weights.
    const dir = try Io.Dir.cwd().openDir(io, dir_path, .{});
    const cfg_text = try dir.readFileAlloc(io, "config.json", arena, .limited(1 << 20));
    const cfg = try std.json.parseFromSliceLeaky(model.Config, arena, cfg_text, .{ .ignore_unknown_fields = true });
    const bytes = try dir.readFileAlloc(io, "model.safetensors", init.gpa, .unlimited);
    const st = try safetensors.parse(arena, bytes);
    init.gpa.free(bytes);
    const m = try model.Model.init(arena, cfg, &st);

    var out_buf: [4096]u8 = undefined;
    var stdout_writer: Io.File.Writer = .init(.stdout(), io, &out_buf);
    const out = &stdout_writer.interface;
    try out.writeAll("ready\n");
    try out.flush();

    // Read the prompt.
    var in_buf: [1 << 16]u8 = undefined;
    var stdin_reader: Io.File.Reader = .init(.stdin(), io, &in_buf);
    const line = (try stdin_reader.interface.takeDelimiter('\n')) orelse return fail("no prompt on stdin\n");
    var prompt: std.ArrayList(usize) = .empty;
    var it = std.mem.tokenizeAny(u8, line, " ,\t\r");
    while (it.next()) |tok| {
        const id = std.fmt.parseInt(usize, tok, 10) catch return fail("bad token id in prompt\n");
        if (id >= cfg.vocab_size) return fail("token id out of range\n");
        try prompt.append(arena, id);
    }
    if (prompt.items.len == 0 or steps == 0) return fail("need a non-empty prompt and --steps >= 1\n");
    const max_len = prompt.items.len + steps;
    if (max_len > cfg.max_position_embeddings) return fail("prompt + steps exceeds max_position_embeddings\n");

    var dump_writer: ?Io.File.Writer = null;
    var dump_buf: [1 << 16]u8 = undefined;
    if (dump_path) |p| dump_writer = .init(try Io.Dir.cwd().createFile(io, p, .{}), io, &dump_buf);

    // Prefill the prompt token by token, then decode greedily.
    var state = try model.State.init(arena, cfg, max_len);
    var pos: usize = 0;
    var logits: []f32 = undefined;
    for (prompt.items) |tok| {
        logits = model.forward(&m, &state, tok, pos);
        pos += 1;
        if (dump_writer) |*w| try w.interface.writeAll(std.mem.sliceAsBytes(logits));
    }
    for (0..steps) |step| {
        const next = argmax(logits);
        try out.print("token: {d}\n", .{next});
        try out.flush();
        if (step + 1 == steps) break;
        logits = model.forward(&m, &state, next, pos);
        pos += 1;
        if (dump_writer) |*w| try w.interface.writeAll(std.mem.sliceAsBytes(logits));
    }
    if (dump_writer) |*w| {
        try w.interface.flush();
        w.file.close(io);
    }
}

fn argmax(x: []const f32) usize {
    var best: usize = 0;
    for (x, 0..) |v, j| {
        if (v > x[best]) best = j;
    }
    return best;
}

fn fail(msg: []const u8) error{Usage} {
    std.debug.print("{s}", .{msg});
    return error.Usage;
}
