#!/usr/bin/env python3
"""Golden values for the metrics crate (crates/metrics): KL divergence, cosine, rel-L2,
SQNR, max-abs, std ratio and per-sample statistics, computed independently in f64 with
numpy and scipy.

Run from the repository root (needs numpy and scipy):

    python3 tools/golden/gen_metrics_golden.py [OUT]

It writes OUT, by default crates/metrics/tests/golden/metrics_independent.json (deterministic: fixed seed, no
clock); crates/metrics/tests/kl_independent.rs reads it.

What comes from where (none of it from Parallax):
  * kl:          scipy.special.rel_entr(p, q).sum(), p = softmax(reference), q = softmax(path),
                 both softmaxes by scipy.special.softmax in f64: KL(P_reference || Q_path) in nats.
  * kl_reverse:  the same with p and q swapped, so a test can tell the two directions apart.
  * cosine, rel_l2, sqnr_db, max_abs, std_ratio: numpy in f64 on the f32 values widened to f64.
  * top1_agree, top10_overlap: numpy's argmax and a stable argsort of the logits.
  * mean, std (sample, ddof=1), min, max, absmax: numpy in f64.

Encoding: every input vector is float32; it is stored as the hex of its little-endian bytes, so
the Rust side reads exactly the values numpy used.
"""

import json
import os
import sys

import numpy as np
import scipy
from scipy.special import rel_entr, softmax

SEED = 20251202
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "crates", "parity", "tests", "golden", "metrics_independent.json")


def hexf32(v):
    return np.asarray(v, dtype="<f4").tobytes().hex()


def kl(p_logits, q_logits):
    p = softmax(p_logits.astype(np.float64))
    q = softmax(q_logits.astype(np.float64))
    return float(rel_entr(p, q).sum())


def top10(v):
    # Largest first, ties to the lower index (stable sort of the negated values).
    return np.argsort(-v, kind="stable")[:10].tolist()


def stats(v):
    x = v.astype(np.float64)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)), "min": float(x.min()),
            "max": float(x.max()), "absmax": float(np.abs(x).max())}


def compare(r32, p32):
    r, p = r32.astype(np.float64), p32.astype(np.float64)
    d = p - r
    rr, dd = float(r @ r), float(d @ d)
    return {
        "cosine": float(r @ p / (np.sqrt(rr) * np.sqrt(p @ p))),
        "rel_l2": float(np.sqrt(dd / rr)),
        "sqnr_db": float(10.0 * np.log10(rr / dd)),
        "max_abs": float(np.abs(d).max()),
        "std_ratio": float(p.std(ddof=1) / r.std(ddof=1)),
    }


def main():
    rng = np.random.default_rng(SEED)

    def pairs(specs, loc, scale):
        """(name, reference, path) per spec: a float32 reference ~ N(loc, scale) and the path
        derived from it in f64, rounded to float32."""
        for name, n, make in specs:
            r = rng.normal(loc, scale, n).astype(np.float32)
            yield name, r, make(r.astype(np.float64)).astype(np.float32)

    logits = [{
        "name": name,
        "reference_f32le_hex": hexf32(r),
        "path_f32le_hex": hexf32(p),
        "kl": kl(r, p),
        "kl_reverse": kl(p, r),
        "top1_agree": bool(np.argmax(r) == np.argmax(p)),
        "top10_overlap": len(set(top10(r)) & set(top10(p))),
    } for name, r, p in pairs([
        # Quantization-like noise on a vocabulary of llama size order: a small KL.
        ("small_noise", 4096, lambda r: r + rng.normal(0.0, 0.05, r.shape)),
        # Nearly identical: KL of order 1e-7, where a careless sum loses its digits.
        ("near_identical", 1000, lambda r: r + rng.normal(0.0, 1e-3, r.shape)),
        # A peaked reference against a flattened path: KL(P||Q) and KL(Q||P) differ by a lot.
        ("peaked_vs_flat", 64, lambda r: 0.3 * r),
        # Shifted by a constant: softmax ignores it, so the KL is 0 up to rounding.
        ("shifted", 256, lambda r: r + 7.0),
    ], 0.0, 3.0)]

    samples = [{
        "name": name,
        "reference_f32le_hex": hexf32(r),
        "path_f32le_hex": hexf32(p),
        "compare": compare(r, p),
        "reference_stats": stats(r),
        "path_stats": stats(p),
    } for name, r, p in pairs([
        ("gaussian_noise", 1000, lambda r: r + rng.normal(0.0, 0.01, r.shape)),
        ("scaled_and_noisy", 777, lambda r: 1.1 * r + rng.normal(0.0, 0.1, r.shape)),
    ], 0.5, 2.0)]

    doc = {
        "generator": "tools/golden/gen_metrics_golden.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "seed": SEED,
        "logits": logits,
        "samples": samples,
    }
    with open(sys.argv[1] if len(sys.argv) > 1 else OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
