#!/usr/bin/env python3
"""llama.cpp golden logits for Parallax, via llama-cpp-python.

For each model: tokenizes "What is 2+2?" the way llama.cpp does (recorded, and checked
against the contract tokens), evaluates the CONTRACT tokens in one batch on the CPU
backend, and writes
  tests/golden/reference/llamacpp-<model>.last-logits.f32  raw little-endian f32, full vocab
  tests/golden/reference/llamacpp-<model>.json             tokens, top-10, versions, build info
With `--compare-numpy DIR` it also reads the numpy reference's last-token logit dumps
(`numpy_forward.py --dump-logits DIR/numpy-f32-<model>.last-logits.f32`) and prints
cosine / top-1 / top-5 agreement / max abs diff / relative L2 against llama.cpp.

Usage:
  python3 tools/reference/llamacpp_logits.py                 # both shared models + the rewrites
  python3 tools/reference/llamacpp_logits.py --model gemma-3-270m-q4_k_m.gguf
  python3 tools/reference/llamacpp_logits.py --compare-numpy /tmp/ref   # + sanity check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from common import GEMMA, QWEN, REWRITES, TOKENS_OF_FILE, sha256_file

PROMPT = b"What is 2+2?"
# The shared models, then Qwen2.5-0.5B rewritten as llama / qwen3
# (tools/golden/make_arch_rewrites.py).
MODELS = [QWEN, GEMMA, *REWRITES]
N_THREADS = 2
N_CTX = 64


def compare(ref: np.ndarray, got: np.ndarray) -> dict:
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    cos = float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))
    top5_r = set(np.argsort(-r, kind="stable")[:5].tolist())
    top5_g = set(np.argsort(-g, kind="stable")[:5].tolist())
    return {
        "cosine": cos,
        "top1_equal": int(np.argmax(r)) == int(np.argmax(g)),
        "top5_same_set": top5_r == top5_g,
        "max_abs_diff": float(np.max(np.abs(r - g))),
        "rel_l2": float(np.linalg.norm(r - g) / np.linalg.norm(r)),
    }


def plain_cpu_kernels(llama_mod):
    """Load models with use_extra_bufts = false (llama.cpp's `--no-repack`).

    With extra buffer types on, this build routes matmuls to the AMX kernels (on CPUs that
    have AMX) or to repacked interleaved layouts; the AMX path segfaults in
    ggml_backend_amx_mul_mat on this machine, and both make the goldens depend on the CPU
    model. Off, every matmul goes through ggml-cpu's plain vec_dot_<type>_<vec_dot_type>
    kernels -- the pairing the Rust fused path reproduces. llama-cpp-python's Llama() has
    no argument for the field, so wrap the defaults it starts from.
    """
    orig = llama_mod.llama_cpp.llama_model_default_params

    def defaults():
        p = orig()
        p.use_extra_bufts = False
        return p

    llama_mod.llama_cpp.llama_model_default_params = defaults


def run_model(llama_cpp, path: Path, out_dir: Path) -> dict:
    import llama_cpp.llama as llama_mod

    plain_cpu_kernels(llama_mod)
    t0 = time.time()
    llm = llama_mod.Llama(model_path=str(path), n_ctx=N_CTX, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                logits_all=True, verbose=False)
    tok_bos = llm.tokenize(PROMPT, add_bos=True, special=False)
    tok_nobos = llm.tokenize(PROMPT, add_bos=False, special=False)
    tokens = TOKENS_OF_FILE[path.name]
    if tok_bos != tokens:
        # The contract tokens are what the engine is tested on; a different llama.cpp
        # tokenization would mean the constants above are wrong, so stop loudly.
        raise SystemExit(f"{path.name}: llama.cpp tokenizes {PROMPT!r} (add_bos=True) as {tok_bos}, "
                         f"contract tokens are {tokens}")
    if llm.model_params.use_extra_bufts:
        raise SystemExit("could not turn off use_extra_bufts")
    llm.reset()
    llm.eval(tokens)
    scores = np.asarray(llm.scores[:llm.n_tokens], dtype=np.float32)
    last = scores[-1].copy()
    if not np.all(np.isfinite(last)):
        raise SystemExit(f"{path.name}: non-finite logits")

    stem = path.name[:-5]
    bin_path = out_dir / f"llamacpp-{stem}.last-logits.f32"
    last.astype("<f4").tofile(bin_path)
    top = np.argsort(-last.astype(np.float64), kind="stable")[:10]
    info = llama_cpp.llama_print_system_info()
    meta = {
        "tool": "tools/reference/llamacpp_logits.py",
        "model_file": path.name,
        "sha256": sha256_file(path),
        "prompt": PROMPT.decode(),
        "tokens": tokens,
        "tokenize_add_bos_true": tok_bos,
        "tokenize_add_bos_false": tok_nobos,
        "n_vocab": int(last.size),
        "logits_file": bin_path.name,
        "logits_format": "raw little-endian f32, last token, full vocab",
        "last_top10": [[int(i), float(last[i])] for i in top],
        # Top-1 at each position: a cheap check for engines that also emit all positions.
        "per_position_top1": [int(np.argmax(s)) for s in scores],
        "llama_cpp_python_version": llama_cpp.__version__,
        "system_info": info.decode() if isinstance(info, bytes) else str(info),
        "n_threads": N_THREADS,
        "n_ctx": N_CTX,
        "batch": "all tokens in one eval() call, logits_all=True, CPU backend",
        "use_extra_bufts": False,
        "context_params": {f: int(getattr(llm.context_params, f)) for f in
                           ("n_batch", "n_ubatch", "flash_attn_type", "type_k", "type_v", "swa_full")
                           if hasattr(llm.context_params, f)},
    }
    (out_dir / f"llamacpp-{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{path.name}: tokens={tokens} top1={int(top[0])} ({float(last[top[0]]):.4f}) "
          f"in {time.time() - t0:.1f}s", file=sys.stderr)
    del llm
    return {"last": last}


def model_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every llama.cpp reference tool takes: which models, where they are, where the
    goldens go."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append",
                    help="GGUF name (repeatable; default: both shared models and the rewrites)")
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[2] / "tests/golden/reference"))
    return ap


def main():
    ap = model_arguments(__doc__)
    ap.add_argument("--compare-numpy", metavar="DIR",
                    help="folder holding numpy-f32-<model>.last-logits.f32 dumps to compare against")
    args = ap.parse_args()

    import llama_cpp

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.model or MODELS:
        path = Path(args.models_dir) / name
        if not path.exists():
            raise SystemExit(f"model {path} not found (run ../shared/models/fetch.sh, then "
                             "tools/golden/make_arch_rewrites.py)")
        res = run_model(llama_cpp, path, out_dir)
        if args.compare_numpy:
            dump = Path(args.compare_numpy) / f"numpy-f32-{name[:-5]}.last-logits.f32"
            ref = np.fromfile(dump, dtype="<f4")
            print(f"  numpy F32 vs llama.cpp: {json.dumps(compare(ref, res['last']))}", file=sys.stderr)


if __name__ == "__main__":
    main()
