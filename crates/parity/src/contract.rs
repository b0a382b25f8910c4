//! Contracts in the `pv` ("provable contracts") YAML schema, turned into checks.
//!
//! A contract is read unchanged: `metadata` (version, description…), `equations`,
//! `falsification_tests` (id, rule, prediction, test, if_fails), and whatever else the schema
//! grows — unknown keys are ignored. Each test's `prediction` is prose with a regular shape; when
//! it names a measurable quantity it becomes a [`Check`], otherwise the test is kept as
//! [`Check::NotMeasurable`] with the reason, so a verdict lists every test of the contract.
//!
//! Prediction grammar (whitespace-insensitive; paragraphs after the expression are prose):
//!
//! ```text
//! [For each layer i [∈ [a, b)] [and each <words> s ∈ {site, …} | *] (: | ,)]
//!     <path>_layer[i|N].<site>_stats.<stat> / <path>_layer[i|N].<site>_stats.<stat> ∈ [lo, hi]
//!     <path>_layer[i|N].<s>_stats.<stat> == <path>_layer[i|N].<s>_stats.<stat>
//!     <path>_layer[i|N].<site>_stats.<stat>  (≤ | ≥ | < | > | == | ∈) <band>
//!     <fn>(<path>_layer[i].<site>, <path>_layer[i].<site>)  <band>   fn: cosine rel_l2 sqnr_db max_abs std_ratio
//!     <fn>(<path>.logits, <path>.logits)  <band>                    fn: kl top1_agree top10_overlap cosine
//! ```
//! `<path>.<site>` addresses the sites outside layers (`embed`, `final_norm`, `logits`).
//! Knows nothing about reports or models: names are resolved when a report is judged.

use serde::Deserialize;
use std::fmt;

/// Sites inside a layer, in Parallax's execution order (Gemma 3 adds the two post-norms).
pub const LAYER_SITES: &[&str] = &[
    "attn_norm",
    "q",
    "k",
    "v",
    "attn_out",
    "attn_proj",
    "attn_post_norm",
    "resid_attn",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_silu",
    "ffn_swigl",
    "ffn_down",
    "ffn_post_norm",
    "resid_ffn",
];

/// Sites outside the layers.
pub const GLOBAL_SITES: &[&str] = &["embed", "final_norm", "logits"];

/// Upstream's (`apr trace`, aprender `ActivationStats` slots) names for Parallax's sites. `qkv`
/// is one sample made of the three projections, so it maps to their union.
pub const SITE_ALIASES: &[(&str, &[&str])] = &[
    ("qkv", &["q", "k", "v"]),
    ("ffn_out", &["ffn_down"]),
    ("output", &["resid_ffn"]),
    ("ffn_silu_gate", &["ffn_silu"]),
    ("ffn_swiglu_inner", &["ffn_swigl"]),
    ("ffn_swiglu", &["ffn_swigl"]),
];

/// A site as a contract names it, and the Parallax sites whose union it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRef {
    pub name: String,
    pub sites: Vec<String>,
}

impl SiteRef {
    /// Resolve a contract's site name; `None` when neither Parallax nor upstream knows it.
    pub fn resolve(name: &str) -> Option<SiteRef> {
        if LAYER_SITES.contains(&name) || GLOBAL_SITES.contains(&name) {
            return Some(SiteRef { name: name.into(), sites: vec![name.into()] });
        }
        SITE_ALIASES.iter().find(|(alias, _)| *alias == name).map(|(alias, sites)| SiteRef {
            name: (*alias).into(),
            sites: sites.iter().map(|s| (*s).to_string()).collect(),
        })
    }

    pub fn is_global(&self) -> bool {
        self.sites.len() == 1 && GLOBAL_SITES.contains(&self.sites[0].as_str())
    }
}

/// Which layers a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Every layer the model has.
    All,
    /// `[start, end)`, as the contract wrote it (a model with fewer layers is judged on its own).
    Range {
        start: u32,
        end: u32,
    },
    One(u32),
    /// A site outside the layers.
    None,
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layers::All => write!(f, "every layer"),
            Layers::Range { start, end } => write!(f, "layers [{start}, {end})"),
            Layers::One(i) => write!(f, "layer {i}"),
            Layers::None => write!(f, "outside the layers"),
        }
    }
}

/// A statistic of one path's sample at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Count,
    Mean,
    Std,
    Min,
    Max,
    AbsMax,
    Nan,
    Inf,
    /// NaN + ±Inf.
    NonFinite,
    Zeros,
}

impl Stat {
    fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "count" => Stat::Count,
            "mean" => Stat::Mean,
            "std" => Stat::Std,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "absmax" => Stat::AbsMax,
            "nan" => Stat::Nan,
            "inf" => Stat::Inf,
            "nonfinite" => Stat::NonFinite,
            "zeros" => Stat::Zeros,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::AbsMax => "absmax",
            Stat::Nan => "nan",
            Stat::Inf => "inf",
            Stat::NonFinite => "nonfinite",
            Stat::Zeros => "zeros",
        }
    }
}

/// An element-wise comparison of a path against the report's reference at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    RelL2,
    SqnrDb,
    MaxAbs,
    StdRatio,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "cosine" => Metric::Cosine,
            "rel_l2" => Metric::RelL2,
            "sqnr_db" => Metric::SqnrDb,
            "max_abs" => Metric::MaxAbs,
            "std_ratio" => Metric::StdRatio,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::RelL2 => "rel_l2",
            Metric::SqnrDb => "sqnr_db",
            Metric::MaxAbs => "max_abs",
            Metric::StdRatio => "std_ratio",
        }
    }
}

/// A comparison of a path's last-position logits against the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMetric {
    /// KL(P_reference ‖ P_path), nats.
    Kl,
    /// 1 when the argmax agrees, 0 otherwise.
    Top1Agree,
    Top10Overlap,
    Cosine,
}

impl LogitsMetric {
    fn parse(s: &str) -> Option<LogitsMetric> {
        Some(match s {
            "kl" => LogitsMetric::Kl,
            "top1_agree" => LogitsMetric::Top1Agree,
            "top10_overlap" => LogitsMetric::Top10Overlap,
            "cosine" => LogitsMetric::Cosine,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogitsMetric::Kl => "kl",
            LogitsMetric::Top1Agree => "top1_agree",
            LogitsMetric::Top10Overlap => "top10_overlap",
            LogitsMetric::Cosine => "cosine",
        }
    }
}

/// Where a value must lie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub lo_open: bool,
    pub hi_open: bool,
}

impl Band {
    pub fn contains(&self, v: f64) -> bool {
        if v.is_nan() {
            return false;
        }
        let lo_ok = match self.lo {
            Some(lo) if self.lo_open => v > lo,
            Some(lo) => v >= lo,
            None => true,
        };
        let hi_ok = match self.hi {
            Some(hi) if self.hi_open => v < hi,
            Some(hi) => v <= hi,
            None => true,
        };
        lo_ok && hi_ok
    }

    /// How far inside the band `v` is (negative: outside). Ratio bands (both bounds positive)
    /// are judged in log space, so 0.5 and 2.0 are equally far from 1.
    pub fn slack(&self, v: f64) -> f64 {
        if v.is_nan() {
            return f64::NEG_INFINITY;
        }
        let log =
            matches!((self.lo, self.hi), (Some(lo), Some(hi)) if lo > 0.0 && hi > 0.0) && v > 0.0;
        let mut s = f64::INFINITY;
        if let Some(lo) = self.lo {
            s = s.min(if log { libm::log(v / lo) } else { v - lo });
        }
        if let Some(hi) = self.hi {
            s = s.min(if log { libm::log(hi / v) } else { hi - v });
        }
        s
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if lo == hi => write!(f, "== {lo}"),
            (Some(lo), Some(hi)) => {
                write!(
                    f,
                    "∈ {}{lo}, {hi}{}",
                    if self.lo_open { "(" } else { "[" },
                    if self.hi_open { ")" } else { "]" }
                )
            }
            (Some(lo), None) => write!(f, "{} {lo}", if self.lo_open { ">" } else { "≥" }),
            (None, Some(hi)) => write!(f, "{} {hi}", if self.hi_open { "<" } else { "≤" }),
            (None, None) => write!(f, "any value"),
        }
    }
}

/// What a falsification test measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `stat(num) / stat(den)` at each site of each layer, within `band`.
    StatRatio {
        stat: Stat,
        num: String,
        den: String,
        sites: Vec<SiteRef>,
        layers: Layers,
        band: Band,
    },
    /// `stat(a) == stat(b)`: with `Stat::Count`, sample-size parity (FALSIFY-007).
    StatEqual { stat: Stat, a: String, b: String, sites: Vec<SiteRef>, layers: Layers },
    /// One path's statistic within `band`.
    StatBand { stat: Stat, path: String, sites: Vec<SiteRef>, layers: Layers, band: Band },
    /// An element-wise comparison of `path` against `reference` within `band`.
    Compare {
        metric: Metric,
        path: String,
        reference: String,
        sites: Vec<SiteRef>,
        layers: Layers,
        band: Band,
    },
    /// A logits comparison within `band`.
    Logits { metric: LogitsMetric, path: String, reference: String, band: Band },
    /// The prediction names nothing Parallax measures (a command, prose about upstream code).
    NotMeasurable { reason: String },
}

impl Check {
    /// Every contract path name the check uses.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Check::StatRatio { num, den, .. } => vec![num, den],
            Check::StatEqual { a, b, .. } => vec![a, b],
            Check::StatBand { path, .. } => vec![path],
            Check::Compare { path, reference, .. } | Check::Logits { path, reference, .. } => {
                vec![path, reference]
            }
            Check::NotMeasurable { .. } => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContractTest {
    pub id: String,
    pub rule: String,
    /// The prediction as written.
    pub prediction: String,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// `metadata.name` when present; otherwise the common prefix of the test ids.
    pub name: String,
    pub version: Option<String>,
    /// `metadata.source`: where a restated contract's facts come from.
    pub source: Option<String>,
    pub tests: Vec<ContractTest>,
}

/// Why a contract could not be read. Each names the test and the problem.
#[derive(Debug, Clone, PartialEq)]
pub enum ContractError {
    Yaml(String),
    NoTests,
    MissingField { test: String, field: &'static str },
    DuplicateId(String),
    Prediction { test: String, message: String },
    UnknownSite { test: String, site: String },
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContractError::Yaml(m) => {
                write!(f, "the contract is not valid YAML of the pv schema: {m}")
            }
            ContractError::NoTests => write!(f, "the contract has no `falsification_tests`"),
            ContractError::MissingField { test, field } => {
                write!(f, "{test}: the test has no `{field}`")
            }
            ContractError::DuplicateId(id) => write!(f, "{id}: the test id appears twice"),
            ContractError::Prediction { test, message } => {
                write!(f, "{test}: the prediction does not parse: {message}")
            }
            ContractError::UnknownSite { test, site } => write!(
                f,
                "{test}: unknown site `{site}` (Parallax sites: {}, {}; upstream names: {})",
                LAYER_SITES.join(", "),
                GLOBAL_SITES.join(", "),
                SITE_ALIASES.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for ContractError {}

// The subset of the pv schema Parallax reads; serde ignores every other key.
#[derive(Deserialize)]
struct RawContract {
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default)]
    falsification_tests: Option<Vec<RawTest>>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<serde_norway::Value>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
struct RawTest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    prediction: Option<String>,
}

impl Contract {
    pub fn from_yaml_str(text: &str) -> Result<Contract, ContractError> {
        let raw: RawContract =
            serde_norway::from_str(text).map_err(|e| ContractError::Yaml(e.to_string()))?;
        let raw_tests =
            raw.falsification_tests.filter(|t| !t.is_empty()).ok_or(ContractError::NoTests)?;
        let mut tests: Vec<ContractTest> = Vec::with_capacity(raw_tests.len());
        for (n, t) in raw_tests.into_iter().enumerate() {
            let id = t.id.ok_or(ContractError::MissingField {
                test: format!("test #{}", n + 1),
                field: "id",
            })?;
            if tests.iter().any(|x| x.id == id) {
                return Err(ContractError::DuplicateId(id));
            }
            let rule =
                t.rule.ok_or(ContractError::MissingField { test: id.clone(), field: "rule" })?;
            let prediction = t
                .prediction
                .ok_or(ContractError::MissingField { test: id.clone(), field: "prediction" })?;
            let check = parse_prediction(&prediction).map_err(|e| match e {
                PredError::Syntax(message) => {
                    ContractError::Prediction { test: id.clone(), message }
                }
                PredError::UnknownSite(site) => {
                    ContractError::UnknownSite { test: id.clone(), site }
                }
            })?;
            tests.push(ContractTest { id, rule, prediction, check });
        }
        let meta = raw.metadata;
        let name = meta.as_ref().and_then(|m| m.name.clone()).unwrap_or_else(|| id_prefix(&tests));
        let version = meta.as_ref().and_then(|m| m.version.as_ref()).and_then(|v| match v {
            serde_norway::Value::String(s) => Some(s.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Contract { name, version, source: meta.and_then(|m| m.source), tests })
    }
}

/// `FALSIFY-APR-GGUF-PARITY-001`, `…-002` → `FALSIFY-APR-GGUF-PARITY`.
fn id_prefix(tests: &[ContractTest]) -> String {
    let first = &tests[0].id;
    let mut prefix = first.as_str();
    for t in &tests[1..] {
        let common = prefix.chars().zip(t.id.chars()).take_while(|(a, b)| a == b).count();
        prefix = &prefix[..prefix.char_indices().nth(common).map_or(prefix.len(), |(i, _)| i)];
    }
    let trimmed = prefix.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_');
    if trimmed.is_empty() {
        first.clone()
    } else {
        trimmed.to_string()
    }
}

/// Parallax's own contract: per-site bands between the `f32` and `q8` paths, measured on the
/// shared models (see the YAML's comments for each number).
pub const PARALLAX_DEFAULT_YAML: &str = include_str!("../contracts/parallax-default-v1.yaml");

/// Upstream's `apr-vs-gguf-forward-parity-v1` facts (ids, bands, sites, version) restated in
/// Parallax's words; the upstream file itself is read unchanged by `Contract::from_yaml_str`.
pub const UPSTREAM_RESTATED_YAML: &str =
    include_str!("../contracts/apr-vs-gguf-forward-parity-v1.restated.yaml");

/// The contracts a run is judged against when the user names none.
pub fn default_contracts() -> Vec<Contract> {
    [PARALLAX_DEFAULT_YAML, UPSTREAM_RESTATED_YAML]
        .iter()
        // Embedded at build time and parsed by this crate's tests: cannot fail at run time.
        .map(|y| Contract::from_yaml_str(y).expect("embedded contract parses"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Prediction parser.

#[derive(Debug)]
enum PredError {
    Syntax(String),
    UnknownSite(String),
}

/// A prediction names a measurable quantity when it addresses a path's layer or a global site.
fn looks_measurable(text: &str) -> bool {
    if text.contains("_layer[") || text.contains("_stats.") {
        return true;
    }
    // `<path>.embed`, `<path>.final_norm`, `<path>.logits`: a global site right after a name and
    // ending there (`notes.embed.md` is a file name, not a site).
    GLOBAL_SITES.iter().any(|g| {
        let pat = format!(".{g}");
        text.match_indices(&pat).any(|(at, _)| {
            let before = text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let after = text[at + pat.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.'));
            before && after
        })
    })
}

fn parse_prediction(text: &str) -> Result<Check, PredError> {
    if !looks_measurable(text) {
        let t = text.trim();
        let reason = if t.starts_with('`') {
            let cmd = t.trim_start_matches('`').split('`').next().unwrap_or("");
            format!("runs a command (`{cmd}`), not a quantity a report holds")
        } else {
            "prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity"
                .to_string()
        };
        return Ok(Check::NotMeasurable { reason });
    }
    // Paragraphs after the expression are explanation; the quantifier may span several.
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let mut best: Option<(usize, PredError)> = None;
    for k in 1..=paragraphs.len() {
        let joined = paragraphs[..k].join(" ");
        let mut p = Parser { s: &joined, pos: 0 };
        match p.prediction() {
            Ok(check) => return Ok(check),
            Err(e) => {
                if let PredError::UnknownSite(_) = e {
                    return Err(e);
                }
                if best.as_ref().is_none_or(|(pos, _)| p.pos >= *pos) {
                    best = Some((p.pos, e));
                }
            }
        }
    }
    Err(best.map(|(_, e)| e).unwrap_or_else(|| PredError::Syntax("empty prediction".into())))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

/// One side of an expression: `<path>_layer[i|N].<site>[_stats.<stat>]` or `<path>.<site>[…]`.
#[derive(Debug)]
struct Accessor {
    path: String,
    layer: LayerIdx,
    site: SiteTok,
    stat: Option<Stat>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LayerIdx {
    Var,
    Fixed(u32),
    Global,
}

#[derive(Debug, Clone, PartialEq)]
enum SiteTok {
    Var,
    Name(String),
}

enum Operand {
    Acc(Accessor),
    Ratio(Accessor, Accessor),
    Func(String, Accessor, Accessor),
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, PredError> {
        let near: String = self.rest().chars().take(40).collect();
        Err(PredError::Syntax(if near.is_empty() {
            format!("expected {what} at the end")
        } else {
            format!("expected {what} at `{near}`")
        }))
    }

    fn expect(&mut self, tok: &str) -> Result<(), PredError> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.err(&format!("`{tok}`"))
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.ws();
        let r = self.rest();
        let n = r.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(r.len());
        if n == 0 {
            return None;
        }
        self.pos += n;
        Some(&r[..n])
    }

    fn number(&mut self) -> Result<f64, PredError> {
        self.ws();
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(r.len());
        match r[..n].parse::<f64>() {
            Ok(v) if v.is_finite() => {
                self.pos += n;
                Ok(v)
            }
            _ => self.err("a number"),
        }
    }

    fn uint(&mut self) -> Result<u32, PredError> {
        let v = self.number()?;
        if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
            Ok(v as u32)
        } else {
            Err(PredError::Syntax(format!("expected a layer index, found {v}")))
        }
    }

    fn prediction(&mut self) -> Result<Check, PredError> {
        let mut layers = None;
        let mut site_set: Option<Vec<String>> = None;
        self.ws();
        if self.rest().to_ascii_lowercase().starts_with("for each layer") {
            self.pos += "for each layer".len();
            self.ident().map_or_else(|| self.err("the layer variable (`i`)"), Ok)?;
            if self.eat("∈") || self.eat("in ") {
                self.expect("[")?;
                let start = self.uint()?;
                self.expect(",")?;
                let end = self.uint()?;
                let end = if self.eat(")") {
                    end
                } else if self.eat("]") {
                    end.saturating_add(1)
                } else {
                    return self.err("`)` or `]` closing the layer range");
                };
                if end <= start {
                    return Err(PredError::Syntax(format!(
                        "the layer range [{start}, {end}) is empty"
                    )));
                }
                layers = Some(Layers::Range { start, end });
            } else {
                layers = Some(Layers::All);
            }
            if self.eat("and each") {
                // `and each ActivationStats slot s ∈ {…}`: words up to the `∈`.
                let r = self.rest();
                let Some(at) = r.find('∈') else {
                    return self.err("`∈` after `and each …`");
                };
                self.pos += at + '∈'.len_utf8();
                if self.eat("*") {
                    site_set = Some(LAYER_SITES.iter().map(|s| s.to_string()).collect());
                } else {
                    self.expect("{")?;
                    let mut set = Vec::new();
                    loop {
                        let Some(name) = self.ident() else {
                            return self.err("a site name");
                        };
                        set.push(name.to_string());
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                    site_set = Some(set);
                }
            }
            if !(self.eat(":") || self.eat(",")) {
                return self.err("`:` or `,` after the quantifier");
            }
        }
        let lhs = self.operand()?;
        self.ws();
        let check = self.comparison(lhs, layers, site_set.as_deref())?;
        self.ws();
        if !self.rest().is_empty() {
            return self.err("the end of the expression");
        }
        Ok(check)
    }

    fn accessor(&mut self) -> Result<Accessor, PredError> {
        let Some(word) = self.ident() else {
            return self.err("a path accessor like `apr_layer[i].ffn_swigl_stats.std`");
        };
        let (path, layer) = if let Some(path) = word.strip_suffix("_layer") {
            self.expect("[")?;
            let layer = if self.eat("i") { LayerIdx::Var } else { LayerIdx::Fixed(self.uint()?) };
            self.expect("]")?;
            (path.to_string(), layer)
        } else {
            (word.to_string(), LayerIdx::Global)
        };
        self.expect(".")?;
        let site = if self.eat("<") {
            self.ident().map_or_else(|| self.err("the site variable"), Ok)?;
            self.expect(">")?;
            if self.rest().starts_with("_stats") {
                self.pos += "_stats".len();
                self.expect(".")?;
                let stat = self.stat()?;
                return Ok(Accessor { path, layer, site: SiteTok::Var, stat: Some(stat) });
            }
            SiteTok::Var
        } else {
            let Some(name) = self.ident() else {
                return self.err("a site name");
            };
            if let Some(site) = name.strip_suffix("_stats") {
                self.expect(".")?;
                let stat = self.stat()?;
                return Ok(Accessor {
                    path,
                    layer,
                    site: SiteTok::Name(site.into()),
                    stat: Some(stat),
                });
            }
            SiteTok::Name(name.into())
        };
        Ok(Accessor { path, layer, site, stat: None })
    }

    fn stat(&mut self) -> Result<Stat, PredError> {
        let Some(name) = self.ident() else {
            return self.err("a statistic");
        };
        Stat::parse(name).ok_or_else(|| {
            PredError::Syntax(format!(
                "unknown statistic `{name}` (count, mean, std, min, max, absmax, nan, inf, nonfinite, zeros)"
            ))
        })
    }

    fn operand(&mut self) -> Result<Operand, PredError> {
        self.ws();
        let save = self.pos;
        if let Some(word) = self.ident() {
            if self.eat("(") {
                let a = self.accessor()?;
                self.expect(",")?;
                let b = self.accessor()?;
                self.expect(")")?;
                return Ok(Operand::Func(word.to_string(), a, b));
            }
        }
        self.pos = save;
        let a = self.accessor()?;
        if self.eat("/") {
            let b = self.accessor()?;
            return Ok(Operand::Ratio(a, b));
        }
        Ok(Operand::Acc(a))
    }

    fn band(&mut self) -> Result<Band, PredError> {
        let open = Band { lo: None, hi: None, lo_open: false, hi_open: false };
        if self.eat("∈") || self.eat("in ") {
            let lo_open = if self.eat("[") {
                false
            } else if self.eat("(") {
                true
            } else {
                return self.err("`[` or `(` opening the band");
            };
            let lo = self.number()?;
            self.expect(",")?;
            let hi = self.number()?;
            let hi_open = if self.eat("]") {
                false
            } else if self.eat(")") {
                true
            } else {
                return self.err("`]` or `)` closing the band");
            };
            if hi < lo {
                return Err(PredError::Syntax(format!("the band [{lo}, {hi}] is empty")));
            }
            return Ok(Band { lo: Some(lo), hi: Some(hi), lo_open, hi_open });
        }
        for (tok, is_hi, strict) in [
            ("≤", true, false),
            ("<=", true, false),
            ("≥", false, false),
            (">=", false, false),
            ("<", true, true),
            (">", false, true),
        ] {
            if self.eat(tok) {
                let v = self.number()?;
                return Ok(if is_hi {
                    Band { hi: Some(v), hi_open: strict, ..open }
                } else {
                    Band { lo: Some(v), lo_open: strict, ..open }
                });
            }
        }
        if self.eat("==") {
            let v = self.number()?;
            return Ok(Band { lo: Some(v), hi: Some(v), ..open });
        }
        self.err("a band (`∈ [lo, hi]`, `≤ x`, `≥ x`, `== x`)")
    }

    fn comparison(
        &mut self,
        lhs: Operand,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<Check, PredError> {
        match lhs {
            Operand::Ratio(a, b) => {
                let (stat, sites, layers) = self.pair(&a, &b, layers, set)?;
                let band = self.band()?;
                Ok(Check::StatRatio { stat, num: a.path, den: b.path, sites, layers, band })
            }
            Operand::Acc(a) => {
                let save = self.pos;
                if self.eat("==") {
                    self.ws();
                    if self.rest().starts_with(|c: char| c.is_ascii_alphabetic()) {
                        let b = self.accessor()?;
                        let (stat, sites, layers) = self.pair(&a, &b, layers, set)?;
                        return Ok(Check::StatEqual { stat, a: a.path, b: b.path, sites, layers });
                    }
                }
                self.pos = save;
                let Some(stat) = a.stat else {
                    return Err(PredError::Syntax(format!(
                        "`{}` names a site but no statistic (write `…_stats.std` or compare two paths with a function)",
                        a.path
                    )));
                };
                let (sites, layers) = self.where_(&a, layers, set)?;
                let band = self.band()?;
                Ok(Check::StatBand { stat, path: a.path, sites, layers, band })
            }
            Operand::Func(name, a, b) => {
                if a.stat.is_some() || b.stat.is_some() {
                    return Err(PredError::Syntax(format!(
                        "`{name}(…)` compares sites' values, not statistics"
                    )));
                }
                if a.site != b.site || a.layer != b.layer {
                    return Err(PredError::Syntax(format!(
                        "`{name}(…)` must compare the same site of the same layer"
                    )));
                }
                let is_logits = a.site == SiteTok::Name("logits".into());
                if is_logits {
                    let Some(metric) = LogitsMetric::parse(&name) else {
                        return Err(PredError::Syntax(format!(
                            "unknown logits function `{name}` (kl, top1_agree, top10_overlap, cosine)"
                        )));
                    };
                    let band = self.band()?;
                    // kl(reference, path) reads as KL(P_ref ‖ P_path); the others take (path, reference).
                    let (path, reference) = if metric == LogitsMetric::Kl {
                        (b.path, a.path)
                    } else {
                        (a.path, b.path)
                    };
                    return Ok(Check::Logits { metric, path, reference, band });
                }
                let Some(metric) = Metric::parse(&name) else {
                    return Err(PredError::Syntax(format!(
                        "unknown function `{name}` (cosine, rel_l2, sqnr_db, max_abs, std_ratio; on logits: kl, top1_agree, top10_overlap)"
                    )));
                };
                let (sites, layers) = self.where_(&a, layers, set)?;
                let band = self.band()?;
                Ok(Check::Compare { metric, path: a.path, reference: b.path, sites, layers, band })
            }
        }
    }

    fn pair(
        &self,
        a: &Accessor,
        b: &Accessor,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<(Stat, Vec<SiteRef>, Layers), PredError> {
        let (Some(sa), Some(sb)) = (a.stat, b.stat) else {
            return Err(PredError::Syntax(
                "both sides must name a statistic (`…_stats.std`)".into(),
            ));
        };
        if sa != sb {
            return Err(PredError::Syntax(format!(
                "the two sides compare different statistics ({} vs {})",
                sa.as_str(),
                sb.as_str()
            )));
        }
        if a.site != b.site || a.layer != b.layer {
            return Err(PredError::Syntax(
                "the two sides must address the same site of the same layer".into(),
            ));
        }
        let (sites, layers) = self.where_(a, layers, set)?;
        Ok((sa, sites, layers))
    }

    /// The sites and layers an accessor covers under the quantifier.
    fn where_(
        &self,
        a: &Accessor,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<(Vec<SiteRef>, Layers), PredError> {
        let names: Vec<String> = match (&a.site, set) {
            (SiteTok::Name(n), _) => vec![n.clone()],
            (SiteTok::Var, Some(set)) => set.to_vec(),
            (SiteTok::Var, None) => {
                return Err(PredError::Syntax(
                    "`<s>` is used but no `and each … s ∈ {…}` quantifier defines it".into(),
                ))
            }
        };
        let sites = names
            .iter()
            .map(|n| SiteRef::resolve(n).ok_or_else(|| PredError::UnknownSite(n.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let layers = match (a.layer, layers) {
            (LayerIdx::Var, Some(l)) => l,
            (LayerIdx::Var, None) => {
                return Err(PredError::Syntax(
                    "`[i]` is used but no `For each layer i …` quantifier defines it".into(),
                ))
            }
            (LayerIdx::Fixed(n), _) => Layers::One(n),
            (LayerIdx::Global, _) => Layers::None,
        };
        let global = sites.iter().any(|s| s.is_global());
        if global != (layers == Layers::None) {
            let name = &sites[0].name;
            return Err(PredError::Syntax(if global {
                format!("`{name}` is outside the layers: address it as `<path>.{name}`")
            } else {
                format!("`{name}` is a layer site: address it as `<path>_layer[i].{name}`")
            }));
        }
        Ok((sites, layers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &str) -> Result<Check, String> {
        parse_prediction(p).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn upstream_shapes_parse() {
        let c = parse("For each layer i ∈ [0, 28),\n  apr_layer[i].ffn_swigl_stats.std / gguf_layer[i].ffn_swigl_stats.std ∈ [0.5, 2.0]\n").unwrap();
        let Check::StatRatio { stat, num, den, sites, layers, band } = c else { panic!("{c:?}") };
        assert_eq!((stat, num.as_str(), den.as_str()), (Stat::Std, "apr", "gguf"));
        assert_eq!(sites[0].sites, vec!["ffn_swigl"]);
        assert_eq!(layers, Layers::Range { start: 0, end: 28 });
        assert_eq!((band.lo, band.hi), (Some(0.5), Some(2.0)));
        let c = parse(
            "apr_layer[3].ffn_gate_stats.std / gguf_layer[3].ffn_gate_stats.std ∈ [0.7, 1.4]",
        )
        .unwrap();
        assert!(matches!(c, Check::StatRatio { layers: Layers::One(3), .. }));
        let c = parse(
            "For each layer i ∈ [0, 28) and each ActivationStats slot s ∈\n{attn_norm, qkv, ffn_out}:\n\n  apr_layer[i].<s>_stats.count == gguf_layer[i].<s>_stats.count\n\nEither both stats reflect 7 × hidden_dim.\n",
        )
        .unwrap();
        let Check::StatEqual { stat: Stat::Count, sites, .. } = c else { panic!("{c:?}") };
        assert_eq!(sites[1].sites, vec!["q", "k", "v"]);
        assert_eq!(sites[2].sites, vec!["ffn_down"]);
        assert!(matches!(
            parse("`pv validate x.yaml` exits 0").unwrap(),
            Check::NotMeasurable { .. }
        ));
        assert!(matches!(
            parse("F32-native APR models still use F32 matmul.").unwrap(),
            Check::NotMeasurable { .. }
        ));
    }

    #[test]
    fn own_shapes_parse() {
        let c = parse("For each layer i and each site s ∈ {q, k}: cosine(q8_layer[i].<s>, f32_layer[i].<s>) ≥ 0.999").unwrap();
        assert!(matches!(c, Check::Compare { metric: Metric::Cosine, layers: Layers::All, .. }));
        let c = parse("kl(f32.logits, q8.logits) ≤ 0.01").unwrap();
        let Check::Logits { metric: LogitsMetric::Kl, path, reference, band } = c else { panic!() };
        assert_eq!((path.as_str(), reference.as_str(), band.hi), ("q8", "f32", Some(0.01)));
        let c = parse("For each layer i and each site s ∈ *: q8_layer[i].<s>_stats.nonfinite == 0")
            .unwrap();
        assert!(matches!(c, Check::StatBand { stat: Stat::NonFinite, .. }));
        assert!(matches!(
            parse("q8.final_norm_stats.nonfinite == 0").unwrap(),
            Check::StatBand { layers: Layers::None, .. }
        ));
        assert!(matches!(
            parse("rel_l2(q8.embed, f32.embed) ≤ 0.000001").unwrap(),
            Check::Compare { layers: Layers::None, .. }
        ));
        // Prose that merely mentions a file name with a dot is not a quantity.
        assert!(matches!(
            parse("see notes.embed.md for details").unwrap(),
            Check::NotMeasurable { .. }
        ));
    }

    #[test]
    fn malformed_predictions_are_errors() {
        for bad in [
            "apr_layer[i].ffn_swigl_stats.std / gguf_layer[i].ffn_swigl_stats.std ∈ [0.5, 2.0]",
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ∈ [2.0, 0.5]",
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_gate_stats.std ∈ [0.5, 2.0]",
            "apr_layer[3].ffn_swigl_stats.sd / gguf_layer[3].ffn_swigl_stats.sd ∈ [0.5, 2.0]",
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ~ 1",
            "q8_layer[3].logits_stats.nan == 0",
        ] {
            assert!(matches!(parse_prediction(bad), Err(PredError::Syntax(_))), "{bad}");
        }
        assert!(matches!(
            parse_prediction("apr_layer[3].ffn_swiggle_stats.std / gguf_layer[3].ffn_swiggle_stats.std ∈ [0.5, 2]"),
            Err(PredError::UnknownSite(s)) if s == "ffn_swiggle"
        ));
    }

    #[test]
    fn embedded_contracts_parse_and_measure_every_test() {
        let all = default_contracts();
        assert_eq!(all[0].name, "parallax-default-v1");
        assert!(
            all[0].tests.iter().all(|t| !matches!(t.check, Check::NotMeasurable { .. })),
            "{:?}",
            all[0].tests
        );
        assert_eq!(all[1].version.as_deref(), Some("1.2.0"));
    }

    #[test]
    fn bands_judge_ratios_in_log_space() {
        let b = Band { lo: Some(0.5), hi: Some(2.0), lo_open: false, hi_open: false };
        assert!((b.slack(0.5) - b.slack(2.0)).abs() < 1e-12);
        assert!(b.slack(18.23) < 0.0 && !b.contains(18.23) && b.contains(1.245));
        let le = Band { lo: None, hi: Some(0.1), lo_open: false, hi_open: false };
        assert!(le.slack(0.2) < 0.0 && le.slack(0.05) > 0.0);
        assert!(!b.contains(f64::NAN));
    }
}
