#!/usr/bin/env python3
"""Golden data for the APR fixtures in ../shared/fixtures/apr, made with gguf-py (an independent
numpy implementation of the ggml dequantizers) from tiny-qwen2.gguf, the file upstream's
`apr import` made both APR fixtures from.

For every GGUF tensor it records the GGUF name, the HF-style name upstream's plain import gives
it, the ggml type id, the dims in APR order (row-major, outermost first), the sha256 of the raw
GGUF bytes (what `--preserve-q4k` copies) and the sha256 of the tensor dequantized to f32
little-endian bytes (what the plain import stores). Also the metadata values the APR files must
carry.

    pip install gguf==0.19.0 numpy
    python3 tools/golden/apr_golden.py [FIXTURE_DIR] > crates/apr/tests/data/tiny-qwen2.golden.json

FIXTURE_DIR defaults to ../shared/fixtures/apr (relative to the repository root).
"""
import hashlib
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LAYER_PARTS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(name):
    if name in GLOBAL:
        return GLOBAL[name]
    blk, layer, part, kind = name.split(".")
    assert blk == "blk", name
    return f"model.layers.{layer}.{LAYER_PARTS[part]}.{kind}"


def field(reader, key):
    return reader.fields[key].contents()


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "fixtures", "apr")
    reader = GGUFReader(os.path.join(fixtures, "tiny-qwen2.gguf"))
    tensors = []
    for t in reader.tensors:
        raw = np.asarray(t.data).tobytes()
        values = dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1)
        tensors.append({
            "gguf_name": t.name,
            "hf_name": hf_name(t.name),
            "ggml_type": int(t.tensor_type),
            "dims": [int(d) for d in reversed(t.shape)],
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "raw_len": len(raw),
            "f32_sha256": hashlib.sha256(values.tobytes()).hexdigest(),
        })
    arch = field(reader, "general.architecture")
    out = {
        "source": "tiny-qwen2.gguf",
        "generator": "tools/golden/apr_golden.py (gguf-py dequantize)",
        "metadata": {
            "architecture": arch,
            "hidden_size": int(field(reader, f"{arch}.embedding_length")),
            "num_layers": int(field(reader, f"{arch}.block_count")),
            "num_heads": int(field(reader, f"{arch}.attention.head_count")),
            "num_kv_heads": int(field(reader, f"{arch}.attention.head_count_kv")),
            "intermediate_size": int(field(reader, f"{arch}.feed_forward_length")),
            "max_position_embeddings": int(field(reader, f"{arch}.context_length")),
            "vocab_size": len(field(reader, "tokenizer.ggml.tokens")),
            "rope_theta": float(np.float32(field(reader, f"{arch}.rope.freq_base"))),
            "rms_norm_eps_f32_bits": int(np.float32(field(reader, f"{arch}.attention.layer_norm_rms_epsilon")).view(np.uint32)),
            "tokenizer.merges": list(field(reader, "tokenizer.ggml.merges")),
            "tokenizer.bos_token_id": int(field(reader, "tokenizer.ggml.bos_token_id")),
            "tokenizer.eos_token_id": int(field(reader, "tokenizer.ggml.eos_token_id")),
            "tokenizer.vocabulary": list(field(reader, "tokenizer.ggml.tokens")),
        },
        "tensors": tensors,
    }
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
