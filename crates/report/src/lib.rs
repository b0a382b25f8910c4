//! The parity report: schema `parallax.report/1`.
//!
//! Owns the report's data model — what a run measured, with every statistic's element count and
//! token scope — and its JSON form. The CLI writes it, the page shows it, `parallax check`
//! re-reads it. Later versions extend it and never break it: readers ignore unknown keys.
//! The `verdicts` section ([`verdict`]) is what `parallax-judge` found; [`text`] prints it for a
//! terminal, [`html`] renders the whole report.
//! Knows nothing about models, kernels or how the numbers were computed.

pub mod html;
pub mod permalink;
mod site_css;
pub mod text;
pub mod verdict;
pub mod weights;

pub use parallax_metrics::LocalNoise;
pub use site_css::{site_css, SiteCss};
pub use weights::{
    type_recipe, DiffFile, TensorDiff, TensorFile, WeightCompare, WeightsReport, WEIGHTS_SCHEMA,
};

use indexmap::IndexMap;
pub use parallax_metrics::positions::{PositionsSummary, TokenLogits};
use parallax_metrics::{Compare, LogitsCompare, Stats};
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "parallax.report/1";

/// Which tokens a statistic is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every prompt position × every feature.
    All,
    /// The last prompt position only (what a generating runtime sees).
    Last,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Last => "last",
        }
    }
}

/// How the non-reference paths were fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each path keeps its own residual stream: differences accumulate.
    Free,
    /// Each layer of every path starts from the reference's residual stream, so each layer
    /// shows its own divergence, nothing accumulated from earlier layers (exllamav3's
    /// `--keep_b`). (Before every matmul's op-alone `local` comparison was recorded in both
    /// modes, replay meant recording it.)
    Replay,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// The file under test (the first file of a run over several).
    pub model: ModelInfo,
    /// Every file of a run over two or more (absent for one): which paths read it, its types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
    /// A run over two or more files: every tensor of the first against its counterparts,
    /// dequantized (absent for one file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<TensorDiff>,
    pub prompt: Prompt,
    /// Path ids in run order; the first is the reference.
    pub paths: Vec<String>,
    pub reference: String,
    pub mode: Mode,
    /// The scope of the statistics in `embed`, `layers`, `final_norm` (per-token ones are in
    /// `per_token`).
    pub scope: Scope,
    pub std_kind: String,
    /// Site names in execution order within a layer.
    pub site_order: Vec<String>,
    pub embed: SiteRecord,
    pub layers: Vec<LayerRecord>,
    pub final_norm: SiteRecord,
    pub logits: LogitsRecord,
    pub per_token: PerToken,
    /// Where each op ran and which kernels each path used.
    pub execution: Execution,
    /// The run judged against contracts (absent when no contract was evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<verdict::Verdicts>,
}

/// One file of a run over several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub file_name: String,
    pub format: String,
    pub bytes: u64,
    /// sha256 of the whole file, when it was computed.
    pub sha256: Option<String>,
    /// How many tensors of each type the file holds (`Q4_K`, `F32`, …).
    pub types: IndexMap<String, u64>,
    /// The ids of the paths that read this file (`f32@2`, `q8@2`).
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: Option<String>,
    pub file_name: String,
    pub format: String,
    pub arch: String,
    pub n_layers: u32,
    pub n_embd: u64,
    pub n_vocab: u64,
    pub file_bytes: u64,
    /// sha256 of the whole file, when it was computed.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The text, when the run started from text (`None` for `--tokens`).
    pub text: Option<String>,
    pub tokens: Vec<u32>,
    /// The token pieces as the tokenizer prints them.
    pub pieces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub index: u32,
    pub sites: IndexMap<String, SiteRecord>,
}

/// One capture point: each path's statistics and each non-reference path against the reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Values per token at this site (the feature width).
    pub width: u64,
    #[serde(flatten)]
    pub paths: IndexMap<String, Stats>,
    pub compare: IndexMap<String, Compare>,
    /// Matmul sites: the path's op fed the reference's input (the rows in scope), against the
    /// reference's output — the error this op adds on its own, whatever arrived from upstream.
    /// (Older reports hold it in replay mode only, and have no `noise`.)
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub local: IndexMap<String, Compare>,
    /// Matmul sites: how far the arithmetic predicts `local` to be, per path.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub noise: IndexMap<String, LocalNoise>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsRecord {
    /// Position the logits below belong to (the last prompt token).
    pub position: u32,
    #[serde(flatten)]
    pub paths: IndexMap<String, PathLogits>,
    pub compare: IndexMap<String, LogitsCompare>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathLogits {
    /// Top-10 `[id, value]`, largest first. A non-finite logit is written `"inf"`, `"-inf"` or
    /// `"nan"` (JSON has no such numbers; `null` — what older reports hold — reads as NaN).
    #[serde(with = "top_logits")]
    pub top: Vec<(u32, f32)>,
    pub stats: Stats,
}

/// Statistics per prompt position: which token dominates a site's std.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerToken {
    pub embed: TokenSite,
    pub layers: Vec<IndexMap<String, TokenSite>>,
    pub final_norm: TokenSite,
    /// Per non-reference path, each prompt position's next-token distribution against the
    /// reference's (when the run computed the logits of every position).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub logits: IndexMap<String, Vec<TokenLogits>>,
}

/// One site, per position: for each path the statistics of each token's row, and for each
/// non-reference path the comparison of each row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenSite {
    #[serde(flatten)]
    pub paths: IndexMap<String, Vec<Stats>>,
    pub compare: IndexMap<String, Vec<Compare>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Per path: how its matmuls were computed (e.g. "Q4_K×Q8_K fused integer dot (avx2)").
    pub matmuls: IndexMap<String, Vec<String>>,
    /// Ops that all paths share, computed once per path on the CPU in f32.
    pub shared_ops: Vec<String>,
    /// Faults injected on purpose (`--inject`); empty for an honest run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
    pub notes: Vec<String>,
    /// The adapter the `gpu` path ran on (absent when it did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRecord>,
    /// Why a requested `gpu` path was dropped (no adapter, device lost, out of memory, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_unavailable: Option<String>,
}

/// The GPU behind the `gpu` path, and which ops ran on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuRecord {
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "SwiftShader".
    pub adapter: String,
    /// `vulkan`, `metal`, `dx12`, `webgpu`, …
    pub backend: String,
    /// `cpu` for software adapters (lavapipe, SwiftShader), `discrete-gpu`, …
    pub device_type: String,
    #[serde(default)]
    pub driver: String,
    /// The adapter's optional features, WebGPU names.
    #[serde(default)]
    pub features: Vec<String>,
    /// The limits the tiling reads (maxStorageBufferBindingSize, maxBufferSize, …).
    #[serde(default)]
    pub limits: IndexMap<String, u64>,
    /// Which ops ran on the GPU and which on the CPU.
    #[serde(default)]
    pub placement: String,
}

impl Report {
    /// Whether the run's files hold bit-identical weights after dequantization: every tensor of
    /// every file equal to the first file's. `None` for a report without a weights comparison.
    pub fn weights_identical(&self) -> Option<bool> {
        if self.weights.is_empty() {
            return None;
        }
        Some(self.weights.iter().all(|t| t.compares.iter().all(|c| c.identical)))
    }

    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    pub fn from_json(text: &str) -> Result<Report, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(format!(
                    "unsupported report schema `{other}` (this Parallax reads {SCHEMA})"
                ))
            }
            None => {
                return Err(format!("not a Parallax report: no `schema` key (expected {SCHEMA})"))
            }
        }
        serde_json::from_value(value).map_err(|e| format!("malformed {SCHEMA} report: {e}"))
    }
}

/// `[id, value]` pairs whose value may be non-finite: a model that produces infinite logits is
/// exactly what a report must be able to describe, save and reopen.
mod top_logits {
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Out {
        Finite(f32),
        NonFinite(&'static str),
    }

    pub fn serialize<S: Serializer>(top: &[(u32, f32)], s: S) -> Result<S::Ok, S::Error> {
        let out: Vec<(u32, Out)> = top
            .iter()
            .map(|&(id, v)| {
                let v = match v {
                    v if v.is_finite() => Out::Finite(v),
                    v if v.is_nan() => Out::NonFinite("nan"),
                    v if v > 0.0 => Out::NonFinite("inf"),
                    _ => Out::NonFinite("-inf"),
                };
                (id, v)
            })
            .collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, f32)>, D::Error> {
        let raw: Vec<(u32, serde_json::Value)> = Vec::deserialize(d)?;
        raw.into_iter()
            .map(|(id, v)| {
                let v = match &v {
                    serde_json::Value::Number(n) => n.as_f64().map(|x| x as f32),
                    serde_json::Value::Null => Some(f32::NAN),
                    serde_json::Value::String(t) => match t.as_str() {
                        "inf" => Some(f32::INFINITY),
                        "-inf" => Some(f32::NEG_INFINITY),
                        "nan" => Some(f32::NAN),
                        _ => None,
                    },
                    _ => None,
                };
                v.map(|v| (id, v))
                    .ok_or_else(|| D::Error::custom(format!("logit of token {id} is not a number")))
            })
            .collect()
    }
}
