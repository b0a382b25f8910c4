//! The `parallax` binary end to end: inspect and dump on a real model, and input errors that
//! end in a sentence on stderr and exit code 2.

use std::process::{Command, Output};

use common::{assert_refused, demo, parallax, read_json, scratch, stderr};
use parallax_tests::{model_path, repo_root, sha256_hex, QWEN_0_5B, QWEN_0_5B_SPLIT};

mod common;

/// `parallax run -m model -p "What is 2+2?" ARGS`.
fn run_prompt(model: &str, args: &[&str]) -> Output {
    let mut all = vec!["run", "-m", model, "-p", "What is 2+2?"];
    all.extend_from_slice(args);
    parallax(&all)
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
    let out =
        v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "output.weight").unwrap();
    assert_eq!(out["ty"], "Q8_0");
    assert_eq!(out["ne"], serde_json::json!([896, 151936]));
    assert_eq!(out["offset"], 5947776);
}

#[test]
fn dump_writes_rows_bit_exact_with_gguf_py() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let golden = read_json(&repo_root().join("tests/golden/real-model-rows.json"));
    let tensors = golden["models"]["qwen2.5-coder-0.5b"]["tensors"].as_array().unwrap();
    for name in
        ["blk.0.ffn_down.weight", "blk.5.ffn_gate.weight", "output.weight", "blk.3.attn_q.bias"]
    {
        let g = tensors.iter().find(|t| t["name"] == name).unwrap();
        for (row, sample) in g["rows"].as_object().unwrap() {
            let r: u64 = row.parse().unwrap();
            let range = format!("{r}..{}", r + 1);
            let o = parallax(&[
                "dump",
                "-m",
                path.to_str().unwrap(),
                "--tensor",
                name,
                "--rows",
                &range,
            ]);
            assert!(o.status.success(), "{name} {range}: {}", stderr(&o));
            assert_eq!(
                o.stdout.len() as u64,
                g["ne"][0].as_u64().unwrap() * 4,
                "{name}: one row of f32"
            );
            assert_eq!(sha256_hex(&o.stdout), sample["sha256"].as_str().unwrap(), "{name} row {r}");
        }
    }
}

#[test]
fn input_errors_exit_2_with_a_sentence() {
    let dir = scratch("cli-test");
    let not_a_model = dir.join("notes.txt");
    std::fs::write(&not_a_model, b"hello, this is not a model").unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, b"GGUF\x03\x00\x00\x00\x01").unwrap();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["inspect".into(), "-m".into(), dir.join("missing.gguf").display().to_string()],
            "cannot open",
        ),
        (
            vec!["inspect".into(), "-m".into(), not_a_model.display().to_string()],
            "not a GGUF or APR model file",
        ),
        (vec!["inspect".into(), "-m".into(), truncated.display().to_string()], "truncated"),
        (vec!["inspect".into(), "-m".into(), dir.display().to_string()], "directory"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = parallax(&args);
        assert_refused(&o, needle);
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }

    if let Some(path) = model_path(QWEN_0_5B) {
        let path = path.to_str().unwrap();
        let o = parallax(&["dump", "-m", path, "--tensor", "blk.0.ffn_gat", "--rows", "0..1"]);
        assert_refused(&o, "no tensor named");
        let o = parallax(&[
            "dump",
            "-m",
            path,
            "--tensor",
            "blk.0.ffn_gate.weight",
            "--rows",
            "4860..4870",
        ]);
        assert_refused(&o, "has 4864 rows");
        let o =
            parallax(&["dump", "-m", path, "--tensor", "blk.0.ffn_gate.weight", "--rows", "5..5"]);
        assert_eq!(o.status.code(), Some(2), "empty range is a usage error");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokenize_prints_llamacpp_ids() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let o = parallax(&["tokenize", "-m", path.to_str().unwrap(), "-p", "What is 2+2?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("7 tokens: [3838, 374, 220, 17, 10, 17, 30]"), "{out}");
    assert!(out.contains("\"Ġis\""), "{out}");
}

#[test]
fn run_prints_a_layer_table_and_writes_the_report() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let dir = scratch("cli-run");
    let json = dir.join("report.json");
    let o = run_prompt(path.to_str().unwrap(), &["--json", json.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("statistics over all 7 tokens (sample std)"), "{out}");
    assert!(out.contains("each ffn site holds 34048 elements per path (4864 per token)"), "{out}");
    assert!(out.contains("q8 vs f32"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.split_whitespace().next().is_some_and(|w| w.parse::<u32>().is_ok()))
            .count(),
        24,
        "{out}"
    );
    assert!(out.contains("top-1 f32 Some(576) vs q8 Some(576) (agree)"), "{out}");
    // The run's logit noise and the tie margin the top-1 and top-10 tests judge flips against.
    assert!(
        out.contains("  logit noise 0.0672 (std of q8 − f32), tie margin 0.2851 (3·√2 × noise)\n"),
        "{out}"
    );

    let report = read_json(&json);
    assert_eq!(report["schema"], "parallax.report/1");
    assert_eq!(report["prompt"]["tokens"], serde_json::json!([3838, 374, 220, 17, 10, 17, 30]));
    assert_eq!(report["prompt"]["text"], "What is 2+2?");
    assert_eq!(report["paths"], serde_json::json!(["f32", "q8"]));
    assert_eq!(
        report["model"]["sha256"],
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    );
    let lc = &report["logits"]["compare"]["q8"];
    assert!(lc["logit_noise"].is_f64() && lc["tie_margin"].is_f64(), "{lc}");
    assert!(lc.get("top1_flip").is_none() && lc.get("top10_ties").is_none(), "no flip: {lc}");
    let swigl = &report["layers"][3]["sites"]["ffn_swigl"];
    assert_eq!(swigl["f32"]["count"], 7 * 4864);
    assert_eq!(swigl["q8"]["count"], 7 * 4864);
    assert_eq!(swigl["compare"]["q8"]["count"], 7 * 4864);
    assert_eq!(report["per_token"]["layers"][3]["ffn_swigl"]["f32"].as_array().unwrap().len(), 7);

    // Scope `last` counts one token's worth of values on both paths.
    let o = parallax(&[
        "run",
        "-m",
        path.to_str().unwrap(),
        "--tokens",
        "3838,374,220",
        "--scope",
        "last",
        "--no-hash",
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_json(&json);
    assert_eq!(report["layers"][0]["sites"]["ffn_swigl"]["q8"]["count"], 4864);
    assert_eq!(report["model"]["sha256"], serde_json::Value::Null);

    // Bad options are input errors.
    for (args, needle) in [
        (vec!["--paths", "f32,gpu2"], "unknown path"),
        (vec!["--tokens", "999999999"], "outside the model's vocabulary"),
        (vec!["--tokens", "1,2,3", "--max-tokens", "2"], "more than the limit of 2"),
    ] {
        let mut full = vec!["run", "-m", path.to_str().unwrap(), "-q", "--no-hash"];
        if !args.contains(&"--tokens") {
            full.extend(["--tokens", "1,2"]);
        }
        full.extend(args.iter().copied());
        assert_refused(&parallax(&full), needle);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_exit_code_is_the_verdict_and_check_rejudges_a_saved_report() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let dir = scratch("cli-check");
    let json = dir.join("faulty.json");
    let model = path.to_str().unwrap();
    let o = run_prompt(
        model,
        &["-q", "--no-hash", "--inject", "swap-gate-up@7", "--json", json.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "an injected fault fails the contracts: {}", stderr(&o));
    let run_out = String::from_utf8(o.stdout).unwrap();
    assert!(run_out.contains("first divergence: layer 7 ffn_gate"), "{run_out}");
    let verdict_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with("  PASS")
                    || l.starts_with("  FAIL")
                    || l.starts_with("first divergence")
                    || l.starts_with("verdict")
            })
            .map(String::from)
            .collect()
    };

    // Re-judged from the saved report alone: the same verdicts and the same exit code.
    let o = parallax(&["check", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let check_out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(verdict_lines(&check_out), verdict_lines(&run_out));
    let saved = read_json(&json);
    assert_eq!(saved["execution"]["injected"], serde_json::json!(["swap-gate-up@7 on path q8"]));
    assert_eq!(saved["verdicts"]["first_divergence"]["at"]["layer"], 7);

    // A contract that does not parse is an input error naming the test.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "metadata:\n  version: 1.0.0\nfalsification_tests:\n- id: BAD-1\n  rule: r\n  prediction: 'q8_layer[i].nosuchsite_stats.std / f32_layer[i].ffn_gate_stats.std ∈ [0.5, 2.0]'\n").unwrap();
    let o = parallax(&["check", json.to_str().unwrap(), "--contract", bad.to_str().unwrap()]);
    assert_refused(&o, "BAD-1");
    // Not a report at all.
    assert_refused(&parallax(&["check", bad.to_str().unwrap()]), "not valid JSON");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--paths f32,gpu`: the run prints the adapter and a `gpu vs f32` table, and the report records
/// the adapter; where no adapter exists the run goes on with `f32` and warns (a failure only
/// when `PARALLAX_REQUIRE_GPU=1`, as `./dev test` sets, or in CI).
#[test]
fn run_with_the_gpu_path_names_the_adapter_or_says_why_not() {
    let dir = scratch("cli-gpu");
    let json = dir.join("report.json");
    let o = run_prompt(
        &demo_model(),
        &["--paths", "f32,gpu", "--no-hash", "-q", "--json", json.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let report = read_json(&json);
    std::fs::remove_dir_all(&dir).ok();
    if let Some(why) = report["execution"]["gpu_unavailable"].as_str() {
        assert!(stderr(&o).contains(why), "the CLI prints why: {}", stderr(&o));
        assert_eq!(report["paths"], serde_json::json!(["f32"]));
        parallax_testkit::skip_unless_required(
            "PARALLAX_REQUIRE_GPU",
            &format!("the gpu half cannot run: {why}"),
        );
        return;
    }
    assert_eq!(report["paths"], serde_json::json!(["f32", "gpu"]));
    let adapter = report["execution"]["gpu"]["adapter"].as_str().unwrap();
    assert!(out.contains(&format!("gpu: {adapter} (")), "{out}");
    assert!(out.contains("gpu vs f32"), "{out}");
}

fn demo_model() -> String {
    demo().to_str().unwrap().to_string()
}

#[test]
fn a_prompt_over_the_token_cap_ends_with_exit_2_and_a_sentence() {
    let o = parallax(&[
        "run",
        "-m",
        &demo_model(),
        "-p",
        "What is 2+2? And 3+3?",
        "--max-tokens",
        "3",
        "-q",
        "--no-hash",
    ]);
    assert_refused(&o, "more than the limit of 3");
    let e = stderr(&o);
    assert!(e.contains("--max-tokens"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_layer_over_the_memory_budget_is_refused_before_it_is_read_with_exit_2() {
    let o = run_prompt(&demo_model(), &["--memory-budget", "100K", "-q", "--no-hash"]);
    assert_refused(&o, "layer 0 would need about");
    let e = stderr(&o);
    assert!(e.contains("of weights"), "{e}");
    assert!(
        e.contains("more than the memory budget of 100.00 KiB") && e.contains("--memory-budget"),
        "{e}"
    );
    // A budget the layers fit in runs to the verdict.
    let o = run_prompt(&demo_model(), &["--memory-budget", "64M", "-q", "--no-hash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = parallax(&["run", "-m", &demo_model(), "-p", "Hi", "--memory-budget", "lots", "-q"]);
    assert_refused(&o, "not a size");
}

/// Ctrl-C (SIGINT) during a run of the 0.5B stops it at the next layer: exit 2, a sentence, and
/// no report file.
#[cfg(unix)]
/// Every report carries the Parallax version and the command that computes it again; run from
/// the model's folder, that command gives the same numbers and the same verdicts.
#[test]
fn a_report_carries_the_command_that_computes_it_again() {
    let dir = scratch("reproduce");
    let (first, again) = (dir.join("first.json"), dir.join("again.json"));
    let model = demo_model();
    let o = run_prompt(&model, &["--scope", "last", "-q", "--json", first.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = read_json(&first);
    assert_eq!(report["execution"]["parallax_version"], env!("CARGO_PKG_VERSION"));
    let command = report["execution"]["reproduce"].as_str().unwrap().to_string();
    assert!(command.starts_with("parallax run -m parallax-demo-qwen2.gguf --tokens "), "{command}");
    assert!(command.contains("--scope last"), "{command}");
    let words: Vec<&str> = command.split(' ').collect();
    assert_eq!(words[..2], ["parallax", "run"]);
    let o = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(&words[1..])
        .args(["-q", "--json", again.to_str().unwrap()])
        .current_dir(repo_root().join("www/demo"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rerun = read_json(&again);
    for key in ["layers", "logits", "verdicts", "embed", "final_norm"] {
        assert_eq!(report[key], rerun[key], "{key}");
    }
    assert_eq!(report["execution"]["reproduce"], rerun["execution"]["reproduce"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every report carries the UTC date it was computed on, in the JSON and the HTML header: by
/// the clock, or `SOURCE_DATE_EPOCH` for byte-identical reports. `parallax check` re-judges a
/// saved report and keeps its date; a `SOURCE_DATE_EPOCH` that is not seconds is a sentence.
#[test]
fn a_report_carries_its_date_and_source_date_epoch_pins_it() {
    let dir = scratch("date");
    let model = demo_model();
    let run = |name: &str, epoch: Option<&str>| {
        let (json, html) = (dir.join(format!("{name}.json")), dir.join(format!("{name}.html")));
        let mut command = Command::new(env!("CARGO_BIN_EXE_parallax"));
        command.args(["run", "-m", &model, "-p", "What is 2+2?", "--scope", "last", "-q"]);
        command.args(["--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()]);
        match epoch {
            Some(e) => command.env("SOURCE_DATE_EPOCH", e),
            None => command.env_remove("SOURCE_DATE_EPOCH"),
        };
        let o = command.output().unwrap();
        (o, json, html)
    };
    let unix_now = || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    };

    let before = unix_now();
    let (o, json, html) = run("clock", None);
    let after = unix_now();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = read_json(&json);
    let date = report["execution"]["date"].as_str().expect("execution.date").to_string();
    let by_clock: Vec<String> = (before..=after).map(parallax_report::utc_date).collect();
    assert!(by_clock.contains(&date), "{date} is not between {before} and {after}");
    let header = std::fs::read_to_string(&html).unwrap();
    assert!(header.contains(&format!("computed <time datetime=\"{date}\">{date}</time>")));

    // Re-judged, the report keeps the date of the run that computed its numbers.
    let rejudged = dir.join("rejudged.html");
    let o = parallax(&["check", json.to_str().unwrap(), "--html", rejudged.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&rejudged).unwrap().contains(&format!(">{date}</time>")));

    // Pinned: the date is the one asked for, and two runs write the same bytes.
    let (o, json_a, html_a) = run("pinned-a", Some("1748781296"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, json_b, html_b) = run("pinned-b", Some("1748781296"));
    let pinned = read_json(&json_a);
    assert_eq!(pinned["execution"]["date"], "2025-06-01T12:34:56Z");
    assert_eq!(std::fs::read(&json_a).unwrap(), std::fs::read(&json_b).unwrap());
    assert_eq!(std::fs::read(&html_a).unwrap(), std::fs::read(&html_b).unwrap());

    let (o, _, _) = run("bad", Some("yesterday"));
    assert_refused(&o, "SOURCE_DATE_EPOCH must be whole seconds");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--text FILE` reads the prompt from a file and `--builtin-text` takes the built-in passage;
/// both are held to `--max-tokens` like any prompt, and a missing file is a sentence.
#[test]
fn a_prompt_from_a_file_or_the_builtin_text_runs_and_is_capped() {
    let dir = scratch("text");
    let (text, json) = (dir.join("passage.txt"), dir.join("report.json"));
    std::fs::write(&text, "The balance wheel and its hairspring form the oscillator.").unwrap();
    let model = demo_model();
    let o = parallax(&[
        "run",
        "-m",
        &model,
        "--text",
        text.to_str().unwrap(),
        "-q",
        "--no-hash",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = read_json(&json);
    assert_eq!(
        report["prompt"]["text"],
        "The balance wheel and its hairspring form the oscillator."
    );

    let o =
        parallax(&["run", "-m", &model, "--builtin-text", "--max-tokens", "50", "-q", "--no-hash"]);
    assert_refused(&o, "more than the limit of 50");

    let o =
        parallax(&["run", "-m", &model, "--text", dir.join("missing.txt").to_str().unwrap(), "-q"]);
    assert_refused(&o, "cannot read the text");
    let o = parallax(&["run", "-m", &model, "--builtin-text", "-p", "Hi"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `parallax run … | head`: stdout closes before the table is written. The run still writes its
/// report and exits with its verdict, without a panic.
#[test]
fn a_closed_stdout_loses_the_table_but_not_the_report_or_the_verdict() {
    let dir = scratch("pipe");
    let json = dir.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["run", "-m", &demo_model(), "-p", "What is 2+2?", "-q", "--no-hash", "--json"])
        .arg(&json)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // as `head` does once it has its lines
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(o.status.code(), Some(0), "{e}");
    let report = read_json(&json);
    assert_eq!(report["layers"].as_array().unwrap().len(), 3);
    assert!(report["verdicts"]["contracts"].as_array().is_some_and(|c| !c.is_empty()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_cancels_a_run_cleanly() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let dir = scratch("cancel");
    let json = dir.join("report.json");
    let child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args([
            "run",
            "-m",
            path.to_str().unwrap(),
            "--tokens",
            "3838,374,220,17,10,17,30",
            "-q",
            "--threads",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it hashes the 491 MB file (the handler is installed before that).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_refused(&o, "the run was cancelled (Ctrl-C); no report was written");
    assert!(!json.exists(), "a report was written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CLI refuses a bad run request with the very sentence the page shows for it (both come
/// from `parallax_session`; the page's side is `tests/browser/limits.test.mjs`), before any
/// weight is read.
#[test]
fn bad_run_requests_are_refused_with_the_sessions_sentence() {
    let model = demo_model();
    let cases: [(&[&str], &str); 5] = [
        (&["--scope", "bogus"], "unknown scope `bogus`; the scopes are all and last"),
        (&["--mode", "fast"], "unknown mode `fast`; the modes are free and replay"),
        (
            &["--paths", "f32,f32"],
            "the path `f32` is named twice; name each path once, e.g. f32,q8",
        ),
        (
            &["--paths", "f32", "--inject", "drop-bias@1"],
            "faults break the q8 path, which is not among the paths",
        ),
        (
            &["--memory-budget", "lots"],
            "memory budget: `lots` is not a size (try 1.5G, 800M or 4096)",
        ),
    ];
    for (extra, sentence) in cases {
        let o = run_prompt(&model, &[&["-q", "--no-hash"], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim_end(), format!("error: {sentence}"), "{extra:?}");
    }
}

/// `parallax run -m model ARGS -q --no-hash --json json`, which must succeed; the report.
fn run_report(json: &std::path::Path, model: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run", "-m", model.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend(["-q", "--no-hash", "--json", json.to_str().unwrap()]);
    let o = parallax(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    read_json(json)
}

/// A report without what names its file (name, size) and how it ran.
fn without_file(mut r: serde_json::Value) -> serde_json::Value {
    let m = r["model"].as_object_mut().unwrap();
    m.remove("file_name");
    m.remove("file_bytes");
    r.as_object_mut().unwrap().remove("execution");
    r
}

/// The demo model written as a split GGUF — three shards in llama.cpp's `gguf-split` layout,
/// every shard a GGUF of its own with `split.no`, `split.count` and `split.tensors.count`, the
/// metadata on the first — into `dir`; returns the first shard's path.
fn split_demo(dir: &std::path::Path) -> std::path::PathBuf {
    use parallax_gguf::{writer::GgufWriter, GgufFile, MetaValue};
    use parallax_source::{ByteSource, FileSource};
    let source = FileSource::open(demo()).unwrap();
    let file = GgufFile::read(&source).unwrap();
    let tensors = file.tensors();
    let count = 3usize;
    let per = tensors.len().div_ceil(count);
    std::fs::create_dir_all(dir).unwrap();
    for (k, chunk) in tensors.chunks(per).enumerate() {
        let mut w = GgufWriter::new();
        w.add("split.no", MetaValue::U16(k as u16)).unwrap();
        w.add("split.count", MetaValue::U16(count as u16)).unwrap();
        w.add("split.tensors.count", MetaValue::I32(tensors.len() as i32)).unwrap();
        if k == 0 {
            for (key, value) in file.metadata() {
                w.add(key.clone(), value.clone()).unwrap();
            }
        }
        for t in chunk {
            let bytes = source.read_range(t.byte_range()).unwrap();
            w.add_tensor(t.name.clone(), &t.dims, t.ty, bytes).unwrap();
        }
        let path = dir.join(format!("demo-{:05}-of-{count:05}.gguf", k + 1));
        std::fs::write(&path, w.to_bytes()).unwrap();
    }
    dir.join(format!("demo-00001-of-{count:05}.gguf"))
}

#[test]
fn a_split_gguf_opens_as_one_model_and_runs_as_the_whole_file_does() {
    let dir = scratch("cli-split");
    let first = split_demo(&dir);
    let whole = demo();
    let prompt = ["-p", "What is 2+2?"];
    let split = run_report(&dir.join("split.json"), &first, &prompt);
    assert!(split["model"]["file_name"].as_str().unwrap().ends_with("(+2 more shards)"));
    // The same tensors, the same numbers: only the file's name and size differ.
    let one = run_report(&dir.join("whole.json"), &whole, &prompt);
    assert_eq!(without_file(split), without_file(one));

    // Shards that do not fit together end in a sentence.
    let lone = dir.join("lone.gguf");
    std::fs::copy(&first, &lone).unwrap();
    assert_refused(
        &parallax(&["inspect", "-m", lone.to_str().unwrap()]),
        "is shard 1 of 3 (split.count)",
    );
    std::fs::remove_file(dir.join("demo-00003-of-00003.gguf")).unwrap();
    assert_refused(
        &parallax(&["inspect", "-m", first.to_str().unwrap()]),
        "demo-00003-of-00003.gguf",
    );
    std::fs::copy(dir.join("demo-00002-of-00003.gguf"), dir.join("demo-00003-of-00003.gguf"))
        .unwrap();
    assert_refused(
        &parallax(&["inspect", "-m", first.to_str().unwrap()]),
        "shard 3 of 3 says it is split.no 1",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shared 0.5B split into three shards by gguf-py's own splitter (tools/golden/make_split.py,
/// the writer behind convert_hf_to_gguf.py --split-max-tensors): opened by its first shard, it
/// runs exactly as the whole file does.
#[test]
fn a_model_split_by_gguf_py_runs_as_the_whole_file() {
    let (Some(first), Some(whole)) = (model_path(QWEN_0_5B_SPLIT), model_path(QWEN_0_5B)) else {
        return;
    };
    let dir = scratch("cli-split-real");
    let args = ["--tokens", "3838,374,220,17,10,17,30", "--scope", "last"];
    let split = run_report(&dir.join("split.json"), &first, &args);
    let one = run_report(&dir.join("whole.json"), &whole, &args);
    assert_eq!(without_file(split), without_file(one));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--kernels` caps the x86 vector kernels, and the report does not depend on them: on the demo
/// model and, where it is cached, the 0.5B (7 tokens, every position's logits), the JSON and the
/// HTML at `scalar`, `avx2` and `avx512` (each the CPU has) are the same bytes but for the
/// `kernels:` note, which names the level that ran.
#[test]
fn a_report_is_the_same_bytes_on_every_kernel_level() {
    use parallax_cpu::Level;
    let dir = scratch("kernels");
    let qwen = model_path(QWEN_0_5B).map(|p| p.to_str().unwrap().to_string());
    let levels: Vec<Level> = [Level::Scalar, Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|l| *l <= parallax_cpu::detected())
        .collect();
    for (name, model, input) in [
        ("demo", Some(demo_model()), ["-p", "What is 2+2?"]),
        ("qwen", qwen, ["--tokens", "3838,374,220,17,10,17,30"]),
    ] {
        let Some(model) = model else { continue };
        let mut reports: Vec<(Level, String, String)> = Vec::new();
        for &level in &levels {
            let (json, html) = (
                dir.join(format!("{name}-{level:?}.json")),
                dir.join(format!("{name}-{level:?}.html")),
            );
            let o = Command::new(env!("CARGO_BIN_EXE_parallax"))
                .args(["run", "-m", &model, "-q", "--no-hash", "--kernels", level.name()])
                .args(input)
                .args(["--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()])
                .env("SOURCE_DATE_EPOCH", "1748781296")
                .output()
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(0),
                "{name} --kernels {}: {}",
                level.name(),
                stderr(&o)
            );
            let (json, html) =
                (std::fs::read_to_string(&json).unwrap(), std::fs::read_to_string(&html).unwrap());
            let note = match level {
                Level::Scalar => "kernels: scalar",
                Level::Avx2 => "kernels: avx2\"",
                Level::Avx512 => "kernels: avx2_avx512",
            };
            assert!(
                json.contains(note),
                "{name} --kernels {}: no {note:?} in the report",
                level.name()
            );
            // The note aside (the longer name first: `avx2` begins `avx2_avx512`).
            let unnoted = |s: &str| {
                ["avx2_avx512", "avx2", "scalar"]
                    .iter()
                    .fold(s.to_string(), |s, k| s.replace(&format!("kernels: {k}"), "kernels: ·"))
            };
            reports.push((level, unnoted(&json), unnoted(&html)));
        }
        for (level, json, html) in &reports[1..] {
            let (first, first_json, first_html) = &reports[0];
            assert!(
                json == first_json,
                "{name}: the JSON at {} differs from {}'s",
                level.name(),
                first.name()
            );
            assert!(
                html == first_html,
                "{name}: the HTML at {} differs from {}'s",
                level.name(),
                first.name()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
