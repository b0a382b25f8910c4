//! Bit-exactness against independent references (tools/golden/gen_quant_golden.py):
//! dequantization vs gguf-py, activation quantizers vs gguf-py (Q8_0) and numpy transcriptions
//! of llama.cpp's `quantize_row_q8_1_ref` / `quantize_row_q8_K_ref`.
//!
//! NaN policy: a NaN output matches any NaN reference (payload/quiet bit may differ: numpy keeps
//! a signalling f16 NaN's payload as is, `half` sets the quiet bit); every other value, ±0 and
//! ±Inf included, must match bit for bit.

mod common;

use common::{f32s, unhex};
use half::{bf16, f16};
use parallax_quant::{dequantize, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k};
use parallax_quant::{vec_dot, Activation, BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType};
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/quant_golden.json");

fn golden() -> Value {
    serde_json::from_str(GOLDEN).expect("golden JSON parses")
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn dequantize_matches_gguf_py_bit_exactly_for_every_type() {
    let g = golden();
    let cases = g["dequant"].as_array().expect("dequant cases");
    let mut covered = Vec::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["type"].as_str().unwrap();
        let ty = GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
        let bytes = unhex(case["bytes"].as_str().unwrap());
        let want = f32s(&unhex(case["values"].as_str().unwrap()));
        let labels: Vec<&str> =
            case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let mut got = vec![0f32; want.len()];
        dequantize(ty, &bytes, &mut got).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut bad = 0;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            if !same_bits(g, w) {
                if bad < 3 {
                    let blk = i / ty.block_size();
                    failures.push(format!(
                        "{name} value {i} (block {blk}, {}): got {g:e} ({:#010x}), gguf-py {w:e} ({:#010x})",
                        labels.get(blk).copied().unwrap_or("raw"),
                        g.to_bits(),
                        w.to_bits()
                    ));
                }
                bad += 1;
            }
        }
        if bad > 0 {
            failures.push(format!("{name}: {bad} of {} values differ", want.len()));
        }
        covered.push(ty);
    }
    assert!(failures.is_empty(), "dequantization mismatches:\n{}", failures.join("\n"));
    for ty in GgmlType::all().filter(|t| t.is_dequantizable()) {
        assert!(covered.contains(&ty), "golden file has no dequantization case for {ty}");
    }
}

#[test]
fn golden_f16_and_bf16_cases_include_nan_and_inf() {
    // The NaN policy above is only exercised if the raw-bit cases really contain NaN and Inf.
    let g = golden();
    for name in ["F16", "BF16", "F32"] {
        let case = g["dequant"].as_array().unwrap().iter().find(|c| c["type"] == name).unwrap();
        let vals = f32s(&unhex(case["values"].as_str().unwrap()));
        assert!(vals.iter().any(|v| v.is_nan()), "{name} golden has no NaN");
        if name != "F32" {
            assert!(vals.iter().any(|v| v.is_infinite()), "{name} golden has no Inf");
        }
    }
}

fn block_bytes(ty: &str, x: &[f32]) -> Vec<u8> {
    match ty {
        "Q8_0" => {
            let mut out = vec![BlockQ8_0::ZERO; x.len() / 32];
            quantize_row_q8_0(x, &mut out);
            out.iter().flat_map(|b| b.to_bytes()).collect()
        }
        "Q8_1" => {
            let mut out = vec![BlockQ8_1::ZERO; x.len() / 32];
            quantize_row_q8_1(x, &mut out);
            out.iter().flat_map(|b| b.to_bytes()).collect()
        }
        "Q8_K" => {
            let mut out = vec![BlockQ8K::ZERO; x.len() / 256];
            quantize_row_q8_k(x, &mut out);
            out.iter().flat_map(|b| b.to_bytes()).collect()
        }
        other => panic!("no quantizer for {other}"),
    }
}

#[test]
fn activation_quantizers_match_references_bit_exactly() {
    let g = golden();
    let mut failures = Vec::new();
    let mut n = 0;
    for case in g["quantize"].as_array().unwrap() {
        let ty = case["type"].as_str().unwrap();
        let label = case["label"].as_str().unwrap();
        let x = f32s(&unhex(case["x"].as_str().unwrap()));
        let want = unhex(case["blocks"].as_str().unwrap());
        let got = block_bytes(ty, &x);
        assert_eq!(got.len(), want.len(), "{ty} {label}: block count");
        let bs = GgmlType::from_name(ty).unwrap().type_size();
        for (i, (g, w)) in got.chunks(bs).zip(want.chunks(bs)).enumerate() {
            if g != w {
                let first = g.iter().zip(w).position(|(a, b)| a != b).unwrap();
                failures.push(format!(
                    "{ty} '{label}' block {i}: first differing byte {first} (got {:#04x}, want {:#04x}) \
                     [d at 0, {}]",
                    g[first],
                    w[first],
                    if ty == "Q8_K" { "qs at 4, bsums at 260" } else if ty == "Q8_1" { "s at 2, qs at 4" } else { "qs at 2" }
                ));
            }
        }
        n += 1;
    }
    assert!(n >= 30, "golden file has too few quantizer cases ({n})");
    assert!(failures.is_empty(), "quantizer mismatches:\n{}", failures.join("\n"));
}

/// The second reference: ggml itself via ctypes (tools/golden/quant_ggml_ctypes.py, which needs
/// llama-cpp-python). The golden is committed, so it is always there; a missing file fails.
#[test]
fn ggml_ctypes_goldens_match() {
    // Made by tools/golden/quant_ggml_ctypes.py from ggml's own quantizers and CPU vec_dot.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/quant_ggml.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let g: Value = serde_json::from_str(&text).expect("ggml golden parses");
    let mut failures = Vec::new();
    let quant = g["quantize"].as_array().unwrap();
    for case in quant {
        let ty = case["type"].as_str().unwrap();
        let label = case["label"].as_str().unwrap();
        let x = f32s(&unhex(case["x"].as_str().unwrap()));
        let want = unhex(case["blocks"].as_str().unwrap());
        if block_bytes(ty, &x) != want {
            failures.push(format!("{ty} '{label}' differs from ggml's {ty} _ref quantizer"));
        }
    }
    // ggml's CPU vec_dot (its SIMD kernels on this build) vs ours, same inputs: within the
    // reassociation tolerance of tests/dot.rs.
    let dots = g["dot"].as_array().unwrap();
    for case in dots {
        let ty = GgmlType::from_name(case["weight_type"].as_str().unwrap()).unwrap();
        let w = unhex(case["w"].as_str().unwrap());
        let act = activation_from_bytes(
            case["act_type"].as_str().unwrap(),
            &unhex(case["act"].as_str().unwrap()),
        );
        let want = f32s(&unhex(case["result"].as_str().unwrap()))[0] as f64;
        let got = vec_dot(ty, &w, &act).unwrap_or_else(|e| panic!("{ty}: {e}")) as f64;
        let (_, mag) = common::ref_dot(ty, &w, &act);
        if (got - want).abs() > 1e-5 * mag {
            failures.push(format!(
                "{ty} × {} (n = {}): ours {got:e}, ggml {want:e}, |diff| {:e} > {:e}",
                act.ty(),
                act.n_values(),
                (got - want).abs(),
                1e-5 * mag
            ));
        }
    }
    assert!(quant.len() >= 30 && dots.len() >= 40, "ggml golden file is incomplete");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An activation row from ggml's block bytes.
fn activation_from_bytes(ty: &str, b: &[u8]) -> Activation {
    let h = |o: usize| f16::from_le_bytes([b[o], b[o + 1]]);
    match ty {
        "F32" => Activation::F32(f32s(b)),
        "F16" => {
            Activation::F16(b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect())
        }
        "BF16" => {
            Activation::BF16(b.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]])).collect())
        }
        "Q8_0" => Activation::Q8_0(
            (0..b.len() / 34)
                .map(|i| BlockQ8_0 {
                    d: h(34 * i),
                    qs: std::array::from_fn(|j| b[34 * i + 2 + j] as i8),
                })
                .collect(),
        ),
        "Q8_1" => Activation::Q8_1(
            (0..b.len() / 36)
                .map(|i| BlockQ8_1 {
                    d: h(36 * i),
                    s: h(36 * i + 2),
                    qs: std::array::from_fn(|j| b[36 * i + 4 + j] as i8),
                })
                .collect(),
        ),
        "Q8_K" => Activation::Q8K(
            (0..b.len() / 292)
                .map(|i| {
                    let o = 292 * i;
                    BlockQ8K {
                        d: f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]),
                        qs: std::array::from_fn(|j| b[o + 4 + j] as i8),
                        bsums: std::array::from_fn(|j| {
                            i16::from_le_bytes([b[o + 260 + 2 * j], b[o + 261 + 2 * j]])
                        }),
                    }
                })
                .collect(),
        ),
        other => panic!("unknown activation type {other}"),
    }
}
