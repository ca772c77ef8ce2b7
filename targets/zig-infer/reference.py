"""Numpy reference of the Qwen3 forward pass: the correctness oracle and the speed bar to beat.

Same maths as the Zig engine (fp32): embedding, per layer RMSNorm -> q/k/v projections ->
q_norm/k_norm per head -> rotary embeddings (HF "rotate half") -> grouped-query causal attention
over a KV cache -> o_proj + residual -> RMSNorm -> SwiGLU MLP + residual; final RMSNorm and the
tied output head; greedy decoding.

    python reference.py --model weights/bench [--steps N]   # prints prefill/decode tok/s and tokens
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from prompt import PROMPT
from safetensors.numpy import load_file

HERE = Path(__file__).parent


class Model:
    def __init__(self, folder: Path) -> None:
        self.cfg = json.loads((folder / "config.json").read_text())
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}
        c = self.cfg
        self.hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        self.nh, self.nkv, self.eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        inv_freq = c["rope_theta"] ** (-np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        angles = np.outer(np.arange(c["max_position_embeddings"]), inv_freq)
        self.cos, self.sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        shape = (c["num_hidden_layers"], self.nkv, c["max_position_embeddings"], self.hd)
        self.k_cache = np.zeros(shape, np.float32)
        self.v_cache = np.zeros(shape, np.float32)
        self.pos = 0

    def rmsnorm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        # x: (T, heads, hd); pairs are (i, i + hd/2) as in HF's rotate_half.
        half = self.hd // 2
        cos, sin = self.cos[positions][:, None, :], self.sin[positions][:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    def forward(self, tokens: list[int]) -> np.ndarray:
        """Feed tokens at the next positions; returns logits (T, vocab)."""
        w, T, p0 = self.w, len(tokens), self.pos
        positions = np.arange(p0, p0 + T)
        x = w["model.embed_tokens.weight"][tokens]
        group = self.nh // self.nkv
        mask = np.triu(np.full((T, p0 + T), -np.inf, np.float32), k=p0 + 1)
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = self.rmsnorm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, self.nh, self.hd)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, self.nkv, self.hd)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, self.nkv, self.hd)
            q = self.rope(self.rmsnorm(q, w[p + "self_attn.q_norm.weight"]), positions)
            k = self.rope(self.rmsnorm(k, w[p + "self_attn.k_norm.weight"]), positions)
            self.k_cache[i, :, p0 : p0 + T] = k.transpose(1, 0, 2)
            self.v_cache[i, :, p0 : p0 + T] = v.transpose(1, 0, 2)
            keys = np.repeat(self.k_cache[i, :, : p0 + T], group, axis=0)  # (nh, S, hd)
            vals = np.repeat(self.v_cache[i, :, : p0 + T], group, axis=0)
            scores = q.transpose(1, 0, 2) @ keys.transpose(0, 2, 1) / np.float32(np.sqrt(self.hd)) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            att = (scores @ vals).transpose(1, 0, 2).reshape(T, self.nh * self.hd)
            x = x + att @ w[p + "self_attn.o_proj.weight"].T
            h = self.rmsnorm(x, w[p + "post_attention_layernorm.weight"])
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
        self.pos += T
        return self.rmsnorm(x, w["model.norm.weight"]) @ self.lm_head.T

    def generate(self, prompt: list[int], steps: int) -> tuple[list[int], np.ndarray, float, float]:
        """Greedy decoding. Returns (tokens, logits of every forward row, prefill_s, decode_s)."""
        self.reset()
        t0 = time.perf_counter()
        rows = [self.forward(prompt)]
        tokens = [int(np.argmax(rows[-1][-1]))]
        t1 = time.perf_counter()
        while len(tokens) < steps:
            rows.append(self.forward([tokens[-1]]))
            tokens.append(int(np.argmax(rows[-1][-1])))
        return tokens, np.concatenate(rows), t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=HERE / "weights" / "bench")
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--prompt", default=",".join(map(str, PROMPT)), help="comma-separated token ids")
    args = ap.parse_args()
    prompt = [int(t) for t in args.prompt.split(",")]
    tokens, _, prefill_s, decode_s = Model(args.model).generate(prompt, args.steps)
    print(f"prefill: {len(prompt) / prefill_s:.2f} tok/s")
    print(f"decode: {(len(tokens) - 1) / decode_s:.2f} tok/s")
    print("tokens: " + " ".join(map(str, tokens)))


if __name__ == "__main__":
    main()
