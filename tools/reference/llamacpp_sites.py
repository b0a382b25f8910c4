#!/usr/bin/env python3
"""Diagnostic: compare numpy_forward.py's sites with llama.cpp's own intermediate tensors.

Runs llama.cpp (llama-cpp-python, use_extra_bufts = false, CPU) on the contract tokens with
an eval callback (cb_eval) that copies every f32 graph tensor by name, runs the numpy forward
(optionally with mimic_llamacpp.py's emulations), and prints per layer the relative L2
difference ||numpy - llama.cpp|| / ||numpy|| for each site that llama.cpp names:

  attn_norm <- attn_norm-i   q/k/v <- Qcur-i/Kcur-i/Vcur-i (first f32 capture after bias)
  attn_out <- kqv_out-i      attn_post_norm <- attn_post_norm-i   resid_attn <- ffn_inp-i | sa_out-i
  ffn_norm <- ffn_norm-i     ffn_gate/ffn_up <- ffn_gate-i/ffn_up-i
  ffn_swigl <- ffn_swiglu-i | ffn_geglu-i   ffn_down <- ffn_out-i   ffn_post_norm <- ffn_post_norm-i
  resid_ffn <- l_out-i       final_norm <- result_norm   logits <- result_output
(attn_proj and ffn_silu have no named llama.cpp tensor.)

With `--emulate act+kv+gelu`, layer 0 agrees to ~1e-7 at every matmul site: this is the
check that the site definitions and the numerics (norms, q/k-norm, RoPE, SWA, scales,
GELU) are llama.cpp's. Later layers drift apart because a 1e-5 difference flips a few
Q8 roundings in the next matmul's activation quantization, which then grows.

Usage:
  python3 tools/reference/llamacpp_sites.py --model gemma-3-270m-q4_k_m.gguf [--emulate act+kv+gelu]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mimic_llamacpp as mm  # noqa: E402
import numpy_forward as nf  # noqa: E402
from common import capture_f32_tensors  # noqa: E402


def capture_llamacpp(path: Path, tokens: list[int]) -> dict[str, list[np.ndarray]]:
    return capture_f32_tensors(path, tokens)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--emulate", default="", help="'+'-joined subset of act, kv, gelu")
    args = ap.parse_args()
    path = Path(args.models_dir) / args.model
    m = nf.Model(path)
    tokens = nf.CONTRACT_TOKENS[m.arch]
    T = len(tokens)
    caps = capture_llamacpp(path, tokens)

    raw: list[np.ndarray] = []
    orig_stats = nf.site_stats

    def keep(x):
        raw.append(np.asarray(x).copy())
        return orig_stats(x)

    on = set(args.emulate.split("+")) - {""}
    restore = mm.install("act" in on, "kv" in on, "gelu" in on)
    nf.site_stats = keep
    try:
        rec = nf.forward(nf.Model(path), tokens)
    finally:
        nf.site_stats = orig_stats
        restore()

    gemma = m.arch == "gemma3"
    names = {
        "attn_norm": "attn_norm", "q": "Qcur", "k": "Kcur", "v": "Vcur", "attn_out": "kqv_out",
        "attn_post_norm": "attn_post_norm", "resid_attn": "sa_out" if gemma else "ffn_inp",
        "ffn_norm": "ffn_norm", "ffn_gate": "ffn_gate", "ffn_up": "ffn_up",
        "ffn_swigl": "ffn_geglu" if gemma else "ffn_swiglu", "ffn_down": "ffn_out",
        "ffn_post_norm": "ffn_post_norm", "resid_ffn": "l_out",
    }
    # qwen2 names the matmul output "Qcur" before the bias add as well: take the second.
    nth = {"Qcur": 1, "Kcur": 1, "Vcur": 1} if not gemma else {}

    def theirs(name):
        got = caps.get(name)
        idx = nth.get(name.rsplit("-", 1)[0], 0)
        return got[idx].reshape(T, -1) if got and len(got) > idx else None

    def rel(a, b):
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        return np.linalg.norm(a - b) / np.linalg.norm(a)

    print(f"{path.name}: rel-L2 numpy{'+' + args.emulate if args.emulate else '-f32'} vs llama.cpp")
    emb = theirs("inp_scaled" if gemma else "embd")
    print(f"embed {rel(rec['embed'], emb):.1e}")
    i = 0
    for layer in rec["layers"]:
        cells = []
        for s in nf.LAYER_SITES[m.arch]:
            x = raw[i]
            i += 1
            if s in names:
                y = theirs(f"{names[s]}-{layer['index']}")
                if y is not None and y.size == x.size:
                    cells.append(f"{s}={rel(x, y):.1e}")
        print(f"L{layer['index']:<2} " + " ".join(cells))
    print(f"final_norm {rel(rec['final_norm'], theirs('result_norm')):.1e}  "
          f"logits(all) {rel(rec['logits'], theirs('result_output')):.1e}  "
          f"logits(last) {rel(rec['logits'][-1], theirs('result_output')[-1]):.1e}")


if __name__ == "__main__":
    main()
