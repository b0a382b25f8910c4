//! Where the real models are, and when a missing one (or a missing GPU adapter, or a CPU without
//! the SIMD a test covers) is a failure rather than a skip.
//!
//! A test that cannot run may skip only on a developer's machine that asked for it
//! (`PARALLAX_ALLOW_MISSING_MODELS=1`); in CI (`CI` set) or with the matching
//! `PARALLAX_REQUIRE_*=1` it fails. A skip is written straight to the process's stderr, past
//! libtest's output capture, so a skipped test does not read as a plain `ok`.

use std::io::Write;
use std::path::PathBuf;

/// The two shared models, as fetched by `../shared/models/fetch.sh`.
pub const QWEN_0_5B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const GEMMA_270M: &str = "gemma-3-270m-q4_k_m.gguf";
/// Qwen2.5-7B's shape (28 layers, hidden 3584, FFN 18944) with synthetic Q4_K/Q6_K weights and no
/// vocabulary, made by `make-7b-shaped` (`./dev test` makes it once, 4.4 GB).
pub const SYNTHETIC_7B: &str = "synthetic-7b-shaped-q4_k_m.gguf";
/// The first of the 0.5B's three shards, split by gguf-py's own writer
/// (`tools/golden/make_split.py`; `./dev` makes them).
pub const QWEN_0_5B_SPLIT: &str = "qwen2.5-coder-0.5b-split-00001-of-00003.gguf";
// Rewrites of [`QWEN_0_5B`] with their tensors' bytes unchanged, made into the model cache by
// `tools/golden/make_arch_rewrites.py` (`./dev test` makes them).
/// [`QWEN_0_5B`] as architecture `llama`, q/k/v biases kept, q/k rows reordered for
/// adjacent-pair RoPE: the same function as the original.
pub const QWEN_AS_LLAMA: &str = "qwen2.5-0.5b-as-llama.gguf";
/// [`QWEN_AS_LLAMA`] without its q/k/v biases (so another function).
pub const QWEN_AS_LLAMA_NOBIAS: &str = "qwen2.5-0.5b-as-llama-nobias.gguf";
/// [`QWEN_0_5B`] as architecture `qwen3`: no biases, per-head q/k RMSNorm weights derived from
/// the model's own q/k rows.
pub const QWEN_AS_QWEN3: &str = "qwen2.5-0.5b-as-qwen3.gguf";
/// [`QWEN_0_5B`] 44 layers deep: its 24 trained layers, then its layers 4–23 again (a
/// "passthrough" self-merge): a real-weight model deeper than 7B-class models.
pub const QWEN_DEEP44: &str = "qwen2.5-0.5b-deep44.gguf";
/// [`QWEN_0_5B`] with every tensor dequantized to F32 by gguf-py (`gguf.quants.dequantize`),
/// step 1 of `tools/golden/make_ladder.py` (`./dev test` makes it with `--f32-only`, 2 GB).
pub const QWEN_LADDER_F32: &str = "qwen2.5-0.5b-ladder-F32.gguf";

/// Folder of the real models: `$PARALLAX_MODELS`, else `~/.cache/parallax/models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("PARALLAX_MODELS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/parallax/models"),
    }
}

/// Whether what `var` names must be present: `var` is `1`, or the tests run in CI (`CI` set to
/// anything but empty, `0` or `false`, as CI services set it).
pub fn required(var: &str) -> bool {
    let on = |name: &str, truthy: fn(&str) -> bool| {
        std::env::var(name).map(|v| truthy(v.trim())).unwrap_or(false)
    };
    on(var, |v| v == "1") || on("CI", |v| !matches!(v, "" | "0" | "false"))
}

/// Path of a real model in [`models_dir`]. A missing model fails the test with the command that
/// fetches it, unless `PARALLAX_ALLOW_MISSING_MODELS=1` outside CI and without
/// `PARALLAX_REQUIRE_MODELS=1`: then it returns `None` and says so on stderr.
pub fn model_path(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        return Some(path);
    }
    let allowed = std::env::var("PARALLAX_ALLOW_MISSING_MODELS").as_deref() == Ok("1");
    if allowed && !required("PARALLAX_REQUIRE_MODELS") {
        skip(&format!("{} is missing (PARALLAX_ALLOW_MISSING_MODELS=1)", path.display()));
        return None;
    }
    panic!(
        "{} is missing: run `../shared/models/fetch.sh` and `tools/golden/make_arch_rewrites.py` \
         (or `./dev test`, which does both) or set PARALLAX_MODELS to the folder holding it{}",
        path.display(),
        if allowed {
            " (skipping is refused in CI and with PARALLAX_REQUIRE_MODELS=1)"
        } else {
            ""
        }
    );
}

/// Says on the real stderr that a test skipped part of its work, or fails the test when `var`
/// is required (see [`required`]).
pub fn skip_unless_required(var: &str, why: &str) {
    if required(var) {
        panic!("{var}=1 (or CI) but {why}");
    }
    skip(&format!("{why} (set {var}=1 to make this a failure)"));
}

fn skip(why: &str) {
    // Straight to fd 2: `eprintln!` is captured by libtest and shown only for failing tests.
    let _ = writeln!(std::io::stderr().lock(), "\n*** SKIPPED: {why} ***");
}
