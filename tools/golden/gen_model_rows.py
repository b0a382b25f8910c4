#!/usr/bin/env python3
"""Golden dequantization of the shared real models, made with gguf-py (an independent numpy
implementation of every ggml dequantizer).

For every tensor of each model it records the sha256 of the whole tensor dequantized to f32
(little-endian bytes, rows in file order), plus a few sampled rows with their first values, so
the Rust test `tests/real_models.rs` can check bit-exactness of every tensor and point at the
first differing row when something breaks.

    pip install gguf==0.19.0 numpy
    python3 tools/golden/gen_model_rows.py [MODELS_DIR] > tests/golden/real-model-rows.json

MODELS_DIR defaults to $PARALLAX_MODELS or ~/.cache/parallax/models (see ../shared/models/fetch.sh).
"""
import hashlib
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

MODELS = {
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "gemma-3-270m": "gemma-3-270m-q4_k_m.gguf",
}
ROW_CHUNK = 4096  # rows dequantized at a time, to bound memory on the 151936-row matrices


def tensor_rows(t):
    """The tensor's raw data as a 2-D uint8/float array of rows (ne1*ne2*ne3 rows of ne0 values)."""
    data = t.data
    n_rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
    return data.reshape(n_rows, -1), n_rows


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "PARALLAX_MODELS", os.path.expanduser("~/.cache/parallax/models"))
    out = {"generator": "tools/golden/gen_model_rows.py", "gguf_py": "0.19.0", "models": {}}
    for key, file in MODELS.items():
        reader = GGUFReader(os.path.join(folder, file))
        tensors = []
        for t in reader.tensors:
            rows, n_rows = tensor_rows(t)
            ne0 = int(t.shape[0])
            h = hashlib.sha256()
            samples = {}
            sample_rows = sorted({0, n_rows // 2, n_rows - 1})
            for start in range(0, n_rows, ROW_CHUNK):
                chunk = rows[start:start + ROW_CHUNK]
                f = dequantize(chunk, t.tensor_type).astype("<f4", copy=False).reshape(-1, ne0)
                h.update(f.tobytes())
                for r in sample_rows:
                    if start <= r < start + len(chunk):
                        row = f[r - start]
                        samples[str(r)] = {
                            "sha256": hashlib.sha256(row.tobytes()).hexdigest(),
                            "head_bits": [int(v) for v in row[:4].view("<u4")],
                        }
            tensors.append({
                "name": t.name,
                "type": t.tensor_type.name,
                "ne": [int(x) for x in t.shape],
                "sha256": h.hexdigest(),
                "rows": samples,
            })
            print(f"{key}: {t.name} {t.tensor_type.name}", file=sys.stderr)
        out["models"][key] = {"file": file, "tensors": tensors}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
