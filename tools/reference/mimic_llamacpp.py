#!/usr/bin/env python3
"""Diagnostic: numpy_forward.py with llama.cpp's CPU roundings switched on, one at a time.

Explains the gap between the F32 numpy reference and llama.cpp's logits by re-running the
numpy forward with each of llama.cpp's (CPU backend, use_extra_bufts = false, no flash
attention) deliberate precision reductions emulated:
  act   matmul activations quantized per block as ggml's vec_dot_type pairing demands:
        Q4_0/Q5_0/Q8_0 weights x Q8_0 (32 per block, f16 scale, round-to-nearest),
        k-quant weights x Q8_K (256 per block, f32 scale = max/-127 of the signed
        largest-magnitude value, as quantize_row_q8_K_ref); F32 weights x F32
  kv    K and V stored in an f16 KV cache, Q and the softmax probabilities rounded to f16
        (the F16 x F16 mul_mats of the non-flash attention)
  gelu  GELU through ggml's f16 look-up table (GGML_GELU_FP16): f16(gelu(f16(x))) for
        -10 < x < 10 (gemma3 only; SiLU is computed in f32)
and prints, per setting, cosine / top-1 / top-5 / rel-L2 of the last-token logits against
the numpy F32 reference and against llama.cpp's golden logits.

Usage:
  python3 tools/reference/mimic_llamacpp.py --model gemma-3-270m-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_forward as nf  # noqa: E402

K_QUANTS = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}
LEGACY_Q8_0_PAIRED = {"Q4_0", "Q5_0", "Q8_0"}
LEGACY_Q8_1_PAIRED = {"Q4_1", "Q5_1"}


class Tagged(np.ndarray):
    """A dequantized weight that remembers its GGML type (for the activation pairing)."""
    qtype: str = "F32"


def tag(w: np.ndarray, qtype: str) -> np.ndarray:
    t = w.view(Tagged)
    t.qtype = qtype
    return t


def q8_0(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_0 (x86 SIMD variant) then dequantize: per 32, d = amax/127 stored as
    f16, q = round-half-even(x * (127/amax)). The multiplier must be 127/amax, not 1/d:
    measured against llama.cpp's own Qcur of gemma-3 layer 0, 1/d or round-half-away
    flips a few roundings (rel. error 3e-4..1e-3 on the token hit) where 127/amax with
    half-even reproduces it to 3e-7."""
    b = x.reshape(*x.shape[:-1], -1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=-1, keepdims=True)
    d = amax / np.float32(127)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.round(b * inv)
    return (q * d.astype(np.float16).astype(np.float32)).reshape(x.shape).astype(np.float32)


def q8_1(x: np.ndarray) -> np.ndarray:
    # Same values as Q8_0 (Q8_1 adds a block sum); kept apart for clarity.
    return q8_0(x)


def q8_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_K_ref then dequantize: per 256, iscale = -127/max where max is the
    signed value of largest magnitude, q = min(127, nearest(iscale*x)), d = 1/iscale (f32)."""
    b = x.reshape(*x.shape[:-1], -1, 256).astype(np.float32)
    idx = np.abs(b).argmax(axis=-1)[..., None]
    mx = np.take_along_axis(b, idx, axis=-1)
    safe = np.where(mx == 0, np.float32(1), mx)
    iscale = (np.float32(-127) / safe).astype(np.float32)
    q = np.minimum(127, np.round(b * iscale))
    d = (np.float32(1) / iscale).astype(np.float32)
    out = np.where(mx == 0, 0, q * d)
    return out.reshape(x.shape).astype(np.float32)


def install(act: bool, kv: bool, gelu: bool):
    orig_weight = nf.Model.weight
    orig_chunks = nf.Model.row_chunks
    orig_matmul = nf.matmul
    orig_attention = nf.attention
    orig_gelu = nf.gelu_tanh

    def weight(self, name):
        return tag(orig_weight(self, name), self.tensors[name].tensor_type.name)

    def row_chunks(self, name, chunk=16384):
        qt = self.tensors[name].tensor_type.name
        for s, w in orig_chunks(self, name, chunk):
            yield s, tag(w, qt)

    def matmul(x, w):
        qt = getattr(w, "qtype", "F32")
        w = np.asarray(w)
        if act:
            if qt in K_QUANTS:
                x = q8_k(x)
            elif qt in LEGACY_Q8_0_PAIRED:
                x = q8_0(x)
            elif qt in LEGACY_Q8_1_PAIRED:
                x = q8_1(x)
            elif qt in ("F16", "BF16"):
                x = x.astype(np.float16).astype(np.float32)
        return orig_matmul(x, w)

    def attention(q, k, v, scale, window):
        if kv:
            f16 = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
            # KQ: mul_mat(K f16, Q -> f16); softmax f32 (scale applied inside soft_max);
            # KQV: mul_mat(V f16, probs -> f16).
            return orig_attention(q, k, v, scale, window, operand=f16)
        return orig_attention(q, k, v, scale, window)

    def gelu_tanh(x):
        if not gelu:
            return orig_gelu(x)
        xh = x.astype(np.float16).astype(np.float32)
        table = orig_gelu(xh).astype(np.float16).astype(np.float32)
        return np.where(x <= -10, np.float32(0), np.where(x >= 10, x, table)).astype(np.float32)

    nf.Model.weight = weight
    nf.Model.row_chunks = row_chunks
    nf.matmul = matmul
    nf.attention = attention
    nf.gelu_tanh = gelu_tanh

    def restore():
        nf.Model.weight = orig_weight
        nf.Model.row_chunks = orig_chunks
        nf.matmul = orig_matmul
        nf.attention = orig_attention
        nf.gelu_tanh = orig_gelu

    return restore


def compare(ref, got):
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    return (f"cos={r @ g / (np.linalg.norm(r) * np.linalg.norm(g)):.7f} "
            f"top1={'=' if r.argmax() == g.argmax() else '!='} "
            f"top5={'=' if set(np.argsort(-r)[:5]) == set(np.argsort(-g)[:5]) else '!='} "
            f"relL2={np.linalg.norm(r - g) / np.linalg.norm(r):.5f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--settings", default="none,act,kv,gelu,act+kv+gelu",
                    help="comma-separated list of '+'-joined emulations (none|act|kv|gelu)")
    args = ap.parse_args()
    path = Path(args.models_dir) / args.model
    stem = path.name[:-5]
    golden = Path(__file__).resolve().parents[2] / "tests/golden/reference" / f"llamacpp-{stem}.last-logits.f32"
    lc = np.fromfile(golden, dtype="<f4") if golden.exists() else None
    m = nf.Model(path)
    tokens = nf.CONTRACT_TOKENS[m.arch]
    base = None
    for setting in args.settings.split(","):
        on = set(setting.split("+")) - {"none"}
        restore = install("act" in on, "kv" in on, "gelu" in on)
        try:
            m = nf.Model(path)
            logits = nf.forward(m, tokens)["logits"][-1]
        finally:
            restore()
        if base is None and not on:
            base = logits
        line = f"{stem} [{setting:>12}]"
        if base is not None and on:
            line += f"  vs numpy-f32: {compare(base, logits)}"
        if lc is not None:
            line += f"  vs llama.cpp: {compare(lc, logits)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
