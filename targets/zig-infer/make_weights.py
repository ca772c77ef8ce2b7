"""Write deterministic pseudo-random Qwen3-style weights (fp32 safetensors + HF config.json).

Usage: python make_weights.py [tiny|bench ...] [--out weights]
Idempotent: a size whose config.json and model.safetensors already match is skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SIZES: dict[str, dict] = {
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256),
    # Small weights, long context. The weights (~2 MB fp32) fit in the two cores' L2 caches (2 MB
    # each here), so decoding is compute bound and SIMD and threads pay off; with weights that
    # stream from L3 or DRAM every token (an 8-layer hidden-256 model was tried: 29 MB) the best
    # engine is memory bound at ~3-4x the scalar baseline whatever the kernels do. Multi-query
    # attention (one KV head for four query heads) over a 3500-token context makes attention,
    # the KV cache and softmax about half the work, as in real long-context decoding. One
    # baseline benchmark run (16 prompt + 3500 generated tokens) takes 3-6 s.
    "bench": dict(vocab_size=1024, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=32, max_position_embeddings=4096),
    # Dimensions that are not multiples of any SIMD width, for the tests' edge cases.
    "odd": dict(vocab_size=301, hidden_size=72, intermediate_size=100, num_hidden_layers=3,
                num_attention_heads=6, num_key_value_heads=3, head_dim=12, max_position_embeddings=128),
}
SEED = 20261122


def hf_config(size: str) -> dict:
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_act": "silu",
        "attention_bias": False,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        **SIZES[size],
    }


def make_tensors(cfg: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, inter, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd

    def linear(out_dim: int, in_dim: int) -> np.ndarray:
        # 1/sqrt(fan_in) keeps each projection's output near unit scale.
        return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    # A small embedding (as in HF init) so the blocks, not the input token, decide the next token;
    # a large one makes the tied head echo the current token forever.
    t = {"model.embed_tokens.weight": (0.05 * rng.standard_normal((cfg["vocab_size"], d))).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(d)
        t[p + "self_attn.q_proj.weight"] = linear(nq, d)
        t[p + "self_attn.k_proj.weight"] = linear(nkv, d)
        t[p + "self_attn.v_proj.weight"] = linear(nkv, d)
        t[p + "self_attn.o_proj.weight"] = linear(d, nq)
        t[p + "self_attn.q_norm.weight"] = norm(hd)
        t[p + "self_attn.k_norm.weight"] = norm(hd)
        t[p + "post_attention_layernorm.weight"] = norm(d)
        t[p + "mlp.gate_proj.weight"] = linear(inter, d)
        t[p + "mlp.up_proj.weight"] = linear(inter, d)
        t[p + "mlp.down_proj.weight"] = linear(d, inter)
    t["model.norm.weight"] = norm(d)
    return t


def write(size: str, out: Path) -> Path:
    folder = out / size
    cfg = hf_config(size)
    cfg_text = json.dumps(cfg, indent=2) + "\n"
    model = folder / "model.safetensors"
    if model.exists() and (folder / "config.json").exists() and (folder / "config.json").read_text() == cfg_text:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    save_file(make_tensors(cfg, SEED), str(model), metadata={"format": "pt"})
    (folder / "config.json").write_text(cfg_text)  # written last: its presence marks a complete model
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sizes", nargs="*", default=["tiny", "bench"], help=f"any of {list(SIZES)}")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    args = ap.parse_args()
    if unknown := set(args.sizes) - set(SIZES):
        ap.error(f"unknown size(s) {sorted(unknown)}; choose from {list(SIZES)}")
    for size in args.sizes:
        print(write(size, args.out))


if __name__ == "__main__":
    main()
