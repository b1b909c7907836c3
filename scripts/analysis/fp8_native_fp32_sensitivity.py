#!/usr/bin/env python3
"""How much FP8 native inference on a checkpoint moves when its activations are computed in fp32
instead of fp64, with nothing else changed.

An independent NumPy emulation of the first decoder layers (dense or MoE-free layers only: MLA with
1 x 128 activation quantization of every FP8 linear's input, the dense SwiGLU FFN, final norm, LM
head), run twice on the checkpoint's prompt (reference.safetensors' input_ids): once in float64,
once in float32. Activation quantization follows the oracle (scale = max(amax, 1e-4) / 448, the
quotient rounded to fp32, then to e4m3 round-to-nearest-even). It prints the per-position cosine of
the two runs' logits and, per quantization point of layer 0, how many e4m3 codes differ.

Used for docs/model.md ("FP8 native with f32 activations"): on tiny-r1-mtp the fp32 run departs
from the fp64 one exactly as r1's GPU f32 path departs from the host's fp64 model (1 layer: median
cosine 0.99989), because a few of the first layer's quantizer inputs sit on e4m3 rounding ties
that fp64 resolves one way and fp32 the other, and the codes they change cascade through the
later quantizers; on tiny-v3-fp8-mtp no code differs. RoPE here is plain (no YaRN): the point is
the fp32-vs-fp64 difference of one network, not a match with the oracle.

--mixed adds two fp32 runs with parts in fp64, each against the fp64 run: "residual" keeps the
residual stream and the norms that read it (input, post-attention and final norm, and the
quantizers of their outputs) in fp64, as r1's GPU f32 path with its f64 residual does; "norms"
also computes the q_a and kv_a norms (of fp32 GEMM outputs) and their quantizers in fp64. GEMMs,
attention and SwiGLU stay fp32, and the GEMMs read f32 scales (as r1's do).

    python3 scripts/analysis/fp8_native_fp32_sensitivity.py tests/data/tiny-r1-mtp --layers 2

Needs python3-numpy only (Debian package).
"""
import argparse
import json
import struct

import numpy as np


def e4m3_values():
    """The 256 e4m3fn code values (NaN for 0x7f / 0xff)."""
    v = np.empty(256)
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            v[b] = np.nan
        elif e == 0:
            v[b] = m / 8 * 2.0 ** -6
        else:
            v[b] = (1 + m / 8) * 2.0 ** (e - 7)
        v[b] *= -1 if s else 1
    return v


E4M3 = e4m3_values()


def to_e4m3(x):
    """Round (float32 values, as float64) to e4m3, nearest-even, |x| <= 448 assumed."""
    a = np.abs(x)
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, -6)                      # subnormals share the 2^-6 binade's spacing
    step = 2.0 ** (e - 3)
    return np.sign(x) * np.round(a / step) * step  # np.round: half to even


class Checkpoint:
    def __init__(self, d):
        self.d = d
        self.index = json.load(open(f"{d}/model.safetensors.index.json"))["weight_map"]
        self.files = {}

    def _read(self, path, name):
        if path not in self.files:
            self.files[path] = open(path, "rb").read()
        b = self.files[path]
        n = struct.unpack("<Q", b[:8])[0]
        meta = json.loads(b[8:8 + n])[name]
        lo, hi = meta["data_offsets"]
        return meta, b[8 + n + lo:8 + n + hi]

    @staticmethod
    def _decode(meta, raw):
        dt, shape = meta["dtype"], meta["shape"]
        if dt == "BF16":
            return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64).reshape(shape)
        if dt == "F32":
            return np.frombuffer(raw, np.float32).astype(np.float64).reshape(shape)
        if dt == "F8_E4M3":
            return E4M3[np.frombuffer(raw, np.uint8)].reshape(shape)
        if dt == "I64":
            return np.frombuffer(raw, np.int64).reshape(shape)
        raise ValueError(dt)

    def get(self, name, path=None):
        return self._decode(*self._read(path or f"{self.d}/{self.index[name]}", name))

    def linear(self, prefix):
        """[N, K] weight; FP8 ones dequantized as code * scale in fp32 (as r1 and the oracle do)."""
        w = self.get(prefix + ".weight")
        if prefix + ".weight_scale_inv" in self.index:
            s = self.get(prefix + ".weight_scale_inv")
            n, k = w.shape
            sf = np.repeat(np.repeat(s, 128, 0), 128, 1)[:n, :k]
            w = (w.astype(np.float32) * sf.astype(np.float32)).astype(np.float64)
        return w


def forward(ck, cfg, ids, dt, layers, codes=None, mixed=None):
    D = np.dtype(dt)
    R = np.dtype(np.float64) if mixed else D                # residual stream and the norms reading it
    N = np.dtype(np.float64) if mixed == "norms" else D     # the q_a / kv_a norms
    t = len(ids)
    heads, nope, rope, vd, rank = (cfg[k] for k in ("num_attention_heads", "qk_nope_head_dim", "qk_rope_head_dim",
                                                   "v_head_dim", "kv_lora_rank"))
    inv_freq = 1.0 / (10000 ** (np.arange(0, rope, 2) / rope))

    def qd(x):  # 1 x 128 activation quantization in x's precision, dequantized into D
        E = x.dtype
        xb = x.reshape(x.shape[0], -1, 128)
        s = (np.maximum(np.abs(xb).max(-1, keepdims=True), E.type(1e-4)) / E.type(448)).astype(E)
        q = to_e4m3((xb / s).astype(np.float32).astype(np.float64))
        if codes is not None and layer == 0:
            codes.append(q)
        if D == np.float32:
            s = s.astype(np.float32)  # an fp32 GEMM reads an f32 scale
        return (q.astype(D) * s).reshape(x.shape).astype(D)

    def lin(x, w):
        return (x @ w.astype(D).T).astype(D)

    def norm(x, w):  # in x's precision
        E = x.dtype
        inv = (E.type(1) / np.sqrt((x * x).mean(-1, keepdims=True, dtype=E) + E.type(cfg["rms_norm_eps"]))).astype(E)
        return ((x * inv).astype(E) * w.astype(E)).astype(E)

    def rot(x, pos):  # interleaved pairs
        ang = np.outer(pos, inv_freq)
        c, s = np.cos(ang).astype(D), np.sin(ang).astype(D)
        if x.ndim == 3:
            c, s = c[:, None, :], s[:, None, :]
        y = np.empty_like(x)
        y[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
        y[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
        return y.astype(D)

    h = ck.get("model.embed_tokens.weight")[ids].astype(R)
    pos = np.arange(t)
    for layer in range(layers):
        p = f"model.layers.{layer}"
        x = norm(h, ck.get(p + ".input_layernorm.weight"))
        cq = lin(qd(x), ck.linear(p + ".self_attn.q_a_proj"))
        q = lin(qd(norm(cq.astype(N), ck.get(p + ".self_attn.q_a_layernorm.weight"))), ck.linear(p + ".self_attn.q_b_proj"))
        q = q.reshape(t, heads, nope + rope)
        kv = lin(qd(x), ck.linear(p + ".self_attn.kv_a_proj_with_mqa"))
        lat = qd(norm(kv[:, :rank].astype(N), ck.get(p + ".self_attn.kv_a_layernorm.weight")))
        kvx = lin(lat, ck.linear(p + ".self_attn.kv_b_proj")).reshape(t, heads, nope + vd)
        qp, kp = rot(q[:, :, nope:], pos), rot(kv[:, rank:], pos)
        sc = (np.einsum("thd,shd->hts", q[:, :, :nope], kvx[:, :, :nope]) + np.einsum("thd,sd->hts", qp, kp)).astype(D)
        sc = sc * D.type((nope + rope) ** -0.5)
        sc[:, np.triu(np.ones((t, t), bool), 1)] = -np.inf
        e = np.exp(sc - sc.max(-1, keepdims=True)).astype(D)
        o = np.einsum("hts,shd->thd", (e / e.sum(-1, keepdims=True)).astype(D), kvx[:, :, nope:])
        h = (h + lin(qd(o.reshape(t, heads * vd).astype(D)), ck.linear(p + ".self_attn.o_proj"))).astype(R)
        x2 = norm(h, ck.get(p + ".post_attention_layernorm.weight"))
        g, u = lin(qd(x2), ck.linear(p + ".mlp.gate_proj")), lin(qd(x2), ck.linear(p + ".mlp.up_proj"))
        a = (g / (D.type(1) + np.exp(-g)) * u).astype(D)
        h = (h + lin(qd(a), ck.linear(p + ".mlp.down_proj"))).astype(R)
    return norm(h, ck.get("model.norm.weight")).astype(D).astype(np.float64) @ ck.get("lm_head.weight").T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint directory with reference.safetensors (tests/data/tiny-*)")
    ap.add_argument("--layers", type=int, default=1, help="decoder layers to run (dense ones only)")
    ap.add_argument("--mixed", action="store_true", help="also run fp32 with the residual (and norms) in fp64")
    a = ap.parse_args()
    cfg = json.load(open(f"{a.model}/config.json"))
    if a.layers > cfg.get("first_k_dense_replace", 0):
        ap.error(f"only the first {cfg.get('first_k_dense_replace', 0)} layers are dense in {a.model}")
    ck = Checkpoint(a.model)
    ids = ck.get("input_ids", f"{a.model}/reference.safetensors")
    c64, c32 = [], []
    l64 = forward(ck, cfg, ids, np.float64, a.layers, c64)
    l32 = forward(ck, cfg, ids, np.float32, a.layers, c32)
    names = ["q_a input", "q_b input", "kv_a input", "kv_b input (latent)", "o_proj input", "gate input", "up input",
             "down input"]
    runs = [("fp32", l32, c32)]
    if a.mixed:
        for m in ("residual", "norms"):
            cm = []
            runs.append((f"fp32 with fp64 {m}", forward(ck, cfg, ids, np.float32, a.layers, cm, m), cm))
    for label, lx, cx in runs:
        cos = (l64 * lx).sum(-1) / np.sqrt((l64 * l64).sum(-1) * (lx * lx).sum(-1))
        print(f"{a.model}, {a.layers} layer(s), FP8 native: {label} vs fp64 logits cosine median {np.median(cos):.8f}, "
              f"worst {cos.min():.8f}")
        for n, x, y in zip(names, c64, cx):
            print(f"  layer 0 {n}: {int((x != y).sum())} of {x.size} e4m3 codes differ")


if __name__ == "__main__":
    main()
