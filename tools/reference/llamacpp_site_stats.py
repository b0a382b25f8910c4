#!/usr/bin/env python3
"""llama.cpp's own tensors at every Parallax site: per-site statistics and layer-0/1 rows.

Evaluates the contract tokens with llama-cpp-python (CPU backend, `use_extra_bufts = false`
as in llamacpp_logits.py: the AMX/repacked kernels segfault on this machine and would tie
the golden to the CPU model; n_ctx 64, n_threads 2, f16 K/V cache, no flash attention) with an
eval callback (`cb_eval`) that copies every f32 graph node, and maps llama.cpp's graph nodes to
Parallax's sites (crates/engine/src/run.rs `layer_sites`):

  site            llama.cpp node (layer il)
  embed           `embd` (qwen2) | `inp_scaled` (gemma3: embd · sqrt(n_embd))
  attn_norm       `attn_norm-il` (MUL after RMS_NORM)
  q, k, v         `Qcur-il` / `Kcur-il` / `Vcur-il`: the ADD of the bias (qwen2) or the
                  MUL_MAT (gemma3) — i.e. after the bias, before q/k-norm, RoPE and reshapes
  attn_out        `kqv_out-il` (heads concatenated, before the output projection)
  attn_proj       the unnamed MUL_MAT whose weight is `blk.il.attn_output.weight`
  attn_post_norm  `attn_post_norm-il` (gemma3)
  resid_attn      `ffn_inp-il` (qwen2) | `sa_out-il` (gemma3)
  ffn_norm        `ffn_norm-il`
  ffn_gate/up     `ffn_gate-il` / `ffn_up-il`
  ffn_silu        NOT captured: llama.cpp fuses act(gate)·up into one SWIGLU / GEGLU node, so
                  the activated gate never exists as a tensor
  ffn_swigl       `ffn_swiglu-il` (qwen2) | `ffn_geglu-il` (gemma3)
  ffn_down        `ffn_out-il` (the down MUL_MAT, before any post-norm)
  ffn_post_norm   `ffn_post_norm-il` (gemma3)
  resid_ffn       `l_out-il`
  final_norm      `result_norm`
  logits          `result_output`

Nodes are matched by name AND op (several nodes share a name: `Qcur-0` is the MUL_MAT, the
bias ADD, the RESHAPE and the ROPE), and the shape is checked against the token count.

Output per model: tests/golden/reference/llamacpp-sites-<model>.json with, per site, `all`
(count, mean, std, min, max, absmax over all tokens × features; std is the sample std, n − 1,
accumulated in float64 over the float32 values, as Parallax's report) and `last` (the same for
the last token), and for layers 0 and 1 `last_row_f32le_hex`: the last token's full row, as hex
of little-endian f32 bytes.

Usage:
  python3 tools/reference/llamacpp_site_stats.py            # both shared models + the rewrites
  python3 tools/reference/llamacpp_site_stats.py --model gemma-3-270m-q4_k_m.gguf
  python3 tools/reference/llamacpp_site_stats.py --model qwen2.5-0.5b-as-qwen3.gguf   # a rewrite
    (llama and qwen3 rewrites, tools/golden/make_arch_rewrites.py: sites as qwen2's; q/k are
    the projection (+ bias where there is one), before qwen3's q/k norms)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
from pathlib import Path

import numpy as np

from common import (LAYER_SITES, TOKENS_OF_FILE, GgmlTensor, eval_callback, f32_array, f32_node, moments,
                    sha256_file)

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests/golden/reference"
ROW_LAYERS = (0, 1)


def capture(path: Path, tokens: list[int]):
    """Every f32 node llama.cpp computes, in execution order: (name, op, src0 name, array)."""
    import llama_cpp
    import llama_cpp.llama as llama_mod
    import llama_cpp.llama_cpp as C

    ggml = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    ggml.ggml_op_desc.restype = ctypes.c_char_p
    ggml.ggml_op_desc.argtypes = [ctypes.c_void_p]
    nodes: list[tuple[str, str, str, np.ndarray]] = []

    def on_tensor(t, ask, _ud):
        tt = f32_node(t, ask)
        if tt is None:
            return True
        src0 = ""
        if tt.src[0]:
            src0 = ctypes.cast(tt.src[0], ctypes.POINTER(GgmlTensor)).contents.name.decode()
        nodes.append((tt.name.decode(), ggml.ggml_op_desc(t).decode(), src0, f32_array(tt)))
        return True

    with eval_callback(C, on_tensor):
        llm = llama_mod.Llama(model_path=str(path), n_ctx=64, n_threads=2, logits_all=True, verbose=False)
        arch = llm.metadata.get("general.architecture", "")
        ctx_params = {f: int(getattr(llm.context_params, f)) for f in
                      ("n_batch", "n_ubatch", "flash_attn_type", "type_k", "type_v", "swa_full")
                      if hasattr(llm.context_params, f)}
        nodes.clear()
        llm.eval(tokens)
        del llm
    info = llama_cpp.llama_print_system_info()
    return arch, nodes, ctx_params, llama_cpp.__version__, info.decode() if isinstance(info, bytes) else str(info)


def site_record(rows: np.ndarray, with_row: bool) -> dict:
    rec = {"width": int(rows.shape[1]), "all": moments(rows), "last": moments(rows[-1])}
    if with_row:
        rec["last_row_f32le_hex"] = rows[-1].astype("<f4").tobytes().hex()
    return rec


def pick(nodes, n_tokens: int, name: str, ops: tuple[str, ...], src0: str | None = None, last_of=False):
    """The node called `name` (any name if None) computed by one of `ops` (from weight `src0`
    when given), reshaped to tokens × features. `last_of` takes the last match (the bias ADD
    follows the MUL_MAT under the same name)."""
    hits = [a for (nm, op, s0, a) in nodes
            if (name is None or nm == name) and op in ops and (src0 is None or s0 == src0)]
    if not hits:
        raise SystemExit(f"llama.cpp graph has no node {name!r} with op in {ops} (src0 {src0!r})")
    a = hits[-1] if last_of else hits[0]
    if a.size % n_tokens:
        raise SystemExit(f"node {name!r}: {a.size} values are not a whole number of {n_tokens} rows")
    return a.reshape(n_tokens, -1)


def run_model(path: Path, out_path: Path) -> dict:
    tokens = TOKENS_OF_FILE[path.name]
    T = len(tokens)
    arch, nodes, ctx_params, version, info = capture(path, tokens)
    if arch not in LAYER_SITES:
        raise SystemExit(f"{path.name}: architecture {arch!r} is not mapped")
    gemma = arch == "gemma3"
    n_layers = 1 + max(int(nm.rsplit("-", 1)[1]) for (nm, *_r) in nodes if nm.startswith("l_out-"))

    has_bias = any(nm == "Qcur-0" and op == "ADD" for (nm, op, *_r) in nodes)

    def layer_node(site: str, il: int):
        s = f"-{il}"
        if site in ("q", "k", "v"):
            # After the bias when there is one (ADD), else the projection itself.
            return pick(nodes, T, {"q": "Qcur", "k": "Kcur", "v": "Vcur"}[site] + s, ("MUL_MAT", "ADD"), last_of=True)
        if site == "attn_proj":
            return pick(nodes, T, None, ("MUL_MAT",), src0=f"blk.{il}.attn_output.weight")
        name = {
            "attn_norm": "attn_norm", "attn_out": "kqv_out", "attn_post_norm": "attn_post_norm",
            "resid_attn": "sa_out" if gemma else "ffn_inp", "ffn_norm": "ffn_norm",
            "ffn_gate": "ffn_gate", "ffn_up": "ffn_up", "ffn_swigl": "ffn_geglu" if gemma else "ffn_swiglu",
            "ffn_down": "ffn_out", "ffn_post_norm": "ffn_post_norm", "resid_ffn": "l_out",
        }[site] + s
        op = {"attn_norm": "MUL", "attn_out": "CONT", "attn_post_norm": "MUL", "resid_attn": "ADD",
              "ffn_norm": "MUL", "ffn_gate": "MUL_MAT", "ffn_up": "MUL_MAT",
              "ffn_swigl": "GEGLU" if gemma else "SWIGLU", "ffn_down": "MUL_MAT",
              "ffn_post_norm": "MUL", "resid_ffn": "ADD"}[site]
        return pick(nodes, T, name, (op,))

    skipped = {"ffn_silu": "llama.cpp fuses the activation and the up product into one "
                           + ("GEGLU" if gemma else "SWIGLU") + " node: act(gate) is never materialized"}
    layers = []
    for il in range(n_layers):
        sites = {}
        for s in LAYER_SITES[arch]:
            if s in skipped:
                continue
            sites[s] = site_record(layer_node(s, il), il in ROW_LAYERS)
        layers.append({"index": il, "sites": sites})
    embed = pick(nodes, T, "inp_scaled" if gemma else "embd", ("SCALE",) if gemma else ("GET_ROWS",))
    final_norm = pick(nodes, T, "result_norm", ("MUL",))
    logits = pick(nodes, T, "result_output", ("MUL_MAT",))

    # The callback runs the graph node by node; check it did not change the numerics against
    # the plain run's golden logits (llamacpp_logits.py), when present.
    golden = OUT_DIR / f"llamacpp-{path.stem}.last-logits.f32"
    same_as_plain = None
    if golden.exists():
        ref = np.fromfile(golden, dtype="<f4")
        same_as_plain = {"file": golden.name, "max_abs_diff": float(np.abs(ref - logits[-1]).max())}

    doc = {
        "tool": "tools/reference/llamacpp_site_stats.py",
        "model_file": path.name,
        "sha256": sha256_file(path),
        "architecture": arch,
        "tokens": tokens,
        "n_layers": n_layers,
        "llama_cpp_python_version": version,
        "system_info": info,
        "settings": {
            "backend": "CPU", "use_extra_bufts": False, "n_ctx": 64, "n_threads": 2, "logits_all": True,
            "batch": "all tokens in one eval() call", "context_params": ctx_params,
            "capture": "cb_eval on every node (graph evaluated node by node)",
        },
        "std_kind": "sample",
        "stats_accumulation": "float64 over float32 values",
        "row_layers": list(ROW_LAYERS),
        "row_format": "last token's row, little-endian f32 bytes as hex",
        "site_map": {
            "embed": "inp_scaled" if gemma else "embd",
            "q/k/v": "Qcur/Kcur/Vcur: " + ("bias ADD after MUL_MAT" if has_bias else "MUL_MAT"),
            "attn_out": "kqv_out-il", "attn_proj": "MUL_MAT with src0 blk.il.attn_output.weight",
            "resid_attn": "sa_out-il" if gemma else "ffn_inp-il",
            "ffn_swigl": "ffn_geglu-il" if gemma else "ffn_swiglu-il", "ffn_down": "ffn_out-il",
            "resid_ffn": "l_out-il", "final_norm": "result_norm", "logits": "result_output",
        },
        "skipped_sites": skipped,
        "site_order": [s for s in LAYER_SITES[arch] if s not in skipped],
        "embed": site_record(embed, True),
        "layers": layers,
        "final_norm": site_record(final_norm, False),
        "logits": {"all": moments(logits), "last": moments(logits[-1])},
        "logits_vs_plain_run": same_as_plain,
    }
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="GGUF file name (default: both shared models and the rewrites)")
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    args = ap.parse_args()
    for name in args.model or list(TOKENS_OF_FILE):
        path = Path(args.models_dir) / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run ../shared/models/fetch.sh, then "
                             "tools/golden/make_arch_rewrites.py")
        out = Path(args.out_dir) / f"llamacpp-sites-{path.stem}.json"
        doc = run_model(path, out)
        print(f"{out} ({out.stat().st_size} bytes): {doc['n_layers']} layers; "
              f"logits vs plain run: {doc['logits_vs_plain_run']}")


if __name__ == "__main__":
    main()
