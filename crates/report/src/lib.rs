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

use std::collections::BTreeMap;

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
    /// The text each token id the report names stands for — the prompt's and every path's
    /// predicted tokens — as the model's tokenizer renders it (Qwen's `Ġis` is " is"), so views
    /// show words, not ids or vocabulary strings. Empty in reports older than it, and when the
    /// file carries no vocabulary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_text: BTreeMap<u32, String>,
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
    /// The FFN's activation, `silu` or `gelu_tanh` (absent in reports older than it): it names
    /// the sites `ffn_silu` and `ffn_swigl` for people (Gemma's are a GELU and a GeGLU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_activation: Option<String>,
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
    /// What a click on the site's heatmap cell shows: the values' distribution per path, the
    /// elements furthest from the reference, the matrix behind a matmul site. (Older reports
    /// and permalinks have none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<SiteDetail>,
}

/// Bins of a [`SiteDetail`] histogram.
pub const HISTOGRAM_BINS: usize = 32;
/// Elements a [`SiteDetail`] lists per path, furthest from the reference first.
pub const WORST_ELEMENTS: usize = 5;

/// A site's values up close, over the run's token scope (the sample its comparisons use).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteDetail {
    /// The histograms' range: the reference's mean ± 4 σ, within the smallest and largest
    /// finite value of any path (activations have outliers that would squeeze the rest into a
    /// bin or two).
    pub lo: f64,
    pub hi: f64,
    /// Per path, its finite values from `lo` to `hi` in [`HISTOGRAM_BINS`] equal bins.
    pub histogram: IndexMap<String, Vec<u32>>,
    /// Per path, how many finite values lie below `lo` and above `hi`.
    pub beyond: IndexMap<String, [u64; 2]>,
    /// Per path but the reference, the elements with the largest |path − reference|.
    pub worst: IndexMap<String, Vec<WorstElement>>,
    /// The weight matrix a matmul site multiplies by (the reference's file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<SiteTensor>,
}

/// One element of a site: where it is and what each side holds there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorstElement {
    /// The prompt position.
    pub token: u32,
    /// The element within the position's row (the feature index).
    pub index: u32,
    pub reference: f32,
    pub path: f32,
}

/// A matmul site's weight matrix: its name in the file, its type there, and rows × columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteTensor {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub rows: u64,
    pub cols: u64,
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
    /// The probability of each of `top` (softmax over the whole vocabulary, in f64); empty in
    /// reports older than it and when a logit is not finite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_p: Vec<f64>,
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
    /// The threads the run's matmuls ran on (set by the front ends). The numbers do not depend
    /// on it: every output element has one owner and one order of summation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The Parallax version that made the report (set by the front ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallax_version: Option<String>,
    /// The `parallax run` command that computes this report again (set by the front ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduce: Option<String>,
    /// When the report was computed: UTC, RFC 3339 to the second (`2025-06-01T12:34:56Z`; set
    /// by the front ends with [`utc_date`]; absent in reports made before it existed).
    /// Re-judging a saved report keeps it: the numbers are still that run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
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
    /// A site's name for people: the contract's site names say SiLU and SwiGLU whatever the
    /// activation, so a GELU model's `ffn_silu` reads `ffn_gelu` and its `ffn_swigl`
    /// `ffn_geglu`. Contracts, CSS classes and JSON keep the contract's names.
    pub fn site_label<'a>(&self, site: &'a str) -> &'a str {
        match (self.model.ffn_activation.as_deref(), site) {
            (Some("gelu_tanh"), "ffn_silu") => "ffn_gelu",
            (Some("gelu_tanh"), "ffn_swigl") => "ffn_geglu",
            _ => site,
        }
    }

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

/// `unix_seconds` (seconds since 1970-01-01T00:00:00Z) as UTC in RFC 3339 to the second:
/// `2025-06-01T12:34:56Z`. The front ends read their own clocks (the page has no `SystemTime`)
/// and hand the seconds here, so both write a report's date alike.
pub fn utc_date(unix_seconds: i64) -> String {
    let (days, secs) = (unix_seconds.div_euclid(86_400), unix_seconds.rem_euclid(86_400));
    // Days since the epoch to a civil date, proleptic Gregorian (Howard Hinnant's
    // `civil_from_days`): eras of 400 years, years starting on 1 March so the leap day is last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_is_rfc3339_to_the_second_across_leap_days_and_centuries() {
        // Checked against `date -u -d @<seconds> +%FT%TZ`.
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(utc_date(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(utc_date(1_748_781_296), "2025-06-01T12:34:56Z");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn a_report_without_a_date_still_loads_and_one_with_a_date_keeps_it() {
        let mut e = Execution::default();
        let old = serde_json::to_value(&e).unwrap();
        assert!(old.get("date").is_none(), "no date, no key: older readers see what they knew");
        let back: Execution = serde_json::from_value(old).unwrap();
        assert_eq!(back.date, None);
        e.date = Some(utc_date(1_748_781_296));
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"date\":\"2025-06-01T12:34:56Z\""), "{text}");
        assert_eq!(serde_json::from_str::<Execution>(&text).unwrap(), e);
    }
}
