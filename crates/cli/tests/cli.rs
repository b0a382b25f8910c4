//! The `parallax` binary end to end: inspect and dump on a real model, and input errors that
//! end in a sentence on stderr and exit code 2.

use std::process::{Command, Output};

use parallax_tests::{model_path, repo_root, sha256_hex, QWEN_0_5B};

fn parallax(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parallax")).args(args).output().expect("run parallax")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inspect_lists_every_tensor_as_text_and_json() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let path = path.to_str().unwrap();
    let text = parallax(&["inspect", "-m", path]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("architecture  qwen2"));
    assert!(text.contains("blk.23.ffn_down.weight"));
    assert!(text.contains("Q4_K"));

    let json = parallax(&["inspect", "-m", path, "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["format"], "GGUF v3");
    assert_eq!(v["architecture"], "qwen2");
    assert_eq!(v["tensors"].as_array().unwrap().len(), 291);
    assert_eq!(v["hyperparameters"]["n_layers"], 24);
    let hist = v["type_histogram"].as_array().unwrap();
    let total: u64 = hist.iter().map(|t| t["tensors"].as_u64().unwrap()).sum();
    assert_eq!(total, 291);
    let out = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "output.weight").unwrap();
    assert_eq!(out["ty"], "Q8_0");
    assert_eq!(out["ne"], serde_json::json!([896, 151936]));
    assert_eq!(out["offset"], 5947776);
}

#[test]
fn dump_writes_rows_bit_exact_with_gguf_py() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("tests/golden/real-model-rows.json")).unwrap()).unwrap();
    let tensors = golden["models"]["qwen2.5-coder-0.5b"]["tensors"].as_array().unwrap();
    for name in ["blk.0.ffn_down.weight", "blk.5.ffn_gate.weight", "output.weight", "blk.3.attn_q.bias"] {
        let g = tensors.iter().find(|t| t["name"] == name).unwrap();
        for (row, sample) in g["rows"].as_object().unwrap() {
            let r: u64 = row.parse().unwrap();
            let range = format!("{r}..{}", r + 1);
            let o = parallax(&["dump", "-m", path.to_str().unwrap(), "--tensor", name, "--rows", &range]);
            assert!(o.status.success(), "{name} {range}: {}", stderr(&o));
            assert_eq!(o.stdout.len() as u64, g["ne"][0].as_u64().unwrap() * 4, "{name}: one row of f32");
            assert_eq!(sha256_hex(&o.stdout), sample["sha256"].as_str().unwrap(), "{name} row {r}");
        }
    }
}

#[test]
fn input_errors_exit_2_with_a_sentence() {
    let dir = std::env::temp_dir().join(format!("parallax-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_a_model = dir.join("notes.txt");
    std::fs::write(&not_a_model, b"hello, this is not a model").unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, b"GGUF\x03\x00\x00\x00\x01").unwrap();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["inspect".into(), "-m".into(), dir.join("missing.gguf").display().to_string()], "cannot open"),
        (vec!["inspect".into(), "-m".into(), not_a_model.display().to_string()], "not a GGUF or APR model file"),
        (vec!["inspect".into(), "-m".into(), truncated.display().to_string()], "truncated"),
        (vec!["inspect".into(), "-m".into(), dir.display().to_string()], "directory"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = parallax(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: expected `{needle}` in: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }

    if let Some(path) = model_path(QWEN_0_5B) {
        let path = path.to_str().unwrap();
        let o = parallax(&["dump", "-m", path, "--tensor", "blk.0.ffn_gat", "--rows", "0..1"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("no tensor named"), "{}", stderr(&o));
        let o = parallax(&["dump", "-m", path, "--tensor", "blk.0.ffn_gate.weight", "--rows", "4860..4870"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("has 4864 rows"), "{}", stderr(&o));
        let o = parallax(&["dump", "-m", path, "--tensor", "blk.0.ffn_gate.weight", "--rows", "5..5"]);
        assert_eq!(o.status.code(), Some(2), "empty range is a usage error");
    }
    std::fs::remove_dir_all(&dir).ok();
}
