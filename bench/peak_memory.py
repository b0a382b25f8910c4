#!/usr/bin/env python3
"""Peak memory of `parallax run` (both paths) against the model file's size, and a layer sweep.

Peak RSS comes from wait4() (ru_maxrss) of each child: resident pages of the process only (the
page cache holding the file is not counted, as it is not parallax's memory). Models:
  - the shared Qwen2.5-Coder-0.5B and Gemma-3-270M (contract tokens);
  - synthetic models of Qwen2.5-7B's width (hidden 3584, FFN 18944, vocabulary 152064) with
    --layers of them (default 4,8,16,28), made by `make-7b-shaped --layers N` into the model
    cache once (the 28-layer one is the browser memory test's file).
Goal: peak RSS ≤ 30 % of the file and flat in the number of layers.

Usage: python3 bench/peak_memory.py --parallax target/release/parallax --make-7b-shaped BIN
         [--layers 4,8,16,28] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from child import models_dir, run

SHARED = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": "3838,374,220,17,10,17,30",
    "gemma-3-270m-q4_k_m.gguf": "2,3689,563,236743,236778,236862,236778,236881",
}
SYNTHETIC_TOKENS = "3838,374,220,17,10,17,30"


def synthetic(make: str, cache: Path, layers: int) -> Path:
    name = "synthetic-7b-shaped-q4_k_m.gguf" if layers == 28 else f"synthetic-7b-shaped-{layers}l-q4_k_m.gguf"
    path = cache / name
    if not path.exists():
        print(f"  generating {name} (once)", file=sys.stderr, flush=True)
        part = path.with_suffix(".partial")
        subprocess.run([make, "--layers", str(layers), str(part)], check=True, stderr=subprocess.DEVNULL)
        part.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallax", required=True)
    ap.add_argument("--make-7b-shaped", help="the generator binary (skip the sweep without it)")
    ap.add_argument("--models-dir", default=str(models_dir()))
    ap.add_argument("--layers", default="4,8,16,28")
    ap.add_argument("--threads", default="1")
    args = ap.parse_args()
    cache = Path(args.models_dir)

    cases = [(name, cache / name, toks) for name, toks in SHARED.items()]
    if args.make_7b_shaped:
        for n in [int(x) for x in args.layers.split(",")]:
            cases.append((f"7B-shaped, {n} layers", synthetic(args.make_7b_shaped, cache, n), SYNTHETIC_TOKENS))
    print(f"peak RSS of `parallax run --paths f32,q8 --threads {args.threads} --no-hash` (goal ≤ 30 % of the file, flat in layers)")
    print("| model | file MB | layers | peak RSS MB | RSS / file | run s |")
    print("|---|---|---|---|---|---|")
    for label, path, toks in cases:
        if not path.exists():
            print(f"| {label} | missing: {path} | | | | |")
            continue
        cmd = [args.parallax, "run", "-m", str(path), "--tokens", toks, "--paths", "f32,q8",
               "--threads", args.threads, "-q", "--no-hash"]
        wall, rss, _ = run(cmd)
        size = path.stat().st_size
        layers = layer_count(args.parallax, path)
        print(f"| {label} | {size / 1e6:.0f} | {layers} | {rss / 1e6:.0f} | {100 * rss / size:.1f} % | {wall:.2f} |", flush=True)


def layer_count(parallax: str, path: Path) -> str:
    out = subprocess.run([parallax, "inspect", "-m", str(path), "--json"], capture_output=True, text=True)
    try:
        return str(json.loads(out.stdout)["hyperparameters"]["n_layers"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return "?"

if __name__ == "__main__":
    main()
