//! Every tensor of both shared models dequantizes bit-exactly as gguf-py does
//! (golden: tests/golden/real-model-rows.json, made by tools/golden/gen_model_rows.py).

use parallax_model::Model;
use parallax_source::{ByteSource, CountingSource, FileSource};
use parallax_tests::{model_path, repo_root, sha256_hex, GEMMA_270M, QWEN_0_5B};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn golden() -> Value {
    let path = repo_root().join("tests/golden/real-model-rows.json");
    serde_json::from_slice(&std::fs::read(&path).expect("golden file")).expect("golden json")
}

fn check_model(key: &str, file: &str, expected_tensors: usize) {
    let Some(path) = model_path(file) else { return };
    let golden = golden();
    let tensors = golden["models"][key]["tensors"].as_array().expect("golden tensors");
    assert_eq!(tensors.len(), expected_tensors, "golden for {key} lists all tensors");

    let source = CountingSource::new(FileSource::open(&path).unwrap());
    let model = Model::open(&source).unwrap();
    let header_bytes = source.bytes_read();
    assert!(
        header_bytes < source.len() / 20,
        "opening {file} read {header_bytes} bytes; readers must only pull the header"
    );
    assert_eq!(model.tensors().len(), expected_tensors, "{file}: every tensor listed");

    let mut types_seen = std::collections::BTreeSet::new();
    for g in tensors {
        let name = g["name"].as_str().unwrap();
        let t = model.tensor(name).unwrap_or_else(|| panic!("{file}: tensor {name} missing"));
        assert_eq!(t.ty.name(), g["type"].as_str().unwrap(), "{name}: type");
        let ne: Vec<u64> =
            g["ne"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(t.ne, ne, "{name}: shape");
        types_seen.insert(t.ty.name().to_string());

        // Whole tensor, in row chunks so memory stays bounded on the 151936-row matrices.
        let n_rows = t.n_rows();
        let chunk = (1 << 20) / t.row_values().max(1) as u64 + 1;
        let mut hasher = Sha256::new();
        let mut start = 0;
        while start < n_rows {
            let end = (start + chunk).min(n_rows);
            let values = model.read_f32_rows(t, start..end).unwrap();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            hasher.update(&bytes);
            start = end;
        }
        let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if got != g["sha256"].as_str().unwrap() {
            // Point at the first sampled row that differs, with its leading values.
            for (row, sample) in g["rows"].as_object().unwrap() {
                let row: u64 = row.parse().unwrap();
                let values = model.read_f32_rows(t, row..row + 1).unwrap();
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let want_head: Vec<u64> = sample["head_bits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                let got_head: Vec<u64> =
                    values.iter().take(4).map(|v| v.to_bits() as u64).collect();
                assert_eq!(
                    sha256_hex(&bytes),
                    sample["sha256"].as_str().unwrap(),
                    "{file}: {name} ({}) row {row} differs from gguf-py; first values (f32 bits) {got_head:?} vs {want_head:?}",
                    t.ty.name()
                );
            }
            panic!(
                "{file}: {name} ({}) differs from gguf-py in a row that was not sampled",
                t.ty.name()
            );
        }
    }
    for ty in ["F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"] {
        assert!(types_seen.contains(ty), "{file}: expected tensors of type {ty}");
    }
}

#[test]
fn qwen_every_tensor_matches_gguf_py_bit_for_bit() {
    check_model("qwen2.5-coder-0.5b", QWEN_0_5B, 291);
}

#[test]
fn gemma_every_tensor_matches_gguf_py_bit_for_bit() {
    check_model("gemma-3-270m", GEMMA_270M, 236);
}
