#!/usr/bin/env python3
"""Independent float32 numpy reference forward pass for Parallax.

Reads a GGUF with gguf-py (GGUFReader + gguf.quants.dequantize), dequantizes every
weight to f32 and runs the full-sequence causal forward pass in float32 numpy for the
`qwen2`, `llama`, `qwen3` and `gemma3` architectures, recording statistics at the same capture points
("sites") the Rust engine probes. Its only dependencies are numpy and gguf-py, so it
shares no code with the engine it checks.

Numerics (the Rust F32 path is held to these):
  * weights: gguf-py's dequantizers, to f32;
  * matmuls: float32 x float32 with float32 accumulation (numpy/BLAS sgemm), unless
    `--accum f64` is given (then float64 accumulation, result rounded to f32) -- used
    only to measure how sensitive the numbers are to accumulation order;
  * RMSNorm: sum of squares in float64 (as ggml's CPU rms_norm does), scale in f32;
  * softmax: float32 with max subtraction;
  * activations stay float32 between ops.

Statistics per site: count, mean, std (SAMPLE std, n-1), min, max, absmax, each
accumulated in float64 over the float32 values, for scope "all" (tokens x features),
"last" (last token only) and the per-token std list.

Usage:
  python3 tools/reference/numpy_forward.py --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
  python3 tools/reference/numpy_forward.py --model gemma-3-270m-q4_k_m.gguf
  python3 tools/reference/numpy_forward.py --model qwen2.5-0.5b-as-qwen3.gguf   # a rewrite
    (tools/golden/make_arch_rewrites.py: llama = adjacent-pair RoPE and biases where present,
    qwen3 = per-head q/k RMSNorm before NEOX RoPE, as llama.cpp's llama.cpp / qwen3.cpp graphs)
Options: --models-dir (default $PARALLAX_MODELS or ~/.cache/parallax/models),
--tokens 1,2,3 (override the contract tokens), --out PATH, --accum f32|f64,
--dump-logits PATH (raw little-endian f32 last-token logits, for comparisons).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from common import CONTRACT_TOKENS_BY_ARCH, LAYER_SITES, TOKENS_OF_FILE, moments, sha256_file

CONTRACT_TOKENS = CONTRACT_TOKENS_BY_ARCH

# llama.cpp's gemma3 defaults (src/models/gemma3.cpp load_arch_hparams; older trees:
# llama-model.cpp load_hparams case LLM_ARCH_GEMMA3): swa pattern 6 -- layer il uses the
# sliding window when il % 6 < 5, so every 6th layer (5, 11, 17) is global
# (llama_hparams::set_swa_pattern) -- and rope_freq_base_train_swa = 10000 (llama-hparams.h)
# for the sliding-window layers. Both can be overridden by GGUF keys
# gemma3.attention.sliding_window_pattern and gemma3.rope.freq_base_swa; the shared
# gemma-3-270m file carries neither.
GEMMA3_SWA_PATTERN = 6
GEMMA3_SWA_ROPE_BASE = 10000.0


# ----------------------------------------------------------------------------- GGUF access

class Model:
    def __init__(self, path: Path):
        self.path = path
        self.reader = GGUFReader(str(path))
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.field("general.architecture")

    def field(self, key, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            if default is None:
                raise KeyError(f"GGUF key {key!r} missing in {self.path}")
            return default
        return f.contents()

    def hp(self, key, default=None):
        return self.field(f"{self.arch}.{key}", default)

    def has(self, name: str) -> bool:
        return name in self.tensors

    def weight(self, name: str) -> np.ndarray:
        """Dequantized tensor as f32, numpy shape [out, in] (ggml [ne0=in, ne1=out])."""
        t = self.tensors[name]
        w = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        shape = [int(x) for x in reversed(t.shape)]  # ggml ne is reversed numpy order
        return w.reshape(shape)

    def rows(self, name: str, ids) -> np.ndarray:
        """Dequantize only the given rows of a 2-D tensor (embedding look-up)."""
        t = self.tensors[name]
        raw = t.data[np.asarray(ids)]
        w = dequantize(raw, t.tensor_type).astype(np.float32, copy=False)
        return w.reshape(len(ids), int(t.shape[0]))

    def row_chunks(self, name: str, chunk: int = 16384):
        """Yield (start, f32 rows) so the vocab-sized output matrix never sits whole in f32."""
        t = self.tensors[name]
        n = int(t.shape[1])
        for s in range(0, n, chunk):
            raw = t.data[s:min(n, s + chunk)]
            w = dequantize(raw, t.tensor_type).astype(np.float32, copy=False)
            yield s, w.reshape(-1, int(t.shape[0]))


# ----------------------------------------------------------------------------- ops

ACCUM = "f32"


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x [T, in] @ w[out, in]^T -> [T, out], f32 result."""
    if ACCUM == "f64":
        return (x.astype(np.float64) @ w.astype(np.float64).T).astype(np.float32)
    return np.matmul(x, w.T, dtype=np.float32)


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """ggml_rms_norm (sum of squares in double, mean, 1/sqrtf(mean+eps)) then * weight."""
    ss = np.sum(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    mean = (ss / x.shape[-1]).astype(np.float32)
    scale = (np.float32(1.0) / np.sqrt(mean + np.float32(eps))).astype(np.float32)
    return (x * scale * w).astype(np.float32)


def rope_angles(positions: np.ndarray, base: float, n_rot: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of theta = p * base^(-2i/n_rot) for each pair i < n_rot/2, shaped [T, 1, n_rot/2]
    (f64 angles, f32 results), shared by both pair layouts."""
    i = np.arange(n_rot // 2, dtype=np.float64)
    theta = positions[:, None].astype(np.float64) * (base ** (-2.0 * i / n_rot))[None, :]
    return np.cos(theta).astype(np.float32)[:, None, :], np.sin(theta).astype(np.float32)[:, None, :]


def rope_neox(x: np.ndarray, positions: np.ndarray, base: float, n_rot: int) -> np.ndarray:
    """NEOX RoPE ("rotate halves"): pairs (i, i + n_rot/2), theta = p * base^(-2i/n_rot).

    x: [T, H, D]. Dimensions past n_rot pass through unchanged.
    """
    half = n_rot // 2
    cos, sin = rope_angles(positions, base, n_rot)
    out = x.copy()
    x0 = x[..., :half]
    x1 = x[..., half:n_rot]
    out[..., :half] = x0 * cos - x1 * sin
    out[..., half:n_rot] = x0 * sin + x1 * cos
    return out


def rope_norm(x: np.ndarray, positions: np.ndarray, base: float, n_rot: int) -> np.ndarray:
    """RoPE NORM (llama): pairs (2i, 2i + 1), theta = p * base^(-2i/n_rot).

    x: [T, H, D]. Dimensions past n_rot pass through unchanged.
    """
    cos, sin = rope_angles(positions, base, n_rot)
    out = x.copy()
    x0 = x[..., 0:n_rot:2]
    x1 = x[..., 1:n_rot:2]
    out[..., 0:n_rot:2] = x0 * cos - x1 * sin
    out[..., 1:n_rot:2] = x0 * sin + x1 * cos
    return out


def attention(q, k, v, scale: float, window: int | None, operand=None) -> np.ndarray:
    """Causal (optionally sliding-window) GQA attention.

    q [T, Hq, D], k/v [T, Hkv, D] -> [T, Hq*Dv]. Query head h reads KV head
    h // (Hq/Hkv), as ggml's broadcasting mul_mat does. A key at position p0 is
    visible from p1 when p0 <= p1 and (no window or p1 - p0 < window), matching
    llama.cpp's LLAMA_SWA_TYPE_STANDARD mask (masked when p1 - p0 >= n_swa).
    `operand`, when given, rounds the operands of both products (q, k, v and the
    probabilities), as mimic_llamacpp.py does with f16.
    """
    T, hq, _ = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    if operand is not None:
        q, k, v = operand(q), operand(k), operand(v)
    p1 = np.arange(T)[:, None]
    p0 = np.arange(T)[None, :]
    visible = p0 <= p1
    if window is not None:
        visible &= (p1 - p0) < window
    out = np.empty((T, hq, v.shape[2]), dtype=np.float32)
    for h in range(hq):
        kh = k[:, h // group, :]
        vh = v[:, h // group, :]
        s = np.matmul(q[:, h, :], kh.T, dtype=np.float32) * np.float32(scale)
        s = np.where(visible, s, np.float32(-np.inf))
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s, dtype=np.float32)
        p = e / e.sum(axis=1, keepdims=True, dtype=np.float32)
        out[:, h, :] = np.matmul(p if operand is None else operand(p), vh, dtype=np.float32)
    return out.reshape(T, hq * v.shape[2])


def silu(x):
    return (x / (np.float32(1.0) + np.exp(-x, dtype=np.float32))).astype(np.float32)


def gelu_tanh(x):
    """GELU, tanh approximation (ggml_gelu): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))).astype(np.float32)


# ----------------------------------------------------------------------------- stats

def site_stats(x: np.ndarray) -> dict:
    """x: [T, F] float32."""
    x64 = x.astype(np.float64)
    return {
        "all": moments(x64),
        "last": moments(x64[-1]),
        "per_token": [float(r.std(ddof=1)) for r in x64],
    }


def assert_finite(name: str, x: np.ndarray):
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"non-finite values at site {name}")


# ----------------------------------------------------------------------------- forward

def forward(m: Model, tokens: list[int]):
    arch = m.arch
    if arch not in LAYER_SITES:
        raise SystemExit(f"unsupported architecture {arch!r} ({', '.join(LAYER_SITES)})")
    n_embd = int(m.hp("embedding_length"))
    n_layer = int(m.hp("block_count"))
    n_head = int(m.hp("attention.head_count"))
    n_head_kv = int(m.hp("attention.head_count_kv"))
    head_k = int(m.hp("attention.key_length", n_embd // n_head))
    head_v = int(m.hp("attention.value_length", n_embd // n_head))
    n_rot = int(m.hp("rope.dimension_count", head_k))
    eps = float(m.hp("attention.layer_norm_rms_epsilon"))
    base = float(m.hp("rope.freq_base", 10000.0))
    T = len(tokens)
    pos = np.arange(T)

    record = {"layers": []}
    trace = record["layers"]

    x = m.rows("token_embd.weight", tokens)
    if arch == "gemma3":
        # llama.cpp gemma3.cpp: inpL = ggml_scale(inpL, sqrtf(n_embd)) for token input.
        x = (x * np.float32(math.sqrt(n_embd))).astype(np.float32)
    record["embed"] = x.copy()

    swa_layers = [False] * n_layer
    swa_base = base
    softcap = 0.0
    if arch == "gemma3":
        window = int(m.hp("attention.sliding_window", 0))
        if window > 0:
            pat = m.hp("attention.sliding_window_pattern", GEMMA3_SWA_PATTERN)
            if isinstance(pat, list):
                swa_layers = [bool(b) for b in pat]
            else:
                swa_layers = [int(pat) == 0 or (il % int(pat)) < int(pat) - 1 for il in range(n_layer)]
            swa_base = float(m.hp("rope.freq_base_swa", GEMMA3_SWA_ROPE_BASE))
        softcap = float(m.hp("final_logit_softcapping", 0.0))
        # f_attention_scale = 1/sqrt(n_embd_head_k) for every gemma3 size but 27B;
        # gemma3.cpp scales Q by it and passes kq_scale = 1.0 to build_attn.
        attn_scale = 1.0 / math.sqrt(head_k)
    else:
        window = None
        attn_scale = 1.0 / math.sqrt(head_k)

    for il in range(n_layer):
        p = f"blk.{il}."
        sites = {}

        def cap(name, val):
            assert_finite(f"{p}{name}", val)
            sites[name] = val

        def project(val, name):
            """`val` times the layer's `name` weight, plus its bias where the model has one."""
            out = matmul(val, m.weight(p + name + ".weight"))
            if m.has(p + name + ".bias"):
                out += m.weight(p + name + ".bias")
            return out

        inp = x
        h = rms_norm(inp, m.weight(p + "attn_norm.weight"), eps)
        cap("attn_norm", h)

        q = project(h, "attn_q")
        k = project(h, "attn_k")
        v = project(h, "attn_v")
        cap("q", q)
        cap("k", k)
        cap("v", v)

        q3 = q.reshape(T, n_head, head_k)
        k3 = k.reshape(T, n_head_kv, head_k)
        v3 = v.reshape(T, n_head_kv, head_v)

        if arch in ("gemma3", "qwen3"):
            # Per-head RMSNorm of q and k, after the projection and before RoPE.
            q3 = rms_norm(q3, m.weight(p + "attn_q_norm.weight"), eps)
            k3 = rms_norm(k3, m.weight(p + "attn_k_norm.weight"), eps)
        if arch == "gemma3":
            layer_base = swa_base if swa_layers[il] else base
            layer_window = window if swa_layers[il] else None
        else:
            layer_base = base
            layer_window = None

        rope = rope_norm if arch == "llama" else rope_neox
        q3 = rope(q3, pos, layer_base, n_rot)
        k3 = rope(k3, pos, layer_base, n_rot)
        if arch == "gemma3":
            q3 = (q3 * np.float32(attn_scale)).astype(np.float32)
            a = attention(q3, k3, v3, 1.0, layer_window)
        else:
            a = attention(q3, k3, v3, attn_scale, layer_window)
        cap("attn_out", a)

        o = project(a, "attn_output")
        cap("attn_proj", o)

        if arch == "gemma3":
            o = rms_norm(o, m.weight(p + "post_attention_norm.weight"), eps)
            cap("attn_post_norm", o)

        x = (inp + o).astype(np.float32)
        cap("resid_attn", x)

        h = rms_norm(x, m.weight(p + "ffn_norm.weight"), eps)
        cap("ffn_norm", h)
        g = matmul(h, m.weight(p + "ffn_gate.weight"))
        u = matmul(h, m.weight(p + "ffn_up.weight"))
        cap("ffn_gate", g)
        cap("ffn_up", u)
        act = gelu_tanh(g) if arch == "gemma3" else silu(g)
        cap("ffn_silu", act)
        sw = (act * u).astype(np.float32)
        cap("ffn_swigl", sw)
        d = matmul(sw, m.weight(p + "ffn_down.weight"))
        cap("ffn_down", d)
        if arch == "gemma3":
            d = rms_norm(d, m.weight(p + "post_ffw_norm.weight"), eps)
            cap("ffn_post_norm", d)
        x = (x + d).astype(np.float32)
        cap("resid_ffn", x)

        trace.append({"index": il, "sites": {n: site_stats(sites[n]) for n in LAYER_SITES[arch]}})
        print(f"  layer {il:2d}: resid_ffn std(all)={trace[-1]['sites']['resid_ffn']['all']['std']:.4f}",
              file=sys.stderr)

    fn = rms_norm(x, m.weight("output_norm.weight"), eps)
    record["final_norm"] = fn
    out_name = "output.weight" if m.has("output.weight") else "token_embd.weight"
    record["output_tensor"] = out_name
    vocab = int(m.tensors[out_name].shape[1])
    logits = np.empty((T, vocab), dtype=np.float32)
    for s, w in m.row_chunks(out_name):
        logits[:, s:s + w.shape[0]] = matmul(fn, w)
    if m.has("output.bias"):
        logits += m.weight("output.bias")
    if softcap:
        # gemma3.cpp applies it only when gemma3.final_logit_softcapping is set (the shared
        # 270m file does not set it, so its logits are the plain lm_head output).
        logits = (np.tanh(logits / np.float32(softcap)) * np.float32(softcap)).astype(np.float32)
    assert_finite("logits", logits)
    record["logits"] = logits
    record["config"] = {
        "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head, "n_head_kv": n_head_kv,
        "head_dim_k": head_k, "head_dim_v": head_v, "n_rot": n_rot, "rms_eps": eps,
        "rope_type": "norm" if arch == "llama" else "neox", "rope_base": base, "rope_base_swa": swa_base if any(swa_layers) else None,
        "sliding_window": window, "swa_layers": [i for i, b in enumerate(swa_layers) if b],
        "attn_scale": attn_scale, "final_logit_softcapping": softcap or None,
        "embed_scale": math.sqrt(n_embd) if arch == "gemma3" else None,
        "ffn_act": "gelu_tanh" if arch == "gemma3" else "silu",
    }
    return record


def main():
    global ACCUM
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file name (inside --models-dir) or path")
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--tokens", help="comma-separated token ids (default: contract tokens)")
    ap.add_argument("--out", help="output JSON (default tests/golden/reference/numpy-f32-<model>.json)")
    ap.add_argument("--accum", choices=["f32", "f64"], default="f32")
    ap.add_argument("--dump-logits", help="write last-token logits as raw little-endian f32")
    args = ap.parse_args()
    ACCUM = args.accum

    path = Path(args.model)
    if not path.exists():
        path = Path(args.models_dir) / args.model
    if not path.exists():
        raise SystemExit(f"model {args.model} not found (run ../shared/models/fetch.sh)")
    t0 = time.time()
    m = Model(path)
    tokens = ([int(t) for t in args.tokens.split(",")] if args.tokens
              else TOKENS_OF_FILE.get(path.name) or CONTRACT_TOKENS[m.arch])
    print(f"{path.name}: arch={m.arch} tokens={tokens} accum={ACCUM}", file=sys.stderr)
    rec = forward(m, tokens)

    last = rec["logits"][-1]
    top = np.argsort(-last.astype(np.float64), kind="stable")[:10]
    stem = path.name[:-5] if path.name.endswith(".gguf") else path.name
    out = {
        "tool": "tools/reference/numpy_forward.py",
        "model_file": path.name,
        "sha256": sha256_file(path),
        "architecture": m.arch,
        "tokens": tokens,
        "std_kind": "sample",
        "stats_accumulation": "float64 over float32 values",
        "matmul_accumulation": ACCUM,
        "output_tensor": rec["output_tensor"],
        "config": rec["config"],
        "site_order": LAYER_SITES[m.arch],
        "embed": site_stats(rec["embed"]),
        "layers": rec["layers"],
        "final_norm": site_stats(rec["final_norm"]),
        "logits": site_stats(rec["logits"]),
        "last_top10": [[int(i), float(last[i])] for i in top],
    }
    out_path = Path(args.out) if args.out else (
        Path(__file__).resolve().parents[2] / "tests/golden/reference" / f"numpy-f32-{stem}.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    if args.dump_logits:
        last.astype("<f4").tofile(args.dump_logits)
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes) in {time.time() - t0:.1f}s; "
          f"top1={int(top[0])} ({float(last[top[0]]):.4f})", file=sys.stderr)


if __name__ == "__main__":
    main()
