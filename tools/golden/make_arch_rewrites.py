#!/usr/bin/env python3
"""Real Qwen2.5-0.5B weights rewritten as other architectures, so that Parallax's `llama` and
`qwen3` forward passes can be checked against llama.cpp on real, trained weights.

Reads the shared qwen2.5-coder-0.5b-instruct-q4_k_m.gguf and writes, into the model cache
($PARALLAX_MODELS, default ~/.cache/parallax/models; never into the repository):

  qwen2.5-0.5b-as-llama.gguf         architecture `llama`, q/k/v biases kept (llama.cpp's llama
                                     graph adds them when the tensors exist)
  qwen2.5-0.5b-as-llama-nobias.gguf  the same without the q/k/v biases
  qwen2.5-0.5b-as-qwen3.gguf         architecture `qwen3`: no biases, per-head attn_q_norm /
                                     attn_k_norm weights (F32, head_dim values a layer)
  qwen2.5-0.5b-deep44.gguf           architecture `qwen2`, 44 layers: the model's 24 layers, then
                                     its layers 4–23 again (a "passthrough" self-merge, as
                                     mergekit makes them), for a real-weight model deeper than
                                     7B-class models are

Every tensor keeps its type and bytes (no requantization). Only gguf-py and numpy are used; the
output is a function of the input file and this script alone (same bytes on every run).

Why the q/k rows move for `llama`: qwen2 and qwen3 use NEOX RoPE, which rotates dimension i of
a head with dimension i + head_dim/2; llama.cpp's `llama` uses RoPE NORM, which rotates
dimensions 2i and 2i+1. Reordering each head's output rows of attn_q / attn_k (and their
biases) so that row 2i+s of a head is the old row s*head_dim/2 + i makes NORM RoPE rotate
exactly the pairs NEOX rotated: the same attention scores, so the same function. It is what
llama.cpp's convert script does to HF llama checkpoints (`permute`). It moves whole rows, and a
GGUF row is a whole number of quantization blocks, so the quantized bytes move unchanged.
Dropping the biases (the nobias and qwen3 files) changes the function: those files are other
models, but still real trained weights and real activation statistics.

Why the deep file: the default contract's verdicts must hold on models deeper than the shared
ones, where rounding noise has more layers to grow through and Qwen's massive activations at
position 0 pass through every later layer. No deeper real model can be fetched here, so the
0.5B's own trained layers are stacked (0–23, then 4–23): every layer is a real trained layer
fed real activation statistics, 44 deep, and llama.cpp runs the file as any qwen2 model.

The qwen3 norm weights: a per-head RMSNorm with weight 1 everywhere would hide a weight applied
to the wrong dimension (a head-layout or pairing mistake), so the weights vary per dimension.
They are derived from the model itself, deterministically: for layer l, q_norm[d] is the mean
L2 norm of the attn_q rows of dimension d over all heads, divided by the mean of those norms
over d (so the values sit around 1.0 and carry the model's own per-dimension structure, which
follows the RoPE frequencies); k_norm likewise from attn_k.

Usage:
  python3 tools/golden/make_arch_rewrites.py [--models-dir DIR] [--if-stale]
Prints the path of each file. Takes ~30 s. With --if-stale (what ./dev and check_goldens.sh
use) nothing is written when every file exists and the stamp file beside them
(.parallax-arch-rewrites.sha256) holds the sha256 of this script as it was when they were
written: a changed generator remakes them. A partial file never takes a final name.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

SOURCE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
OUTPUTS = {
    "qwen2.5-0.5b-as-llama.gguf": {"arch": "llama", "biases": True, "qk_norm": False},
    "qwen2.5-0.5b-as-llama-nobias.gguf": {"arch": "llama", "biases": False, "qk_norm": False},
    "qwen2.5-0.5b-as-qwen3.gguf": {"arch": "qwen3", "biases": False, "qk_norm": True},
    "qwen2.5-0.5b-deep44.gguf": {"arch": "qwen2", "biases": True, "qk_norm": False,
                                 "layers": list(range(24)) + list(range(4, 24))},
}
SOURCE_ARCH = "qwen2"
STAMP = ".parallax-arch-rewrites.sha256"


def field_value(field):
    """A reader field's value as GGUFWriter.add_key_value takes it, with its types."""
    vtype = GGUFValueType(field.types[0])
    if vtype == GGUFValueType.ARRAY:
        return field.contents(), vtype, GGUFValueType(field.types[-1])
    return field.contents(), vtype, None


def neox_to_adjacent(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder each head's rows (first axis) from NEOX pairing to adjacent pairing: new row
    2i+s of a head is old row s*half + i (llama.cpp convert_hf_to_gguf.py's `permute`)."""
    head_dim = rows.shape[0] // n_head
    shaped = rows.reshape(n_head, 2, head_dim // 2, *rows.shape[1:])
    return np.ascontiguousarray(shaped.swapaxes(1, 2).reshape(rows.shape))


def norm_weights(t, head_dim: int) -> np.ndarray:
    """Per-dimension weights around 1.0 from a projection's rows (see the module doc)."""
    w = dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0])).astype(np.float64)
    row_norm = np.linalg.norm(w, axis=1).reshape(-1, head_dim)  # heads × head_dim
    per_dim = row_norm.mean(axis=0)
    return (per_dim / per_dim.mean()).astype(np.float32)


def rewrite(src: GGUFReader, out: Path, arch: str, biases: bool, qk_norm: bool,
            layers: list[int] | None = None) -> None:
    """`layers`: the source layer of each layer of the output (default: the same layers)."""
    n_head = int(src.fields[f"{SOURCE_ARCH}.attention.head_count"].contents())
    n_head_kv = int(src.fields[f"{SOURCE_ARCH}.attention.head_count_kv"].contents())
    n_embd = int(src.fields[f"{SOURCE_ARCH}.embedding_length"].contents())
    head_dim = n_embd // n_head
    alignment = int(src.fields["general.alignment"].contents()) if "general.alignment" in src.fields else 32

    partial = out.with_name(out.name + ".partial")
    w = GGUFWriter(str(partial), arch)
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.alignment"):
            continue
        val, vtype, sub = field_value(field)
        if key.startswith(SOURCE_ARCH + "."):
            key = arch + key[len(SOURCE_ARCH):]
        if key == "general.name":
            what = f"{len(layers)} layers" if layers else f"as {arch}{'' if biases or qk_norm else ', no biases'}"
            val = f"{val} ({what}; Parallax test rewrite)"
        if key == f"{arch}.block_count" and layers:
            val = len(layers)
        w.add_key_value(key, val, vtype, sub)
    if alignment != 32:
        w.add_custom_alignment(alignment)
    if qk_norm:
        # Real qwen3 files carry the head size explicitly; Parallax and llama.cpp both read it.
        w.add_key_value(f"{arch}.attention.key_length", head_dim, GGUFValueType.UINT32)
        w.add_key_value(f"{arch}.attention.value_length", head_dim, GGUFValueType.UINT32)

    adjacent = arch == "llama"
    order = [(t.name, t) for t in src.tensors]
    if layers:
        # Tensors outside the blocks first, then each output layer's from its source layer.
        block = [t for t in src.tensors if t.name.startswith("blk.")]
        order = [(t.name, t) for t in src.tensors if not t.name.startswith("blk.")]
        for new, old in enumerate(layers):
            for t in block:
                parts = t.name.split(".")
                if int(parts[1]) == old:
                    order.append((".".join([parts[0], str(new), *parts[2:]]), t))
    for name, t in order:
        parts = name.split(".")
        is_bias = name.endswith(".bias") and parts[-2] in ("attn_q", "attn_k", "attn_v")
        if is_bias and not biases:
            continue
        qtype = GGMLQuantizationType(t.tensor_type)
        data = np.asarray(t.data)
        if adjacent and parts[-2] in ("attn_q", "attn_k"):
            heads = n_head if parts[-2] == "attn_q" else n_head_kv
            # weights: rows of bytes (a row per output); biases: one value per output row.
            data = neox_to_adjacent(data, heads)
        # The reader's array is already in numpy order (rows × bytes of a row for quantized
        # types), which is the shape the writer derives the ggml shape from.
        w.add_tensor(name, data, raw_dtype=qtype)
        if qk_norm and parts[-2] == "attn_k" and parts[-1] == "weight":
            layer = parts[1]
            q = next(x for x in src.tensors if x.name == f"blk.{t.name.split('.')[1]}.attn_q.weight")
            w.add_tensor(f"blk.{layer}.attn_q_norm.weight", norm_weights(q, head_dim),
                         raw_dtype=GGMLQuantizationType.F32)
            w.add_tensor(f"blk.{layer}.attn_k_norm.weight", norm_weights(t, head_dim),
                         raw_dtype=GGMLQuantizationType.F32)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(partial, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--if-stale", action="store_true",
                    help="write nothing when the files exist and were made by this very script")
    args = ap.parse_args()
    models = Path(args.models_dir)
    generator = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    stamp = models / STAMP
    fresh = stamp.exists() and stamp.read_text().strip() == generator
    if args.if_stale and fresh and all((models / n).exists() for n in OUTPUTS):
        for name in OUTPUTS:
            print(models / name)
        return
    src_path = models / SOURCE
    if not src_path.exists():
        raise SystemExit(f"{src_path} not found (run ../shared/models/fetch.sh)")
    src = GGUFReader(str(src_path))
    arch = src.fields["general.architecture"].contents()
    if arch != SOURCE_ARCH:
        raise SystemExit(f"{src_path}: architecture {arch!r}, expected {SOURCE_ARCH!r}")
    stamp.unlink(missing_ok=True)
    for name, spec in OUTPUTS.items():
        rewrite(src, models / name, spec["arch"], spec["biases"], spec["qk_norm"], spec.get("layers"))
        print(models / name)
    stamp.write_text(generator + "\n")


if __name__ == "__main__":
    sys.exit(main())
