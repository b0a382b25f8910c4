#!/usr/bin/env python3
"""How far llama.cpp's last-token logits move under llama.cpp's own everyday settings.

The golden logits (llamacpp_logits.py) are one evaluation: all prompt tokens in one batch, f16
K/V cache, no flash attention. Users of llama.cpp change those settings all the time, and each
changes the float order or precision of some operation. This tool evaluates the contract tokens
under each setting and records how far the results lie from the golden and from each other. For
a model whose activations amplify last-ulp differences (Gemma 3) that spread is the floor under
any comparison with llama.cpp: no other implementation can be expected to sit closer to the
golden than llama.cpp itself does with a different batch size.

Settings (all CPU backend, use_extra_bufts = false, n_ctx 64, 2 threads):
  default       the golden's settings
  one_by_one    one token per batch (n_batch = n_ubatch = 1): matrix-vector kernels
  kv_f32        f32 K/V cache (type_k = type_v = F32)
  flash_attn    flash attention on
  kv_f32_one_by_one   both

Writes tests/golden/reference/llamacpp-variants-<model>.json (settings, cosine matrix, top-10
per setting) and tests/golden/reference/llamacpp-variants-<model>.<setting>.last-logits.f16
(raw little-endian f16, full vocabulary: half the size of f32; rounding to f16 moves a cosine
between two such vectors by < 1e-7, far below the spread measured here). The default setting's
f32 logits are the golden itself and are not written again.

    python3 tools/reference/llamacpp_variants.py                  # both shared models + rewrites
    python3 tools/reference/llamacpp_variants.py --model gemma-3-270m-q4_k_m.gguf
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llamacpp_logits as golden  # noqa: E402

SETTINGS = {
    "default": {},
    "one_by_one": {"n_batch": 1, "n_ubatch": 1},
    "kv_f32": {"type_k": 0, "type_v": 0},
    "flash_attn": {"flash_attn": True},
    "kv_f32_one_by_one": {"type_k": 0, "type_v": 0, "n_batch": 1, "n_ubatch": 1},
}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def evaluate(llama_mod, path: Path, tokens: list[int], extra: dict) -> np.ndarray:
    llm = llama_mod.Llama(model_path=str(path), n_ctx=golden.N_CTX, n_threads=golden.N_THREADS,
                          n_threads_batch=golden.N_THREADS, logits_all=True, verbose=False, **extra)
    if llm.model_params.use_extra_bufts:
        raise SystemExit("could not turn off use_extra_bufts")
    llm.reset()
    llm.eval(tokens)
    last = np.asarray(llm.scores[len(tokens) - 1], dtype=np.float32).copy()
    if not np.all(np.isfinite(last)):
        raise SystemExit(f"{path.name}: non-finite logits with {extra}")
    del llm
    return last


def main():
    args = golden.model_arguments(__doc__).parse_args()

    import llama_cpp
    import llama_cpp.llama as llama_mod

    golden.plain_cpu_kernels(llama_mod)
    out_dir = Path(args.out_dir)
    for name in args.model or golden.MODELS:
        path = Path(args.models_dir) / name
        stem = name[:-5]
        tokens = golden.TOKENS_OF_FILE[name]
        logits = {k: evaluate(llama_mod, path, tokens, extra) for k, extra in SETTINGS.items()}
        gold = np.fromfile(out_dir / f"llamacpp-{stem}.last-logits.f32", dtype="<f4")
        if not np.array_equal(gold, logits["default"]):
            raise SystemExit(f"{name}: the default setting no longer reproduces the committed golden; "
                             "run llamacpp_logits.py first")
        names = list(SETTINGS)
        matrix = [[cosine(logits[a], logits[b]) for b in names] for a in names]
        files = {}
        for k in names[1:]:
            f = f"llamacpp-variants-{stem}.{k}.last-logits.f16"
            logits[k].astype("<f2").tofile(out_dir / f)
            files[k] = f
        meta = {
            "tool": "tools/reference/llamacpp_variants.py",
            "model_file": name,
            "sha256": golden.sha256_file(path),
            "tokens": tokens,
            "llama_cpp_python_version": llama_cpp.__version__,
            "common": {"n_ctx": golden.N_CTX, "n_threads": golden.N_THREADS, "use_extra_bufts": False,
                       "logits_all": True, "backend": "CPU"},
            "settings": {k: {"extra_params": v, "logits_file": files.get(k, f"llamacpp-{stem}.last-logits.f32")}
                         for k, v in SETTINGS.items()},
            "logits_format": "raw little-endian f16 (default setting: the f32 golden), last token, full vocab",
            "cosine_matrix": {"order": names, "rows": matrix},
            "top10": {k: [int(i) for i in np.argsort(-v.astype(np.float64), kind="stable")[:10]] for k, v in logits.items()},
        }
        (out_dir / f"llamacpp-variants-{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
        worst = min(min(r) for r in matrix)
        print(f"{name}: llama.cpp against itself, worst cosine {worst:.6f}", file=sys.stderr)
        for k, row in zip(names, matrix):
            print(f"  {k:18s} " + " ".join(f"{c:.6f}" for c in row), file=sys.stderr)


if __name__ == "__main__":
    main()
