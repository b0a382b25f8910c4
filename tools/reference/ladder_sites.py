#!/usr/bin/env python3
"""Diagnostic for the weight-type ladder: where Parallax's paths part from llama.cpp, site by site.

For one GGUF (a ladder file from tools/golden/make_ladder.py, or any qwen2 model) and the contract
tokens: captures llama.cpp's own f32 graph tensors through cb_eval (default setting: one batch,
use_extra_bufts = false) and, for every layer and site llama.cpp names, prints the relative
difference of the sample std (all tokens) of Parallax's q8 and f32 paths (`parallax run --json`,
scope all) to llama.cpp's. With `--own`, also llama.cpp against itself: the same quantity for its
one-token-per-batch setting against its default, layers 0-1 — the site-level spread.

The report holds statistics, not tensors, so this compares stds, not elements. Layer 0's q, k
and v projections are the clean check of a weight type's matmul: their input (attn_norm) agrees
to 1e-16; every later site inherits the differences of the sites before it.

    python3 tools/reference/ladder_sites.py --parallax target/release/parallax \\
        --model qwen2.5-0.5b-ladder-Q5_K_S.gguf [--own] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import capture_f32_tensors  # noqa: E402

TOKENS = [3838, 374, 220, 17, 10, 17, 30]
# Parallax site -> llama.cpp tensor name (qwen2; see llamacpp_sites.py)
NAMES = {"attn_norm": "attn_norm", "q": "Qcur", "k": "Kcur", "v": "Vcur", "attn_out": "kqv_out",
         "resid_attn": "ffn_inp", "ffn_norm": "ffn_norm", "ffn_gate": "ffn_gate", "ffn_up": "ffn_up",
         "ffn_swigl": "ffn_swiglu", "ffn_down": "ffn_out", "resid_ffn": "l_out"}


def capture(path: Path, extra: dict) -> dict[str, list[np.ndarray]]:
    return capture_f32_tensors(path, TOKENS, **extra)


def site_tensor(caps, name: str, layer: int):
    """All tokens of one named tensor, in capture order (one capture per ubatch). qwen2 names
    several nodes `Qcur`/`Kcur`/`Vcur` (the matmul, after the bias, reshaped, roped): take the
    second, after the bias — one batch only."""
    got = caps.get(f"{name}-{layer}")
    if not got:
        return None
    parts = got[1:2] if name in ("Qcur", "Kcur", "Vcur") else got
    return np.concatenate([p.reshape(-1) for p in parts]).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--parallax", required=True)
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--own", action="store_true", help="also llama.cpp one-token batches vs its default")
    ap.add_argument("--json", help="write the per-layer, per-site figures here")
    args = ap.parse_args()
    path = Path(args.model)
    if not path.exists():
        path = Path(args.models_dir) / args.model
    caps = capture(path, {})
    with tempfile.TemporaryDirectory() as tmp:
        rep_path = Path(tmp) / "report.json"
        subprocess.run([args.parallax, "run", "-m", str(path), "--tokens", ",".join(map(str, TOKENS)),
                        "--json", str(rep_path), "-q", "--no-hash"], capture_output=True)
        rep = json.loads(rep_path.read_text())
    res: dict = {"model": path.name, "layers": {}}
    print(f"{path.name}: relative difference of the sample std to llama.cpp's (default setting), q8 / f32")
    for L in rep["layers"]:
        i = L["index"]
        row = {}
        for s, n in NAMES.items():
            t = site_tensor(caps, n, i)
            if t is None or t.size != L["sites"][s]["q8"]["count"]:
                continue
            sd = float(t.std(ddof=1))
            row[s] = {"q8": L["sites"][s]["q8"]["std"] / sd - 1, "f32": L["sites"][s]["f32"]["std"] / sd - 1}
        res["layers"][i] = row
        print(f"L{i:<2} " + " ".join(f"{s} {v['q8']:+.1e}/{v['f32']:+.1e}" for s, v in row.items()))
    if args.own:
        one = capture(path, {"n_batch": 1, "n_ubatch": 1})
        res["own_one_by_one"] = {}
        print("llama.cpp one token per batch vs its default, relative difference of the sample std")
        for i in (0, 1):
            row = {}
            for s, n in NAMES.items():
                if n in ("Qcur", "Kcur", "Vcur"):
                    continue  # named twice per ubatch; not needed for the spread
                a, b = site_tensor(caps, n, i), site_tensor(one, n, i)
                if a is None or b is None or a.size != b.size:
                    continue
                row[s] = b.std(ddof=1) / a.std(ddof=1) - 1
            res["own_one_by_one"][i] = row
            print(f"L{i:<2} " + " ".join(f"{s} {v:+.1e}" for s, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
