//! `parallax diff` end to end on the committed demo model: a file against itself and its APR
//! import (identical), against a re-quantized copy (not identical, finite), against another
//! network (exit 2 before a weight is read) and against a malformed file (a sentence, exit 2).

use std::path::Path;
use std::process::Command;

use common::{assert_refused, demo, parallax, read_json, scratch, stderr, stdout};
use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile};
use parallax_model::convert::{gguf_to_apr, AprVariant, ConvertOptions};
use parallax_source::{ByteSource, FileSource};
use parallax_tests::shared_dir;

mod common;

/// `parallax diff -m a --against b… -q --json json`, which must succeed; stdout and the JSON.
fn diff(a: &Path, against: &[&Path], json: &Path) -> (String, serde_json::Value) {
    let mut args = vec!["diff", "-m", a.to_str().unwrap()];
    for b in against {
        args.extend(["--against", b.to_str().unwrap()]);
    }
    args.extend(["-q", "--json", json.to_str().unwrap()]);
    let o = parallax(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (stdout(&o), read_json(json))
}

/// The demo with every matrix re-quantized to Q8_0 from its dequantized values (llama.cpp's
/// reference Q8_0 rounding), vectors copied.
fn requantized_demo(path: &Path) {
    let source = FileSource::open(demo()).unwrap();
    let file = GgufFile::read(&source).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        w.add(key.clone(), value.clone()).unwrap();
    }
    for t in file.tensors() {
        let bytes = source.read_range(t.byte_range()).unwrap();
        if t.dims.len() < 2 {
            w.add_tensor(t.name.clone(), &t.dims, t.ty, bytes).unwrap();
            continue;
        }
        let mut values = vec![0f32; t.n_elements as usize];
        parallax_quant::dequantize(t.ty, &bytes, &mut values).unwrap();
        let mut blocks = vec![
            parallax_quant::BlockQ8_0 { d: Default::default(), qs: [0; 32] };
            values.len() / 32
        ];
        parallax_quant::quantize_row_q8_0(&values, &mut blocks);
        let q8: Vec<u8> = blocks
            .iter()
            .flat_map(|b| {
                let scale = b.d.to_bits().to_le_bytes();
                scale.into_iter().chain(b.qs.iter().map(|&q| q as u8))
            })
            .collect();
        w.add_tensor(t.name.clone(), &t.dims, GgmlType::Q8_0, q8).unwrap();
    }
    std::fs::write(path, w.to_bytes()).unwrap();
}

/// The demo as upstream's `apr import` writes it: F32, HF names.
fn apr_demo(path: &Path) {
    let source = FileSource::open(demo()).unwrap();
    let file = GgufFile::read(&source).unwrap();
    let writer =
        gguf_to_apr(&file, &source, &ConvertOptions::new(AprVariant::F32, "demo")).unwrap();
    std::fs::write(path, writer.write().unwrap()).unwrap();
}

#[test]
fn a_file_against_a_copy_and_its_apr_import_is_identical_tensor_by_tensor() {
    let dir = scratch("identical");
    let copy = dir.join("copy.gguf");
    std::fs::copy(demo(), &copy).unwrap();
    let apr = dir.join("demo.apr");
    apr_demo(&apr);
    let (out, json) = diff(&demo(), &[&copy, &apr], &dir.join("diff.json"));
    assert_eq!(json["schema"], "parallax.weights/1");
    let weights = json["weights"].as_array().unwrap();
    let n = weights.len();
    assert!(n > 30, "{n} tensors");
    for w in weights {
        let compares = w["compares"].as_array().unwrap();
        assert_eq!(compares.len(), 2, "{w}");
        for c in compares {
            assert_eq!(c["identical"], true, "{w}");
            assert_eq!(c["rel_l2"], 0.0, "{w}");
            // +∞ has no JSON number: null.
            assert!(c["sqnr_db"].is_null(), "{w}");
        }
        assert_eq!(w["files"][2]["type"], "F32");
    }
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["format"], "GGUF v3");
    assert_eq!(files[2]["format"], "APR v2.0");
    let counted: u64 =
        files[0]["types"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(counted as usize, n);
    assert!(out.contains(&format!("all {n} tensors identical in B")), "{out}");
    assert!(out.contains(&format!("all {n} tensors identical in C")), "{out}");
    // The matrices' types, as llama-quantize would be asked for them.
    assert!(out.contains("as llama-quantize types: Q4_K "), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_requantized_copy_differs_by_a_small_finite_amount_worst_first() {
    let dir = scratch("requantized");
    let q8 = dir.join("q8.gguf");
    requantized_demo(&q8);
    let (out, json) = diff(&demo(), &[&q8], &dir.join("diff.json"));
    let weights = json["weights"].as_array().unwrap();
    let compare = |name: &str| {
        let w = weights.iter().find(|w| w["name"] == name).unwrap();
        assert_eq!(
            w["files"][1]["type"],
            if w["ne"].as_array().unwrap().len() == 2 { "Q8_0" } else { "F32" }
        );
        w["compares"][0].clone()
    };
    // A Q4_K matrix in Q8_0: close, not equal.
    let gate = compare("blk.0.ffn_gate.weight");
    assert_eq!(gate["identical"], false);
    let rel = gate["rel_l2"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 0.02, "rel_l2 {rel}");
    assert!(gate["sqnr_db"].as_f64().unwrap() > 30.0, "{gate}");
    assert!(gate["cosine"].as_f64().unwrap() > 0.999, "{gate}");
    assert!(gate["max_abs"].as_f64().unwrap() > 0.0, "{gate}");
    // Vectors were copied.
    assert_eq!(compare("blk.0.attn_norm.weight")["identical"], true);

    // The table lists the differing tensors worst first, then counts the identical ones.
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("tensor"))
        .skip(1)
        .take_while(|l| !l.contains("identical"))
        .collect();
    assert!(!table.is_empty(), "{out}");
    assert!(table.iter().all(|l| l.contains(" → Q8_0 ")), "{out}");
    let rels: Vec<f64> =
        table.iter().map(|l| l.split_whitespace().nth(5).unwrap().parse().unwrap()).collect();
    assert!(rels.windows(2).all(|p| p[0] >= p[1]), "{out}");
    let identical = weights.iter().filter(|w| w["compares"][0]["identical"] == true).count();
    assert!(out.contains(&format!("\n{identical} tensors identical\n")), "{out}");
    assert_eq!(table.len() + identical, weights.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_network_is_refused_with_exit_2_before_a_weight_is_read() {
    let tiny = shared_dir().join("fixtures/apr/tiny-qwen2.gguf");
    let dir = scratch("incompatible");
    let json = dir.join("diff.json");
    let o = parallax(&[
        "diff",
        "-m",
        demo().to_str().unwrap(),
        "--against",
        tiny.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_refused(&o, "the files cannot be compared");
    let e = stderr(&o);
    assert!(e.contains("B is ") && e.contains("tiny-qwen2.gguf"), "{e}");
    assert!(e.contains("the files differ in the layer count (block_count): 3 in A, 2 in B"), "{e}");
    assert!(!e.contains("comparing weights"), "no tensor was read: {e}");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(!json.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_second_file_ends_in_a_sentence_not_a_panic() {
    let dir = scratch("malformed");
    let bytes = std::fs::read(demo()).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let not_a_model = dir.join("notes.txt");
    std::fs::write(&not_a_model, b"hello, this is not a model").unwrap();
    let missing = dir.join("missing.gguf");
    for (file, needle) in [
        (&truncated, "truncated.gguf"),
        (&not_a_model, "not a GGUF or APR model file"),
        (&missing, "cannot open"),
    ] {
        let o = parallax(&[
            "diff",
            "-m",
            demo().to_str().unwrap(),
            "--against",
            file.to_str().unwrap(),
        ]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{file:?}: {e}");
        assert!(e.starts_with("error: ") && e.contains(needle), "{file:?}: {e}");
        assert!(!e.contains("panicked"), "{file:?}: {e}");
    }
    // Without a file to compare with there is nothing to do: a usage error.
    assert_refused(&parallax(&["diff", "-m", demo().to_str().unwrap()]), "--against");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error_and_the_json_is_still_written() {
    let dir = scratch("pipe");
    let json = dir.join("diff.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["diff", "-m", demo().to_str().unwrap(), "--against", demo().to_str().unwrap()])
        .args(["-q", "--json", json.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reading end closes before the table is written.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(json.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `parallax run --against`: the same files as a run. Different weights: the files contract shows
/// the KL divergence as MEASURED (no band is known), applies no identical-weights test, and the
/// run passes; the terminal names the tensors the copy's quantization hurts most.
#[test]
fn a_run_against_a_requantized_copy_measures_its_kld_and_ranks_its_tensors() {
    let dir = scratch("run-against");
    let (copy, json) = (dir.join("q8.gguf"), dir.join("r.json"));
    requantized_demo(&copy);
    let o = parallax(&[
        "run",
        "-m",
        demo().to_str().unwrap(),
        "--against",
        copy.to_str().unwrap(),
        "--tokens",
        "1,2,3,4,5",
        "--no-hash",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    let r = read_json(&json);
    assert_eq!(r["paths"], serde_json::json!(["f32", "q8", "f32@2", "q8@2"]));
    assert_eq!(r["files"][1]["paths"], serde_json::json!(["f32@2", "q8@2"]));
    assert!(r["weights"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["compares"][0]["identical"] == false));
    let kld = &r["logits"]["compare"]["f32@2"]["positions"]["kld"];
    assert!(kld["mean"].as_f64().unwrap() > 0.0, "{kld}");
    assert_eq!(r["per_token"]["logits"]["f32@2"].as_array().unwrap().len(), 5);
    let test = |id: &str| {
        r["verdicts"]["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["tests"].as_array().unwrap())
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
            .clone()
    };
    assert_eq!(test("PARALLAX-FILES-008")["outcome"], "measured");
    assert_eq!(test("PARALLAX-FILES-005")["outcome"], "not_measurable");
    assert!(out.contains("PARALLAX-FILES-008"), "{out}");
    assert!(out.contains("f32@2: tensors by their own error"), "{out}");
    assert!(out.contains("over all 5 positions: KLD mean"), "{out}");
}

/// `parallax run --against` another network: exit 2 and the first difference, before a layer.
#[test]
fn a_run_against_another_network_is_refused_with_the_difference() {
    let tiny = shared_dir().join("fixtures/apr/tiny-qwen2.gguf");
    let o = parallax(&[
        "run",
        "-m",
        demo().to_str().unwrap(),
        "--against",
        tiny.to_str().unwrap(),
        "--tokens",
        "1,2,3",
        "-q",
    ]);
    assert_refused(&o, "cannot be compared with");
    let err = stderr(&o);
    assert!(
        err.contains("the files differ in the layer count (block_count): 3 in A, 2 in B"),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}
