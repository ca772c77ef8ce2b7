//! A Qwen3-style decoder-only transformer: weights, KV cache and the single-token forward pass.
const std = @import("std");
const ops = @import("ops.zig");
const safetensors = @import("safetensors.zig");

/// The fields of a Hugging Face Qwen3 `config.json` that the forward pass needs.
pub const Config = struct {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: ?usize = null,
    rms_norm_eps: f32,
    rope_theta: f64,
    max_position_embeddings: usize,
    tie_word_embeddings: bool = true,

    pub fn headDim(c: Config) usize {
        return c.head_dim orelse c.hidden_size / c.num_attention_heads;
    }
};

const Layer = struct {
    input_norm: []f32,
    wq: []f32,
    wk: []f32,
    wv: []f32,
    wo: []f32,
    q_norm: []f32,
    k_norm: []f32,
    post_norm: []f32,
    gate: []f32,
    up: []f32,
    down: []f32,
};

pub const Model = struct {
    cfg: Config,
    embed: []f32,
    layers: []Layer,
    final_norm: []f32,
    lm_head: []f32,

    /// Binds the standard Qwen3 tensor names, checking every shape.
    pub fn init(arena: std.mem.Allocator, cfg: Config, st: *const safetensors.File) !Model {
        const d = cfg.hidden_size;
        const hd = cfg.headDim();
        const nq = cfg.num_attention_heads * hd;
        const nkv = cfg.num_key_value_heads * hd;
        const inter = cfg.intermediate_size;
        const layers = try arena.alloc(Layer, cfg.num_hidden_layers);
        for (layers, 0..) |*l, i| {
            var buf: [128]u8 = undefined;
            const p = try std.fmt.bufPrint(&buf, "model.layers.{d}.", .{i});
            l.* = .{
                .input_norm = try get(st, p, "input_layernorm.weight", &.{d}),
                .wq = try get(st, p, "self_attn.q_proj.weight", &.{ nq, d }),
                .wk = try get(st, p, "self_attn.k_proj.weight", &.{ nkv, d }),
                .wv = try get(st, p, "self_attn.v_proj.weight", &.{ nkv, d }),
                .wo = try get(st, p, "self_attn.o_proj.weight", &.{ d, nq }),
                .q_norm = try get(st, p, "self_attn.q_norm.weight", &.{hd}),
                .k_norm = try get(st, p, "self_attn.k_norm.weight", &.{hd}),
                .post_norm = try get(st, p, "post_attention_layernorm.weight", &.{d}),
                .gate = try get(st, p, "mlp.gate_proj.weight", &.{ inter, d }),
                .up = try get(st, p, "mlp.up_proj.weight", &.{ inter, d }),
                .down = try get(st, p, "mlp.down_proj.weight", &.{ d, inter }),
            };
        }
        const embed = try st.get("model.embed_tokens.weight", &.{ cfg.vocab_size, d });
        const untied = !cfg.tie_word_embeddings and st.has("lm_head.weight");
        return .{
            .cfg = cfg,
            .embed = embed,
            .layers = layers,
            .final_norm = try st.get("model.norm.weight", &.{d}),
            .lm_head = if (untied) try st.get("lm_head.weight", &.{ cfg.vocab_size, d }) else embed,
        };
    }

    fn get(st: *const safetensors.File, prefix: []const u8, name: []const u8, shape: []const usize) ![]f32 {
        var buf: [256]u8 = undefined;
        return st.get(try std.fmt.bufPrint(&buf, "{s}{s}", .{ prefix, name }), shape);
    }
};

/// Activations and the KV cache for one sequence of at most `max_len` tokens.
pub const State = struct {
    max_len: usize,
    x: []f32,
    xb: []f32,
    xb2: []f32,
    q: []f32,
    k: []f32,
    v: []f32,
    att: []f32,
    scores: []f32,
    hb: []f32,
    hb2: []f32,
    logits: []f32,
    /// [layer][kv head][position][head_dim]
    key_cache: []f32,
    value_cache: []f32,

    pub fn init(arena: std.mem.Allocator, cfg: Config, max_len: usize) !State {
        const hd = cfg.headDim();
        const cache = cfg.num_hidden_layers * cfg.num_key_value_heads * max_len * hd;
        return .{
            .max_len = max_len,
            .x = try arena.alloc(f32, cfg.hidden_size),
            .xb = try arena.alloc(f32, cfg.hidden_size),
            .xb2 = try arena.alloc(f32, cfg.hidden_size),
            .q = try arena.alloc(f32, cfg.num_attention_heads * hd),
            .k = try arena.alloc(f32, cfg.num_key_value_heads * hd),
            .v = try arena.alloc(f32, cfg.num_key_value_heads * hd),
            .att = try arena.alloc(f32, cfg.num_attention_heads * hd),
            .scores = try arena.alloc(f32, max_len),
            .hb = try arena.alloc(f32, cfg.intermediate_size),
            .hb2 = try arena.alloc(f32, cfg.intermediate_size),
            .logits = try arena.alloc(f32, cfg.vocab_size),
            .key_cache = try arena.alloc(f32, cache),
            .value_cache = try arena.alloc(f32, cache),
        };
    }
};

/// Feeds `token` at position `pos` (all earlier positions already fed); returns the logits.
pub fn forward(m: *const Model, s: *State, token: usize, pos: usize) []f32 {
    const c = m.cfg;
    const d = c.hidden_size;
    const hd = c.headDim();
    const group = c.num_attention_heads / c.num_key_value_heads;
    const scale = 1.0 / @sqrt(@as(f32, @floatFromInt(hd)));
    @memcpy(s.x, m.embed[token * d ..][0..d]);

    for (m.layers, 0..) |l, li| {
        // Attention block.
        ops.rmsnorm(s.xb, s.x, l.input_norm, c.rms_norm_eps);
        ops.matvec(s.q, l.wq, s.xb);
        ops.matvec(s.k, l.wk, s.xb);
        ops.matvec(s.v, l.wv, s.xb);
        for (0..c.num_attention_heads) |h| {
            const qh = s.q[h * hd ..][0..hd];
            ops.rmsnorm(qh, qh, l.q_norm, c.rms_norm_eps);
            ops.rope(qh, pos, c.rope_theta);
        }
        for (0..c.num_key_value_heads) |h| {
            const kh = s.k[h * hd ..][0..hd];
            ops.rmsnorm(kh, kh, l.k_norm, c.rms_norm_eps);
            ops.rope(kh, pos, c.rope_theta);
            const slot = ((li * c.num_key_value_heads + h) * s.max_len + pos) * hd;
            @memcpy(s.key_cache[slot..][0..hd], kh);
            @memcpy(s.value_cache[slot..][0..hd], s.v[h * hd ..][0..hd]);
        }
        for (0..c.num_attention_heads) |h| {
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
        ops.matvec(s.xb2, l.wo, s.att);
        for (s.x, s.xb2) |*x, y| x.* += y;

        // SwiGLU MLP block.
        ops.rmsnorm(s.xb, s.x, l.post_norm, c.rms_norm_eps);
        ops.matvec(s.hb, l.gate, s.xb);
        ops.matvec(s.hb2, l.up, s.xb);
        for (s.hb, s.hb2) |*g, u| g.* = ops.silu(g.*) * u;
        ops.matvec(s.xb, l.down, s.hb);
        for (s.x, s.xb) |*x, y| x.* += y;
    }
    ops.rmsnorm(s.x, s.x, m.final_norm, c.rms_norm_eps);
    ops.matvec(s.logits, m.lm_head, s.x);
    return s.logits;
}
