#!/usr/bin/env python3
"""The weight-type ladder: one model in every type llama.cpp's own quantizer makes.

1. Dequantizes the shared Qwen2.5-Coder-0.5B Q4_K_M to an all-F32 GGUF with gguf-py
   (`gguf.quants.dequantize`, every metadata key kept, `general.file_type` set to ALL_F32),
   written with GGUFWriter: `qwen2.5-0.5b-ladder-F32.gguf`.
2. Quantizes that F32 file with llama.cpp's own quantizer (`llama_cpp.llama_model_quantize`,
   `llama_model_quantize_default_params()` with only `ftype` set, no importance matrix) to each
   type of LADDER: `qwen2.5-0.5b-ladder-<TYPE>.gguf`.

Everything goes into the model cache ($PARALLAX_MODELS, default ~/.cache/parallax/models), never
the repository. Idempotent: a file that exists is kept (cached by presence; each is written under
a `.partial` name first, so an interrupted run leaves no final name behind). A type the quantizer
refuses (e.g. one that needs an importance matrix) is recorded with its reason in
`qwen2.5-0.5b-ladder.json` beside the files, with each file's bytes and tensor-type histogram
(llama.cpp falls back to other types for tensors whose rows are not a multiple of 256 values:
Qwen2.5-0.5B's 896-wide rows, so a "Q4_K_M" file also holds Q5_0/Q8_0 tensors — the histogram
says which).

    python3 tools/golden/make_ladder.py                  # every type
    python3 tools/golden/make_ladder.py --types Q4_0,Q8_0
    python3 tools/golden/make_ladder.py --f32-only       # step 1 alone (no llama.cpp needed)

Needs gguf==0.19.0, numpy, llama-cpp-python==0.3.36. ~1 min for the F32 file, then 10 s – 2 min
per type on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

SOURCE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
STEM = "qwen2.5-0.5b-ladder"
# ladder name -> llama.cpp ftype constant name
LADDER = {
    "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "Q3_K_S": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "Q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "Q5_K_S": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "IQ4_NL": "LLAMA_FTYPE_MOSTLY_IQ4_NL",
    "IQ4_XS": "LLAMA_FTYPE_MOSTLY_IQ4_XS",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
    "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
}
# Extra rows: `pure` (llama-quantize --pure: no per-tensor type mixing). Qwen2.5-0.5B's 896-wide
# rows fall back to legacy types, and the Q2_K mix gives ffn_down Q3_K, so the plain Q2_K file
# holds no Q2_K tensor at all; pure Q2_K makes every ffn_down Q2_K.
PURE = {
    "Q2_K-pure": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
ALL = {**LADDER, **PURE}


def models_dir() -> Path:
    return Path(os.environ.get("PARALLAX_MODELS", str(Path.home() / ".cache/parallax/models")))


def ladder_path(d: Path, name: str) -> Path:
    return d / f"{STEM}-{name}.gguf"


def dequantize_to_f32(src: Path, dst: Path) -> None:
    import numpy as np
    import gguf

    reader = gguf.GGUFReader(str(src), "r")
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(dst), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        # GGUF.* are the reader's virtual fields (version, counts); the writer sets its own.
        # general.architecture is written by the writer's constructor.
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == "general.file_type":
            value = int(gguf.LlamaFileType.ALL_F32)
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        # gguf-py's shapes are ne0-first; numpy's are row-major (ne0 last).
        data = data.reshape(tuple(int(x) for x in reversed(t.shape)))
        writer.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def histogram(path: Path) -> dict:
    import gguf

    r = gguf.GGUFReader(str(path), "r")
    h = collections.Counter(t.tensor_type.name for t in r.tensors)
    by_tensor = {}
    for t in r.tensors:
        # one representative per role: layer 0 and the global tensors
        if t.name.startswith("blk.0.") or not t.name.startswith("blk."):
            by_tensor[t.name] = t.tensor_type.name
    return {"types": dict(sorted(h.items())), "layer0_and_global": by_tensor}


def quiet_log(llama_cpp) -> None:
    """Keeps llama.cpp's summary, warnings and errors; drops its line per tensor."""

    @llama_cpp.llama_log_callback
    def cb(level, text, _user):
        line = text.decode(errors="replace")
        if level >= 3 or "quantize_impl" in line or "error" in line.lower() or "imatrix" in line:
            sys.stderr.write(line)

    quiet_log.cb = cb  # keep the ctypes callback alive
    llama_cpp.llama_log_set(cb, None)


def quantize(llama_cpp, src: Path, dst: Path, ftype: int, pure: bool) -> str | None:
    """Runs llama.cpp's quantizer; returns None on success, else the reason."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = pure
    params.nthread = os.cpu_count() or 1
    partial = dst.with_name(dst.name + ".partial")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(partial).encode(), params)
    if rc != 0:
        partial.unlink(missing_ok=True)
        return f"llama_model_quantize returned {rc} (llama.cpp's log above says why)"
    partial.rename(dst)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default=str(models_dir()))
    ap.add_argument("--types", help="comma-separated subset of: " + ",".join(ALL))
    ap.add_argument("--f32-only", action="store_true",
                    help="make only the F32 file (step 1; needs gguf-py and numpy, not llama.cpp)")
    args = ap.parse_args()
    d = Path(args.models_dir)
    src = d / SOURCE
    if not src.exists():
        raise SystemExit(f"{src} not found (run ../shared/models/fetch.sh)")
    wanted = args.types.split(",") if args.types else list(ALL)
    for w in wanted:
        if w not in ALL:
            raise SystemExit(f"unknown type {w}; known: {', '.join(ALL)}")

    f32 = ladder_path(d, "F32")
    if not f32.exists():
        t0 = time.time()
        print(f"dequantizing {src.name} -> {f32.name} (gguf-py)", file=sys.stderr)
        part = f32.with_name(f32.name + ".partial")
        dequantize_to_f32(src, part)
        part.rename(f32)
        print(f"  {f32.stat().st_size} bytes in {time.time() - t0:.0f} s", file=sys.stderr)
    if args.f32_only:
        return

    import llama_cpp

    quiet_log(llama_cpp)
    manifest_path = d / f"{STEM}.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("source", SOURCE)
    manifest.setdefault("f32", f32.name)
    manifest["llama_cpp_python_version"] = llama_cpp.__version__
    types = manifest.setdefault("types", {})
    for name in wanted:
        dst = ladder_path(d, name)
        entry = types.get(name, {})
        if not dst.exists():
            t0 = time.time()
            print(f"quantizing {f32.name} -> {dst.name} (llama.cpp, {ALL[name]}{', pure' if name in PURE else ''})",
                  file=sys.stderr)
            reason = quantize(llama_cpp, f32, dst, int(getattr(llama_cpp, ALL[name])), name in PURE)
            if reason:
                print(f"  {name}: {reason}", file=sys.stderr)
                types[name] = {"file": None, "ftype": ALL[name], "pure": name in PURE, "error": reason}
                continue
            entry = {"quantize_s": round(time.time() - t0, 1)}
        if "histogram" not in entry:
            entry["histogram"] = histogram(dst)
        entry.update({"file": dst.name, "ftype": ALL[name], "pure": name in PURE, "bytes": dst.stat().st_size})
        entry.pop("error", None)
        types[name] = entry
        print(f"  {name}: {dst.stat().st_size} bytes, {entry['histogram']['types']}", file=sys.stderr)
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
