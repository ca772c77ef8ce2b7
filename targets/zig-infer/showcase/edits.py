"""The edit_file edits of the showcase attempts, shared by make_transcript.py and replay.py."""

FAST_EXP_OLD_SILU = """pub fn silu(x: f32) f32 {
    return x / (1.0 + @exp(-x));
}"""

FAST_EXP_NEW_SILU = """pub fn silu(x: f32) f32 {
    return x / (1.0 + fastExp(-x));
}

/// exp(x) by writing a scaled x straight into the float's exponent bits (Schraudolph 1999):
/// one multiply-add and a bit cast instead of a libm call. Clamped to the f32 exponent range.
pub fn fastExp(x: f32) f32 {
    const y = @min(@max(x, -87.0), 88.0);
    const bits: i32 = @intFromFloat(12102203.0 * y + 1064866805.0);
    return @bitCast(bits);
}"""

FAST_EXP_OLD_SOFTMAX = "        v.* = @exp(v.* - max);"
FAST_EXP_NEW_SOFTMAX = "        v.* = fastExp(v.* - max);"
