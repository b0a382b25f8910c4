#!/usr/bin/env python3
"""Golden vectors for crates/quant (parallax-quant): dequantization and activation quantizers.

Run from the repository root (needs numpy and gguf-py 0.19, `pip install gguf`):

    python3 tools/golden/gen_quant_golden.py [OUT]

It writes OUT, by default crates/quant/tests/golden/quant_golden.json (deterministic: fixed seed, no clock).
Tests in crates/quant/tests/golden.rs read it.

What comes from where:
  * dequantization of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS:
    gguf-py's `gguf.quants.dequantize` — an independent numpy implementation.
  * dequantization of Q8_1 and Q8_K (gguf-py has neither): the one-line numpy formulas below
    (`qs * d` in f32; Q8_1's `s` and Q8_K's `bsums` are not used by dequantization).
  * Q8_0 quantization: gguf-py's `gguf.quants.quantize` (documented there as bit-exact with
    ggml's `quantize_row_q8_0_ref`).
  * Q8_1 and Q8_K quantization (gguf-py cannot): a numpy transcription, written for this file,
    of llama.cpp's `quantize_row_q8_1_ref` and `quantize_row_q8_K_ref` (ggml/src/ggml-quants.c,
    llama.cpp master 2025) — see q8_1_ref / q8_k_ref for the exact float steps.

Encoding: byte strings are lowercase hex; f32 arrays are the hex of their little-endian bytes,
so every value keeps its exact bits (NaN payloads included).

Block bytes are random, but every f16 scale field is overwritten with a finite normal value,
except in the deliberate edge-case blocks at the start of each type: zero scales, all nibbles
max (0xff), all quants zero, subnormal scales, negative scales, the largest f16 scale.
F16/BF16/F32 inputs are raw random bits, so they do contain NaN and ±Inf on purpose.
"""

import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

SEED = 20250611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "crates", "quant", "tests", "golden", "quant_golden.json")

# (name, values per block, bytes per block, offsets of f16 scale fields, offset of f32 scale)
TYPES = {
    "Q4_0": (32, 18, [0], None),
    "Q4_1": (32, 20, [0, 2], None),
    "Q5_0": (32, 22, [0], None),
    "Q5_1": (32, 24, [0, 2], None),
    "Q8_0": (32, 34, [0], None),
    "Q8_1": (32, 36, [0, 2], None),
    "Q2_K": (256, 84, [80, 82], None),
    "Q3_K": (256, 110, [108], None),
    "Q4_K": (256, 144, [0, 2], None),
    "Q5_K": (256, 176, [0, 2], None),
    "Q6_K": (256, 210, [208], None),
    "Q8_K": (256, 292, [], 0),
    "IQ4_NL": (32, 18, [0], None),
    "IQ4_XS": (256, 136, [0], None),
}
N_RANDOM_BLOCKS = {32: 24, 256: 6}


def hexb(a: np.ndarray) -> str:
    return np.ascontiguousarray(a).view(np.uint8).tobytes().hex()


def f16_bits(v: float) -> int:
    return int(np.array([v], dtype=np.float16).view(np.uint16)[0])


def put_u16(block: np.ndarray, off: int, bits: int) -> None:
    block[off] = bits & 0xFF
    block[off + 1] = bits >> 8


def normal_f16(rng) -> int:
    """A finite, normal, random-signed f16 scale of magnitude 2^-12 .. 2^3."""
    mag = np.float32(2.0) ** np.float32(rng.uniform(-12, 3))
    sign = -1.0 if rng.random() < 0.3 else 1.0
    return f16_bits(sign * float(mag))


def make_blocks(rng, name: str) -> tuple[np.ndarray, list[str]]:
    bs, size, f16_offs, f32_off = TYPES[name]
    n_rand = N_RANDOM_BLOCKS[bs]
    edge = ["zero scales", "all bytes 0xff", "all quants zero", "subnormal scales",
            "negative scales", "largest f16 scale"]
    n = len(edge) + n_rand
    blocks = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    labels = []
    for i in range(n):
        b = blocks[i]
        kind = edge[i] if i < len(edge) else "random"
        labels.append(kind)
        if kind == "all bytes 0xff":
            b[:] = 0xFF
        elif kind == "all quants zero":
            b[:] = 0
        # scale fields
        for off in f16_offs:
            if kind == "zero scales":
                bits = 0
            elif kind == "subnormal scales":
                bits = int(rng.integers(1, 0x400))
            elif kind == "negative scales":
                bits = normal_f16(rng) | 0x8000
            elif kind == "largest f16 scale":
                bits = 0x7BFF
            else:
                bits = normal_f16(rng)
            put_u16(b, off, bits)
        if f32_off is not None:
            if kind == "zero scales":
                v = np.float32(0)
            elif kind == "subnormal scales":
                v = np.array([int(rng.integers(1, 1 << 23))], dtype=np.uint32).view(np.float32)[0]
            elif kind == "largest f16 scale":
                v = np.float32(3.0e38)
            else:
                v = np.float32(rng.uniform(1e-4, 1.0) * (-1 if kind == "negative scales" else 1))
            b[f32_off:f32_off + 4] = np.array([v], dtype=np.float32).view(np.uint8)
    return blocks, labels


def dequant_q8_1(blocks: np.ndarray) -> np.ndarray:
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:36].copy().view(np.int8).astype(np.float32)
    return (qs * d).astype(np.float32)


def dequant_q8_k(blocks: np.ndarray) -> np.ndarray:
    d = blocks[:, 0:4].copy().view(np.float32)
    qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * qs).astype(np.float32)


GGUF_TYPE = {
    "Q4_0": T.Q4_0, "Q4_1": T.Q4_1, "Q5_0": T.Q5_0, "Q5_1": T.Q5_1, "Q8_0": T.Q8_0,
    "Q2_K": T.Q2_K, "Q3_K": T.Q3_K, "Q4_K": T.Q4_K, "Q5_K": T.Q5_K, "Q6_K": T.Q6_K,
    "IQ4_NL": T.IQ4_NL, "IQ4_XS": T.IQ4_XS,
}


def dequant_cases(rng) -> list[dict]:
    cases = []
    with np.errstate(all="ignore"):
        # plain element types: raw random bits (NaN and Inf included on purpose)
        # specials first: ±0, ±Inf, quiet and signalling NaN (with payload), smallest and largest
        # subnormal, smallest normal, largest finite
        sp32 = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
                         0xFFA12345, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF], np.uint32)
        sp16 = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFD23, 0x0001, 0x03FF,
                         0x0400, 0x7BFF, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x0080, 0x007F], np.uint16)
        raw32 = rng.integers(0, 1 << 32, size=512 - sp32.size, dtype=np.uint64).astype(np.uint32)
        raw32 = np.concatenate([sp32, raw32])
        cases.append({"type": "F32", "source": "gguf-py", "labels": [],
                      "bytes": hexb(raw32), "values": hexb(dequantize(raw32.view(np.uint8), T.F32))})
        raw16 = rng.integers(0, 1 << 16, size=1024 - sp16.size, dtype=np.uint32).astype(np.uint16)
        raw16 = np.concatenate([sp16, raw16])
        for name, t in (("F16", T.F16), ("BF16", T.BF16)):
            vals = dequantize(raw16.view(np.uint8), t).astype(np.float32)
            cases.append({"type": name, "source": "gguf-py", "labels": [],
                          "bytes": hexb(raw16), "values": hexb(vals)})
        for name in TYPES:
            blocks, labels = make_blocks(rng, name)
            if name == "Q8_1":
                vals, src = dequant_q8_1(blocks), "numpy transcription (qs*d)"
            elif name == "Q8_K":
                vals, src = dequant_q8_k(blocks), "numpy transcription (d*qs)"
            else:
                vals, src = dequantize(blocks.reshape(-1), GGUF_TYPE[name]), "gguf-py"
            vals = np.asarray(vals, dtype=np.float32).reshape(-1)
            assert vals.size == len(blocks) * TYPES[name][0], name
            cases.append({"type": name, "source": src, "labels": labels,
                          "bytes": hexb(blocks), "values": hexb(vals)})
    return cases


# ---- activation quantizers ----

def roundf(v: np.ndarray) -> np.ndarray:
    """C roundf (half away from zero), exact on float32: floor(|v| + 0.5) is NOT exact for
    0.49999997, so use gguf-py's floor/fraction formulation."""
    return gguf.quants.np_roundf(v)


def c_max_abs(block: np.ndarray) -> np.float32:
    """`amax = MAX(amax, fabsf(v))` scanned in order (C MAX: a > b ? a : b)."""
    amax = np.float32(0)
    for v in block:
        av = np.float32(abs(v))
        amax = amax if amax > av else av
    return amax


def q8_1_ref(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_1_ref: d = amax/127 (f32), id = d ? 1/d : 0, q = roundf(x*id),
    d stored as f16, s = f16((float)sum(q) * d) with the f32 d."""
    out = []
    for blk in x.reshape(-1, 32):
        amax = c_max_abs(blk)
        d = np.float32(amax / np.float32(127))
        id_ = np.float32(np.float32(1) / d) if d != 0 else np.float32(0)
        q = roundf((blk * id_).astype(np.float32)).astype(np.int8)
        s = np.float32(np.float32(int(q.astype(np.int32).sum())) * d)
        out.append(np.concatenate([np.array([d], np.float16).view(np.uint8),
                                   np.array([s], np.float16).view(np.uint8),
                                   q.view(np.uint8)]))
    return np.concatenate(out)


def nearest_int(v: np.ndarray) -> np.ndarray:
    """ggml nearest_int: f32 add of 1.5*2^23, read the mantissa."""
    val = (v.astype(np.float32) + np.float32(12582912.0)).astype(np.float32)
    return (val.view(np.int32) & 0x007FFFFF) - 0x00400000


def q8_k_ref(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_K_ref: max = first value of largest |x|; all-zero block -> d=0, q=0
    (ggml leaves bsums unwritten there; this crate writes 0); iscale = -127/max (f32);
    q = min(127, nearest_int(iscale*x)); bsums = sums of 16; d = 1/iscale (f32)."""
    out = []
    for blk in x.reshape(-1, 256):
        amax = np.float32(0)
        mx = np.float32(0)
        for v in blk:
            ax = np.float32(abs(v))
            if ax > amax:
                amax, mx = ax, v
        if amax == 0:
            d = np.float32(0)
            q = np.zeros(256, np.int8)
        else:
            iscale = np.float32(np.float32(-127.0) / mx)
            q = np.minimum(127, nearest_int((iscale * blk).astype(np.float32))).astype(np.int8)
            d = np.float32(np.float32(1.0) / iscale)
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        out.append(np.concatenate([np.array([d], np.float32).view(np.uint8), q.view(np.uint8),
                                   bsums.view(np.uint8)]))
    return np.concatenate(out)


def activation_inputs(rng, block: int) -> list[tuple[str, np.ndarray]]:
    """Named input rows (each a whole number of blocks) that hit the quantizers' corners."""
    f = np.float32
    cases = []
    cases.append(("random normal", rng.standard_normal(block * 4).astype(f)))
    cases.append(("random wide range", (rng.standard_normal(block * 2) *
                                        np.exp(rng.uniform(-20, 20, block * 2))).astype(f)))
    cases.append(("zeros", np.zeros(block, f)))
    cases.append(("negative zeros and zeros", np.where(np.arange(block) % 2 == 0, f(-0.0), f(0.0)).astype(f)))
    cases.append(("all equal positive", np.full(block, f(0.3), f)))
    cases.append(("all equal negative", np.full(block, f(-1.7), f)))
    # ties: with |max| = 127 the scale is exactly 1 (q8_K: iscale = -1 or 1; q8_0: d = 1),
    # so k + 0.5 lands exactly on a rounding tie.
    ties = (np.arange(block) % 64 - 32).astype(f) + f(0.5)
    ties[block // 2] = f(127)
    cases.append(("ties, max +127", ties))
    ties_n = ties.copy()
    ties_n[block // 2] = f(-127)
    cases.append(("ties, max -127", ties_n))
    # ties at scale 2: |max| = 254 -> q8_K iscale = -0.5, q8_0 d = 2.
    t2 = (np.arange(block) % 32 - 16).astype(f) * f(2.0) + f(1.0)
    t2[3] = f(-254)
    cases.append(("ties at scale 2, negative max", t2))
    # the max magnitude appears with both signs: q8_K keeps the first one.
    both = rng.standard_normal(block).astype(f)
    both[5], both[9] = f(-4.0), f(4.0)
    cases.append(("max magnitude with both signs", both))
    tiny = (rng.standard_normal(block) * f(1e-30)).astype(f)
    cases.append(("tiny values", tiny))
    return cases


def quantize_cases(rng) -> list[dict]:
    cases = []
    # Q8_0 and Q8_1 see the same rows, so their shared d/qs can be cross-checked.
    rows32 = activation_inputs(rng, 32)
    rows256 = activation_inputs(rng, 256)
    for name, rows, fn, src in (
        ("Q8_0", rows32, lambda x: quantize(x.reshape(-1, 32), T.Q8_0).reshape(-1), "gguf-py"),
        ("Q8_1", rows32, q8_1_ref, "numpy transcription of quantize_row_q8_1_ref"),
        ("Q8_K", rows256, q8_k_ref, "numpy transcription of quantize_row_q8_K_ref"),
    ):
        for label, x in rows:
            with np.errstate(all="ignore"):
                blocks = fn(x)
            cases.append({"type": name, "source": src, "label": label,
                          "x": hexb(x.astype(np.float32)), "blocks": hexb(blocks)})
    return cases


def self_check(q_cases: list[dict]) -> None:
    """The numpy Q8_1 transcription must agree with gguf-py's Q8_0 on d and qs (same rounding)."""
    by = {(c["type"], c["label"]): c for c in q_cases}
    for (t, label), c in by.items():
        if t != "Q8_1":
            continue
        q80 = bytes.fromhex(by[("Q8_0", label)]["blocks"])
        q81 = bytes.fromhex(c["blocks"])
        for i in range(len(q81) // 36):
            a, b = q81[36 * i:36 * i + 36], q80[34 * i:34 * i + 34]
            assert a[0:2] == b[0:2] and a[4:] == b[2:], f"Q8_1 vs Q8_0 mismatch in {label}"


def main() -> int:
    rng = np.random.default_rng(SEED)
    d_cases = dequant_cases(rng)
    q_cases = quantize_cases(rng)
    self_check(q_cases)
    doc = {
        "generator": "tools/golden/gen_quant_golden.py",
        "seed": SEED,
        "numpy": np.__version__,
        "gguf_py": getattr(gguf, "__version__", "0.19"),
        "dequant": d_cases,
        "quantize": q_cases,
    }
    return write_doc(sys.argv[1] if len(sys.argv) > 1 else OUT, doc)


def write_doc(out: str, doc: dict) -> int:
    """Writes a golden as this folder's generators all do (indent 1, final newline)."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(out)} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
