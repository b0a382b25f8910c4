//! The weights diff (`parallax diff`): every tensor of one file against the tensor playing the
//! same role in other files, value for value after dequantization. Schema `parallax.weights/1`.
//!
//! Owns the diff's data model, its JSON form and [`type_recipe`], which writes a file's tensor
//! types as llama-quantize's command line would ask for them. Knows nothing of how the files were
//! read or the numbers computed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const WEIGHTS_SCHEMA: &str = "parallax.weights/1";

/// One tensor of the first file, with its counterparts in the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorDiff {
    /// The tensor's name in the first file.
    pub name: String,
    /// ggml shape, values per row first (`ne`, as `parallax inspect` writes it); the same in
    /// every file.
    pub ne: Vec<u64>,
    /// The tensor in each file, in the order the files were given.
    pub files: Vec<TensorFile>,
    /// Every file from the second on, compared with the first.
    pub compares: Vec<WeightCompare>,
}

/// A tensor as one file stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorFile {
    /// Its name in that file: `model.layers.0.mlp.up_proj.weight` in an HF-named APR, the token
    /// embedding where that file ties its output head to it.
    pub name: String,
    /// `Q4_K`, `F32`, … (GGML's type names; APR's own types as `APR_Q4`, `APR_Q8`).
    #[serde(rename = "type")]
    pub ty: String,
    pub bytes: u64,
}

/// File `file`'s values (b) against the first file's (a), both dequantized to f32 and summed in
/// f64. A statistic that is not a finite number is `null` in JSON (`None`): JSON has no
/// infinities, and a reader can tell which case it was from `identical` and the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightCompare {
    /// 1-based number of the file compared with file 1 (2, 3, …), in the order given.
    pub file: u32,
    /// ‖b − a‖ / ‖a‖; `None` when a is zero everywhere and b is not.
    pub rel_l2: Option<f64>,
    /// 10·log10(‖a‖² / ‖b − a‖²) in dB; `None` when b equals a (+∞) or a is zero everywhere.
    pub sqnr_db: Option<f64>,
    /// The largest |b − a|; `None` when a value is not finite.
    pub max_abs: Option<f64>,
    /// a·b / (‖a‖ ‖b‖), held to [−1, 1] against rounding; `None` when a or b is zero everywhere.
    pub cosine: Option<f64>,
    /// Every value bit-equal as f32.
    pub identical: bool,
}

/// One file of the diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffFile {
    pub name: String,
    /// "GGUF v3", "APR v2.0".
    pub format: String,
    pub bytes: u64,
    /// Tensors of each type.
    pub types: BTreeMap<String, u64>,
}

/// What `parallax diff --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsReport {
    /// [`WEIGHTS_SCHEMA`].
    pub schema: String,
    pub files: Vec<DiffFile>,
    /// One entry per tensor of the first file, in its file order.
    pub weights: Vec<TensorDiff>,
}

impl WeightsReport {
    pub fn new(files: Vec<DiffFile>, weights: Vec<TensorDiff>) -> Self {
        WeightsReport { schema: WEIGHTS_SCHEMA.to_string(), files, weights }
    }

    pub fn to_json(&self) -> String {
        // Only strings, integers and finite floats (non-finite ones are `None`): cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse a diff, refusing other schemas with a sentence.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(WEIGHTS_SCHEMA) => {}
            Some(other) => {
                return Err(format!(
                "unsupported weights diff schema `{other}` (this Parallax reads {WEIGHTS_SCHEMA})"
            ))
            }
            None => return Err(format!("not a weights diff: no `schema` key ({WEIGHTS_SCHEMA})")),
        }
        serde_json::from_value(value).map_err(|e| format!("malformed {WEIGHTS_SCHEMA} diff: {e}"))
    }
}

/// File `file_index`'s (0-based, into [`TensorDiff::files`]) tensor types as llama-quantize's
/// command line would ask for them: first the base type (the most common type among the tensors
/// llama-quantize quantizes — names ending in `weight`, two or more dimensions, no norms — the
/// first seen on a tie), then one word per override, ready to paste into a POSIX shell:
/// `--token-embedding-type TYPE` and `--output-tensor-type TYPE` for the embedding and the head,
/// `--tensor-type 'PATTERN=type'` for the others, where the pattern is the GGUF name without
/// `.weight` as the regular expression llama-quantize searches names with, one pattern for a
/// role with the same type in several layers (`blk\.(0|3|6)\.ffn_down=q6_k`). Types are
/// lower-case, as llama-quantize prints them. Empty when the file has no such tensor.
///
/// The words describe the file; they do not promise to remake it: llama-quantize's base type
/// argument names a mix (`Q4_K_M` for a Q4_K base), whose own rules still pick the type of a
/// tensor without an override.
pub fn type_recipe(entries: &[TensorDiff], file_index: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let tensors: Vec<(&TensorDiff, &TensorFile)> = entries
        .iter()
        .filter(|e| llama_quantize_quantizes(e))
        .filter_map(|e| e.files.get(file_index).map(|f| (e, f)))
        // A tied head's counterpart is the embedding itself: count it once.
        .filter(|(_, f)| seen.insert(f.name.as_str()))
        .collect();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, f) in &tensors {
        match counts.iter_mut().find(|(ty, _)| *ty == f.ty) {
            Some((_, n)) => *n += 1,
            None => counts.push((&f.ty, 1)),
        }
    }
    // `max_by_key` keeps the last of equal maxima; reversed, the first seen wins a tie.
    let Some(&(base, _)) = counts.iter().rev().max_by_key(|(_, n)| *n) else {
        return Vec::new();
    };

    // Overrides in the order their first tensor appears; layers of one role and type share one.
    enum Override {
        Flag(&'static str, String),
        Layers { role: String, ty: String, layers: Vec<u64> },
        Tensor { name: String, ty: String },
    }
    let mut overrides: Vec<Override> = Vec::new();
    for (_, f) in tensors.iter().filter(|(_, f)| f.ty != base) {
        let ty = f.ty.to_ascii_lowercase();
        let stem = f.name.strip_suffix(".weight").unwrap_or(&f.name);
        let layer = stem.strip_prefix("blk.").and_then(|rest| rest.split_once('.')).and_then(
            |(n, role)| {
                let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| n.parse::<u64>().ok()).flatten().map(|n| (n, role))
            },
        );
        match (stem, layer) {
            ("token_embd", _) => overrides.push(Override::Flag("--token-embedding-type", ty)),
            ("output", _) => overrides.push(Override::Flag("--output-tensor-type", ty)),
            (_, Some((n, role))) => {
                let same = overrides.iter_mut().find_map(|o| match o {
                    Override::Layers { role: r, ty: t, layers } if r == role && *t == ty => {
                        Some(layers)
                    }
                    _ => None,
                });
                match same {
                    Some(layers) => layers.push(n),
                    None => overrides.push(Override::Layers {
                        role: role.to_string(),
                        ty,
                        layers: vec![n],
                    }),
                }
            }
            (name, None) => overrides.push(Override::Tensor { name: name.to_string(), ty }),
        }
    }

    let mut recipe = vec![base.to_string()];
    for o in overrides {
        recipe.push(match o {
            Override::Flag(flag, ty) => format!("{flag} {ty}"),
            Override::Tensor { name, ty } => {
                format!("--tensor-type {}", shell_word(&format!("{}={ty}", regex_escape(&name))))
            }
            Override::Layers { role, ty, mut layers } => {
                // In numeric order: a GGUF lists blk.10 before blk.2.
                layers.sort_unstable();
                layers.dedup();
                let layers: Vec<String> = layers.iter().map(u64::to_string).collect();
                let layers = match layers.as_slice() {
                    [one] => one.clone(),
                    many => format!("({})", many.join("|")),
                };
                let pattern = format!("blk\\.{layers}\\.{}={ty}", regex_escape(&role));
                format!("--tensor-type {}", shell_word(&pattern))
            }
        });
    }
    recipe
}

/// Whether llama-quantize would quantize the tensor (llama-quant.cpp: a name ending in `weight`,
/// `ggml_n_dims` ≥ 2, not a norm).
fn llama_quantize_quantizes(e: &TensorDiff) -> bool {
    let n_dims = e.ne.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1);
    e.name.ends_with("weight") && n_dims >= 2 && !e.name.contains("_norm.weight")
}

/// `name` as a regular expression matching itself.
fn regex_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.+*?()[]{}|^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `word` as one POSIX shell word: as it is when it holds nothing the shell would read, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.=-,/:".contains(c);
    if word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, ne: &[u64], types: &[&str]) -> TensorDiff {
        TensorDiff {
            name: name.to_string(),
            ne: ne.to_vec(),
            files: types
                .iter()
                .map(|ty| TensorFile { name: name.to_string(), ty: ty.to_string(), bytes: 0 })
                .collect(),
            compares: Vec::new(),
        }
    }

    /// A 4-layer Q4_K_M-like file (type per tensor in file 1) and its F32 source (file 0).
    fn mixed() -> Vec<TensorDiff> {
        let mut out = vec![entry("token_embd.weight", &[896, 1000], &["F32", "Q8_0"])];
        for l in 0..4 {
            let down = if l % 3 == 0 { "Q6_K" } else { "Q4_K" };
            let v = if l == 1 { "Q5_0" } else { "Q4_K" };
            out.push(entry(&format!("blk.{l}.attn_norm.weight"), &[896], &["F32", "F32"]));
            out.push(entry(&format!("blk.{l}.attn_q.bias"), &[896], &["F32", "F32"]));
            out.push(entry(&format!("blk.{l}.attn_q.weight"), &[896, 896], &["F32", "Q4_K"]));
            out.push(entry(&format!("blk.{l}.attn_v.weight"), &[896, 128], &["F32", v]));
            out.push(entry(&format!("blk.{l}.ffn_norm.weight"), &[896], &["F32", "F32"]));
            out.push(entry(&format!("blk.{l}.ffn_down.weight"), &[4864, 896], &["F32", down]));
        }
        out.push(entry("output_norm.weight", &[896], &["F32", "F32"]));
        out.push(entry("output.weight", &[896, 1000], &["F32", "Q6_K"]));
        out
    }

    #[test]
    fn the_recipe_is_the_common_type_then_one_override_per_role_and_type() {
        assert_eq!(
            type_recipe(&mixed(), 1),
            [
                "Q4_K",
                "--token-embedding-type q8_0",
                "--tensor-type 'blk\\.(0|3)\\.ffn_down=q6_k'",
                "--tensor-type 'blk\\.1\\.attn_v=q5_0'",
                "--output-tensor-type q6_k",
            ]
        );
        // Norms, biases and vectors are never quantized, so never part of it.
        assert_eq!(type_recipe(&mixed(), 0), ["F32"]);
        assert!(type_recipe(&mixed(), 2).is_empty(), "no such file");
        assert!(type_recipe(&[], 0).is_empty());
    }

    #[test]
    fn a_tie_goes_to_the_first_type_seen_layers_sort_by_number_and_names_are_escaped() {
        let entries = vec![
            entry("blk.0.ffn_up.weight", &[64, 64], &["Q8_0"]),
            entry("blk.10.ffn_down.weight", &[64, 64], &["Q6_K"]),
            entry("blk.2.ffn_down.weight", &[64, 64], &["Q6_K"]),
            entry("blk.0.ffn_gate.weight", &[64, 64], &["F16"]),
            entry("mm.proj+x.weight", &[64, 64, 1], &["F16"]),
            entry("blk.1.ffn_up.weight", &[64, 64], &["Q8_0"]),
            entry("blk.2.ffn_up.weight", &[64, 1], &["BF16"]), // one dimension: never quantized
        ];
        assert_eq!(
            type_recipe(&entries, 0),
            [
                "Q8_0",
                "--tensor-type 'blk\\.(2|10)\\.ffn_down=q6_k'",
                "--tensor-type 'blk\\.0\\.ffn_gate=f16'",
                "--tensor-type 'mm\\.proj\\+x=f16'",
            ]
        );
    }

    #[test]
    fn a_tied_head_counts_once() {
        let mut entries = mixed();
        let head = entries.last_mut().unwrap();
        head.files[1] =
            TensorFile { name: "token_embd.weight".into(), ty: "Q8_0".into(), bytes: 0 };
        let recipe = type_recipe(&entries, 1);
        assert_eq!(recipe.iter().filter(|w| w.contains("q8_0")).count(), 1, "{recipe:?}");
        assert!(!recipe.iter().any(|w| w.contains("output")), "{recipe:?}");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("attn_v=q5_0"), "attn_v=q5_0");
        assert_eq!(shell_word("blk\\.1\\.x=q8_0"), "'blk\\.1\\.x=q8_0'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_diff_round_trips_through_json_with_nulls_for_infinities() {
        let mut e = entry("blk.0.attn_q.weight", &[896, 896], &["Q4_K", "F32"]);
        e.compares.push(WeightCompare {
            file: 2,
            rel_l2: Some(0.0),
            sqnr_db: None,
            max_abs: Some(0.0),
            cosine: Some(1.0),
            identical: true,
        });
        let mut types = BTreeMap::new();
        types.insert("Q4_K".to_string(), 1);
        let file = DiffFile { name: "a.gguf".into(), format: "GGUF v3".into(), bytes: 1, types };
        let report = WeightsReport::new(vec![file.clone(), file], vec![e]);
        let json = report.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["schema"], WEIGHTS_SCHEMA);
        assert_eq!(value["weights"][0]["files"][0]["type"], "Q4_K");
        assert!(value["weights"][0]["compares"][0]["sqnr_db"].is_null());
        assert_eq!(WeightsReport::from_json(&json).unwrap(), report);
        assert!(WeightsReport::from_json("{\"schema\":\"parallax.report/1\"}")
            .unwrap_err()
            .contains("unsupported"));
        assert!(WeightsReport::from_json("[]").unwrap_err().contains("no `schema`"));
    }
}
