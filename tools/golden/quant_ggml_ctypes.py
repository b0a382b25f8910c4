#!/usr/bin/env python3
"""Golden vectors for crates/quant straight from ggml (the strongest reference), via ctypes.

Needs llama-cpp-python installed (it ships libggml-base.so and libggml-cpu.so in its package
directory, under lib/). Run from the repository root:

    python3 tools/golden/quant_ggml_ctypes.py

It writes crates/quant/tests/golden/quant_ggml.json (fixed seed; the ggml build is recorded).
tests/golden.rs checks it when present:
  * "quantize": ggml's own `quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`,
    `quantize_row_q8_K_ref` on the same corner-case rows as gen_quant_golden.py — must match
    this crate bit for bit.
  * "dot": ggml's CPU `vec_dot` from `ggml_get_type_traits_cpu(type)` (whatever kernel this
    machine's build picked: AVX2 etc.), on random weights and activations quantized by ggml's
    `_ref` quantizers — compared within float-reassociation tolerance, since ggml's SIMD kernels
    sum in a different order than the scalar `_generic` code this crate mirrors.
"""

import ctypes
import importlib.util
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_quant_golden as gq  # noqa: E402  (shared corner-case rows and random blocks)

SEED = 20250612
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "crates", "quant", "tests", "golden", "quant_ggml.json")

# ggml type ids (enum ggml_type)
GGML_ID = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q8_1": 9,
           "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "Q8_K": 15,
           "IQ4_NL": 20, "IQ4_XS": 23, "BF16": 30}
ACT = {"F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q8_0", "Q5_0": "Q8_0", "Q8_0": "Q8_0",
       "IQ4_NL": "Q8_0", "Q4_1": "Q8_1", "Q5_1": "Q8_1", "Q2_K": "Q8_K", "Q3_K": "Q8_K",
       "Q4_K": "Q8_K", "Q5_K": "Q8_K", "Q6_K": "Q8_K", "IQ4_XS": "Q8_K"}
ACT_BYTES = {"Q8_0": (32, 34), "Q8_1": (32, 36), "Q8_K": (256, 292)}


class TypeTraitsCpu(ctypes.Structure):
    # struct ggml_type_traits_cpu { from_float; vec_dot; vec_dot_type; nrows; } (ggml-cpu.h)
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_int)


def load():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llama-cpp-python is not installed (pip install llama-cpp-python)")
    libdir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    if hasattr(cpu, "ggml_cpu_init"):
        cpu.ggml_cpu_init()  # fills the fp16 tables some kernels use
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TypeTraitsCpu)
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    for name in ("quantize_row_q8_0_ref", "quantize_row_q8_1_ref", "quantize_row_q8_K_ref"):
        f = getattr(base, name)
        f.restype = None
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return base, cpu, libdir


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def ggml_quantize(base, act: str, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    bs, size = ACT_BYTES[act]
    # Zero-filled: ggml's Q8_K ref leaves bsums unwritten for an all-zero block; this crate
    # writes zeros there, so start from zeros to compare like with like.
    out = np.zeros(x.size // bs * size, dtype=np.uint8)
    fn = {"Q8_0": base.quantize_row_q8_0_ref, "Q8_1": base.quantize_row_q8_1_ref,
          "Q8_K": base.quantize_row_q8_K_ref}[act]
    fn(ptr(x), ptr(out), x.size)
    return out


def to_activation(base, act: str, x: np.ndarray) -> np.ndarray:
    if act == "F32":
        return x.astype(np.float32).view(np.uint8)
    if act == "F16":
        return x.astype(np.float16).view(np.uint8)  # round to nearest even, as GGML_FP32_TO_FP16
    if act == "BF16":
        from gguf.quants import quantize
        from gguf import GGMLQuantizationType as T
        return quantize(x.astype(np.float32), T.BF16).view(np.uint8)
    return ggml_quantize(base, act, x)


def random_weights(rng, ty: str, n: int) -> np.ndarray:
    if ty == "F32":
        return (rng.standard_normal(n) * 0.5).astype(np.float32).view(np.uint8)
    if ty == "F16":
        return (rng.standard_normal(n) * 0.5).astype(np.float16).view(np.uint8)
    if ty == "BF16":
        return to_activation(None, "BF16", (rng.standard_normal(n) * 0.5).astype(np.float32))
    bs, size, f16_offs, _ = gq.TYPES[ty]
    blocks = rng.integers(0, 256, size=(n // bs, size), dtype=np.uint8)
    for b in blocks:
        for off in f16_offs:
            gq.put_u16(b, off, gq.normal_f16(rng))
    return blocks.reshape(-1)


def main() -> int:
    base, cpu, libdir = load()
    rng = np.random.default_rng(SEED)

    quant_cases = []
    rows = {32: gq.activation_inputs(rng, 32), 256: gq.activation_inputs(rng, 256)}
    for act, bs in (("Q8_0", 32), ("Q8_1", 32), ("Q8_K", 256)):
        for label, x in rows[bs]:
            quant_cases.append({"type": act, "source": f"ggml quantize_row_{act.lower().replace('_k', '_K')}_ref",
                                "label": label, "x": gq.hexb(x.astype(np.float32)),
                                "blocks": gq.hexb(ggml_quantize(base, act, x))})

    dot_cases = []
    for ty, act in ACT.items():
        traits = cpu.ggml_get_type_traits_cpu(GGML_ID[ty]).contents
        assert traits.vec_dot_type == GGML_ID[act], f"{ty}: ggml pairs with type id {traits.vec_dot_type}"
        vec_dot = VEC_DOT(traits.vec_dot)
        bs = gq.TYPES[ty][0] if ty in gq.TYPES else 1
        for nblk in ((1, 4, 8) if bs == 256 else (1, 8, 64)):
            n = bs * nblk if bs > 1 else 32 * nblk
            w = np.ascontiguousarray(random_weights(rng, ty, n))
            x = rng.standard_normal(n).astype(np.float32)
            a = np.ascontiguousarray(to_activation(base, act, x))
            s = ctypes.c_float(0)
            vec_dot(n, ctypes.byref(s), 0, ptr(w), 0, ptr(a), 0, 1)
            dot_cases.append({"weight_type": ty, "act_type": act, "n": n, "w": gq.hexb(w),
                              "act": gq.hexb(a),
                              "result": gq.hexb(np.array([s.value], dtype=np.float32))})

    from importlib.metadata import version
    doc = {"generator": "tools/golden/quant_ggml_ctypes.py", "seed": SEED,
           "llama_cpp_python": version("llama_cpp_python"),
           "quantize": quant_cases, "dot": dot_cases}
    return gq.write_doc(sys.argv[1] if len(sys.argv) > 1 else OUT, doc)


if __name__ == "__main__":
    sys.exit(main())
