"""Writes golden.gguf with gguf-py (0.19), an independent GGUF writer.

tests/golden.rs reads it (every value type, nested arrays, custom alignment, tensors of four
ggml types) and checks that parallax's GgufWriter produces the same bytes from the same inputs.
Run from this folder: python3 make_golden.py
"""
import numpy as np
import gguf
from gguf import GGUFValueType as T, GGMLQuantizationType as Q

w = gguf.GGUFWriter("golden.gguf", arch="golden")
w.add_custom_alignment(64)
w.add_key_value("t.u8", 200, T.UINT8)
w.add_key_value("t.i8", -100, T.INT8)
w.add_key_value("t.u16", 60000, T.UINT16)
w.add_key_value("t.i16", -30000, T.INT16)
w.add_key_value("t.u32", 4000000000, T.UINT32)
w.add_key_value("t.i32", -2000000000, T.INT32)
w.add_key_value("t.f32", 1.5, T.FLOAT32)
w.add_key_value("t.bool", True, T.BOOL)
w.add_key_value("t.string", "héllo ✓", T.STRING)
w.add_key_value("t.u64", 2**63 + 5, T.UINT64)
w.add_key_value("t.i64", -(2**62), T.INT64)
w.add_key_value("t.f64", -0.125, T.FLOAT64)
w.add_key_value("t.arr.u8", [1, 2, 255], T.ARRAY, sub_type=T.UINT8)
w.add_key_value("t.arr.i16", [-1, 2, -3], T.ARRAY, sub_type=T.INT16)
w.add_key_value("t.arr.i32", [7, -8], T.ARRAY, sub_type=T.INT32)
w.add_key_value("t.arr.f32", [0.5, -1.25, 3.0], T.ARRAY, sub_type=T.FLOAT32)
w.add_key_value("t.arr.bool", [True, False, True], T.ARRAY, sub_type=T.BOOL)
w.add_key_value("t.arr.str", ["a", "", "日本"], T.ARRAY, sub_type=T.STRING)
w.add_key_value("t.arr.u64", [0, 2**64 - 1], T.ARRAY, sub_type=T.UINT64)
w.add_key_value("t.arr.f64", [1e300, -2.5], T.ARRAY, sub_type=T.FLOAT64)
w.add_key_value("t.arr.nested", [[1, 2], [3]], T.ARRAY)
w.add_key_value("t.arr.nested_str", [["x"], ["y", "z"]], T.ARRAY)


def pattern(n, k):
    return np.array([(i * 31 + k * 7) % 251 for i in range(n)], dtype=np.uint8)


# numpy shapes are (ne1, ne0); quantized tensors are given as raw bytes per row.
w.add_tensor("f32.vec", np.arange(8, dtype=np.float32) * 0.5 - 3.0)
w.add_tensor("q8_0.mat", pattern(3 * 34, 1).reshape(3, 34), raw_dtype=Q.Q8_0)
w.add_tensor("q4_k.mat", pattern(2 * 144, 2).reshape(2, 144), raw_dtype=Q.Q4_K)
w.add_tensor("f16.mat", pattern(2 * 3 * 2, 3).view(np.float16).reshape(2, 3))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
