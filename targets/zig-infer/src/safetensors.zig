//! Reads a .safetensors file: an 8-byte little-endian header length, a JSON header mapping
//! tensor names to {dtype, shape, data_offsets}, then the raw tensor bytes.
const std = @import("std");

pub const Tensor = struct {
    shape: []const usize,
    data: []f32,
};

pub const File = struct {
    tensors: std.StringHashMapUnmanaged(Tensor) = .empty,

    /// The tensor `name`, checked against the expected shape.
    pub fn get(self: *const File, name: []const u8, shape: []const usize) ![]f32 {
        const t = self.tensors.get(name) orelse {
            std.debug.print("missing tensor {s}\n", .{name});
            return error.MissingTensor;
        };
        if (!std.mem.eql(usize, t.shape, shape)) {
            std.debug.print("tensor {s}: shape {any}, expected {any}\n", .{ name, t.shape, shape });
            return error.BadShape;
        }
        return t.data;
    }

    pub fn has(self: *const File, name: []const u8) bool {
        return self.tensors.contains(name);
    }
};

const Entry = struct {
    dtype: []const u8,
    shape: []const usize,
    data_offsets: [2]u64,
};

/// Parses `bytes` (the whole file). Only F32 tensors are supported; each is copied into its own
/// aligned buffer, so `bytes` may be freed afterwards.
pub fn parse(arena: std.mem.Allocator, bytes: []const u8) !File {
    if (bytes.len < 8) return error.TruncatedFile;
    const header_len = std.mem.readInt(u64, bytes[0..8], .little);
    if (header_len > bytes.len - 8) return error.TruncatedFile;
    const data = bytes[8 + header_len ..];
    const header = try std.json.parseFromSliceLeaky(std.json.Value, arena, bytes[8..][0..header_len], .{});
    if (header != .object) return error.BadHeader;

    var file: File = .{};
    var it = header.object.iterator();
    while (it.next()) |kv| {
        if (std.mem.eql(u8, kv.key_ptr.*, "__metadata__")) continue;
        const e = try std.json.parseFromValueLeaky(Entry, arena, kv.value_ptr.*, .{ .ignore_unknown_fields = true });
        if (!std.mem.eql(u8, e.dtype, "F32")) {
            std.debug.print("tensor {s} has dtype {s}; only F32 is supported (convert the checkpoint)\n", .{ kv.key_ptr.*, e.dtype });
            return error.UnsupportedDtype;
        }
        var count: usize = 1;
        for (e.shape) |d| count *= d;
        const begin = e.data_offsets[0];
        const end = e.data_offsets[1];
        if (end < begin or end > data.len or end - begin != count * 4) return error.BadOffsets;
        const out = try arena.alignedAlloc(f32, .@"64", count);
        for (out, 0..) |*v, i| {
            v.* = @bitCast(std.mem.readInt(u32, data[begin + 4 * i ..][0..4], .little));
        }
        try file.tensors.put(arena, kv.key_ptr.*, .{ .shape = e.shape, .data = out });
    }
    return file;
}
