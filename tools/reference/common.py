"""What the reference scripts share: the contract tokens, the per-layer sites, the ctypes view
of ggml's tensor struct, file hashing and the per-sample statistics (the same definitions as
Parallax's report: float64 over the float32 values, sample std with n - 1).

Imported by llamacpp_logits.py, llamacpp_site_stats.py, llamacpp_sites.py, numpy_forward.py
(and through it mimic_llamacpp.py); the scripts run from anywhere, since Python puts a script's
own folder first on its path.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
from pathlib import Path

import numpy as np

QWEN = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
ARCH = {QWEN: "qwen2", GEMMA: "gemma3"}

# The contract tokens of "What is 2+2?". Qwen2.5's come from the contract
# apr-vs-gguf-forward-parity-v1 (no BOS; add_bos_token = false); Gemma 3's are llama.cpp's
# tokenization with BOS (add_bos_token = true), verified with llama-cpp-python
# `tokenize(b"What is 2+2?", add_bos=True, special=False)`: llamacpp_logits.py records what it
# got on every run.
CONTRACT_TOKENS = {
    QWEN: [3838, 374, 220, 17, 10, 17, 30],
    GEMMA: [2, 3689, 563, 236743, 236778, 236862, 236778, 236881],
}
CONTRACT_TOKENS_BY_ARCH = {ARCH[f]: t for f, t in CONTRACT_TOKENS.items()}

# The shared Qwen2.5-0.5B rewritten as other architectures (tools/golden/make_arch_rewrites.py
# writes them into the model cache): same vocabulary and tokenizer, so Qwen's contract tokens.
REWRITES = {
    "qwen2.5-0.5b-as-llama.gguf": "llama",
    "qwen2.5-0.5b-as-llama-nobias.gguf": "llama",
    "qwen2.5-0.5b-as-qwen3.gguf": "qwen3",
    # 44 layers: the 24, then layers 4-23 again (a self-merge, still qwen2).
    "qwen2.5-0.5b-deep44.gguf": "qwen2",
}
TOKENS_OF_FILE = {**CONTRACT_TOKENS, **{f: CONTRACT_TOKENS[QWEN] for f in REWRITES}}

# Per-layer sites in execution order (crates/engine's `layer_sites`). Gemma 3 adds its two
# post-norms where they run.
LAYER_SITES = {
    "qwen2": [
        "attn_norm", "q", "k", "v", "attn_out", "attn_proj", "resid_attn",
        "ffn_norm", "ffn_gate", "ffn_up", "ffn_silu", "ffn_swigl", "ffn_down", "resid_ffn",
    ],
    "gemma3": [
        "attn_norm", "q", "k", "v", "attn_out", "attn_proj", "attn_post_norm", "resid_attn",
        "ffn_norm", "ffn_gate", "ffn_up", "ffn_silu", "ffn_swigl", "ffn_down", "ffn_post_norm",
        "resid_ffn",
    ],
}
# llama and qwen3 probe the same sites as qwen2 (qwen3's q/k norms sit inside attention, after
# the q and k sites).
LAYER_SITES["llama"] = LAYER_SITES["qwen3"] = LAYER_SITES["qwen2"]

GGML_TYPE_F32 = 0


class GgmlTensor(ctypes.Structure):
    # Mirrors struct ggml_tensor in the installed include/ggml.h (GGML_MAX_DIMS 4,
    # GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64).
    _fields_ = [
        ("type", ctypes.c_int), ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p), ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


@contextlib.contextmanager
def eval_callback(C, on_tensor):
    """While the block runs, llama-cpp-python's models and contexts are made with plain ggml-cpu
    kernels (`use_extra_bufts = false`, see llamacpp_logits.py) and call `on_tensor(t, ask, ud)`
    for every graph node (`cb_eval`). `C` is `llama_cpp.llama_cpp`."""
    callback = C.ggml_backend_sched_eval_callback(on_tensor)
    orig_model, orig_ctx = C.llama_model_default_params, C.llama_context_default_params

    def model_defaults():
        p = orig_model()
        p.use_extra_bufts = False
        return p

    def ctx_defaults():
        p = orig_ctx()
        p.cb_eval = callback
        return p

    C.llama_model_default_params, C.llama_context_default_params = model_defaults, ctx_defaults
    try:
        yield
    finally:
        C.llama_model_default_params, C.llama_context_default_params = orig_model, orig_ctx


def f32_node(t, ask: bool) -> GgmlTensor | None:
    """The node an eval callback (`cb_eval`) is shown, when it holds f32 data; None when llama.cpp
    only asks whether we want the node (every one: the callback answers True, so each node is
    computed and shown) or the node is of another type. The callback returns True either way."""
    if ask:
        return None
    tt = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
    if tt.type != GGML_TYPE_F32 or not tt.data:
        return None
    return tt


def f32_array(tt: GgmlTensor) -> np.ndarray:
    """A copy of the f32 ggml tensor `tt`'s data (its strides honoured), `ne` reversed as numpy's
    shape: row-major, the last axis ggml's ne0."""
    ne, nb = list(tt.ne), list(tt.nb)
    nbytes = max((ne[i] - 1) * nb[i] for i in range(4)) + 4
    buf = (ctypes.c_char * nbytes).from_address(tt.data)
    return np.lib.stride_tricks.as_strided(np.frombuffer(buf, dtype=np.float32),
                                           shape=ne[::-1], strides=nb[::-1]).copy()


def capture_f32_tensors(path: Path, tokens: list[int], **extra) -> dict[str, list[np.ndarray]]:
    """Every f32 graph tensor llama.cpp computes while it evaluates `tokens` on the model at
    `path` (CPU, plain ggml kernels, n_ctx 64, 2 threads; `extra` goes to `Llama`, e.g. one
    token per batch), copied out by name, in capture order (one capture per ubatch)."""
    import llama_cpp.llama as llama_mod
    import llama_cpp.llama_cpp as C

    caps: dict[str, list[np.ndarray]] = {}

    def on_tensor(t, ask, _ud):
        tt = f32_node(t, ask)
        if tt is not None:
            caps.setdefault(tt.name.decode(), []).append(f32_array(tt))
        return True

    with eval_callback(C, on_tensor):
        llm = llama_mod.Llama(model_path=str(path), n_ctx=64, n_threads=2, logits_all=True,
                              verbose=False, **extra)
        caps.clear()
        llm.eval(tokens)
        del llm
    return caps


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def moments(a: np.ndarray) -> dict:
    """count, mean, sample std (n - 1), min, max, absmax of all values, in float64."""
    v = np.asarray(a).astype(np.float64).ravel()
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "absmax": float(np.abs(v).max()),
    }
