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
//! Site names come from `parallax_metrics::sites` (Parallax's names and upstream's aliases).
//! Knows nothing about reports or models: names are resolved when a report is judged.

use std::fmt;

mod check;
mod prediction;
mod yaml;

pub use check::{Band, Check, Layers, LogitsMetric, Metric, Stat};
use parallax_metrics::sites::{self, ALIASES, GLOBAL_SITES, LAYER_SITES};

/// A site as a contract names it, and the Parallax sites whose union it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRef {
    pub name: String,
    pub sites: Vec<String>,
}

impl SiteRef {
    /// Resolve a contract's site name; `None` when neither Parallax nor upstream knows it.
    pub fn resolve(name: &str) -> Option<SiteRef> {
        if let Some(site) = sites::site(name) {
            return Some(SiteRef { name: site.name.into(), sites: vec![site.name.into()] });
        }
        ALIASES.iter().find(|(alias, _)| *alias == name).map(|(alias, sites)| SiteRef {
            name: (*alias).into(),
            sites: sites.iter().map(|s| (*s).to_string()).collect(),
        })
    }

    pub fn is_global(&self) -> bool {
        self.sites.len() == 1
            && sites::site(&self.sites[0]).is_some_and(|s| s.scope == sites::Scope::Global)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContractTest {
    pub id: String,
    pub rule: String,
    /// The prediction as written.
    pub prediction: String,
    pub check: Check,
    /// `explained_by`: ids of tests in the same contract whose passing explains this test's
    /// failures — each failure that comes, in execution order, before the first failure of any
    /// of them is explained by the arithmetic (EXPLAINED, not FAIL). Parallax's default contract
    /// explains its accumulated-divergence bands by the op-alone noise tests: if every op's own
    /// error up to a point is within its predicted rounding noise, what arrives there is that
    /// noise, propagated.
    pub explained_by: Vec<String>,
    /// `measured: true`: the quantity is shown (MEASURED), not judged — a band the contract's
    /// author cannot know (the KL divergence between two quantizations, which the user's own
    /// contract bounds).
    pub measured: bool,
    /// `requires: …`: the test applies only to runs with this property (NOT MEASURABLE, saying
    /// why, otherwise).
    pub requires: Option<Requirement>,
}

/// What a test may require of a run before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// `identical_weights`: a run over two or more files whose weights are bit-identical after
    /// dequantization (an APR written from a GGUF, a GGUF rewritten in F32), per the report's
    /// `weights` section.
    IdenticalWeights,
}

impl Requirement {
    pub fn parse(s: &str) -> Option<Requirement> {
        match s.trim() {
            "identical_weights" => Some(Requirement::IdenticalWeights),
            _ => None,
        }
    }
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
    MissingField {
        test: String,
        field: &'static str,
    },
    DuplicateId(String),
    Prediction {
        test: String,
        message: String,
    },
    UnknownSite {
        test: String,
        site: String,
    },
    /// `requires` names no requirement the judge knows.
    Requirement {
        test: String,
        given: String,
    },
    /// `explained_by` names no test of the contract, one that explains others itself, or one
    /// that measures nothing.
    Explainer {
        test: String,
        explainer: String,
    },
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
            ContractError::Requirement { test, given } => write!(
                f,
                "{test}: `requires: {given}` is not a requirement Parallax knows (identical_weights)"
            ),
            ContractError::Explainer { test, explainer } => write!(
                f,
                "{test}: `explained_by: {explainer}` must name another measurable test of this contract, one that is not explained itself"
            ),
            ContractError::UnknownSite { test, site } => write!(
                f,
                "{test}: unknown site `{site}` (Parallax sites: {}, {}; upstream names: {})",
                LAYER_SITES.join(", "),
                GLOBAL_SITES.join(", "),
                ALIASES.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for ContractError {}

/// Parallax's own contract: per-site bands between the `f32` and `q8` paths, measured on the
/// shared models (see the YAML's comments for each number).
pub const PARALLAX_DEFAULT_YAML: &str = include_str!("../../contracts/parallax-default-v1.yaml");

/// Upstream's `apr-vs-gguf-forward-parity-v1` facts (ids, bands, sites, version) restated in
/// Parallax's words; the upstream file itself is read unchanged by `Contract::from_yaml_str`.
pub const UPSTREAM_RESTATED_YAML: &str =
    include_str!("../../contracts/apr-vs-gguf-forward-parity-v1.restated.yaml");

/// Parallax's contract for two files of one model (`file1`, `file2`: see [`file_paths`]).
pub const PARALLAX_FILES_YAML: &str = include_str!("../../contracts/parallax-files-v1.yaml");

/// The contract a run over two or more files is also judged against when the user names none.
pub fn files_contract() -> Contract {
    // Embedded at build time and parsed by this crate's tests: cannot fail at run time.
    Contract::from_yaml_str(PARALLAX_FILES_YAML).expect("embedded contract parses")
}

/// The report paths the files contract's `file1` and `file2` stand for: the reference, and the
/// same path on the other file (`f32` → `f32@2`, `q8@2` → `q8`).
pub fn file_paths(reference: &str) -> (String, String) {
    let other = match reference.split_once('@') {
        None => format!("{reference}@2"),
        Some((path, _)) => path.to_string(),
    };
    (reference.to_string(), other)
}

/// The contracts a run is judged against when the user names none.
pub fn default_contracts() -> Vec<Contract> {
    [PARALLAX_DEFAULT_YAML, UPSTREAM_RESTATED_YAML]
        .iter()
        // Embedded at build time and parsed by this crate's tests: cannot fail at run time.
        .map(|y| Contract::from_yaml_str(y).expect("embedded contract parses"))
        .collect()
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    /// Every test of the embedded contracts, as parsed: a change to a YAML band or to the parser
    /// shows here line by line.
    #[test]
    fn embedded_contracts() {
        let all = default_contracts();
        let mut text = String::new();
        for c in &all {
            text.push_str(&format!("{} {:?} {:?}\n", c.name, c.version, c.source));
            for t in &c.tests {
                text.push_str(&format!("  {}: {}\n", t.id, t.check));
            }
        }
        expect![[r#"
            parallax-default-v1 Some("1.0.0") None
              PARALLAX-PARITY-001: count(f32) == count(q8) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer
              PARALLAX-PARITY-002: nonfinite(f32) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer == 0
              PARALLAX-PARITY-003: nonfinite(q8) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer == 0
              PARALLAX-PARITY-004: nonfinite(q8) at logits, outside the layers == 0
              PARALLAX-PARITY-005: rel_l2(q8, f32) at embed, outside the layers ≤ 0.000001
              PARALLAX-PARITY-006: rel_l2(q8, f32) at resid_attn, resid_ffn, every layer ≤ 0.06
              PARALLAX-PARITY-007: cosine(q8, f32) at resid_attn, resid_ffn, every layer ≥ 0.998
              PARALLAX-PARITY-008: rel_l2(q8, f32) at attn_norm, ffn_norm, every layer ≤ 0.12
              PARALLAX-PARITY-009: cosine(q8, f32) at attn_norm, ffn_norm, every layer ≥ 0.993
              PARALLAX-PARITY-010: rel_l2(q8, f32) at q, k, v, attn_out, attn_proj, attn_post_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, every layer ≤ 0.27
              PARALLAX-PARITY-011: cosine(q8, f32) at q, k, v, attn_out, attn_proj, attn_post_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, every layer ≥ 0.964
              PARALLAX-PARITY-012: std(q8) / std(f32) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer ∈ [0.8, 1.25]
              PARALLAX-PARITY-013: rel_l2(q8, f32) at final_norm, outside the layers ≤ 0.2
              PARALLAX-PARITY-014: kl(q8, f32) on the logits ≤ 0.02
              PARALLAX-PARITY-015: top1_agree(q8, f32) on the logits == 1
              PARALLAX-PARITY-016: top10_overlap(q8, f32) on the logits ≥ 8
              PARALLAX-PARITY-017: noise_ratio(q8, f32) at q, k, v, attn_out, attn_proj, ffn_gate, ffn_up, ffn_silu, ffn_down, every layer ≤ 3
              PARALLAX-PARITY-018: noise_ratio(q8, f32) on the logits ≤ 3
            apr-vs-gguf-forward-parity-v1 Some("1.2.0") Some("aprender contracts/apr-vs-gguf-forward-parity-v1.yaml v1.2.0 (PAIML Engineering)")
              FALSIFY-APR-GGUF-PARITY-001: std(apr) / std(gguf) at ffn_swigl, layers [0, 28) ∈ [0.5, 2]
              FALSIFY-APR-GGUF-PARITY-002: std(apr) / std(gguf) at ffn_swigl, layer 3 ∈ [0.5, 2]
              FALSIFY-APR-GGUF-PARITY-003: std(apr) / std(gguf) at ffn_gate, layer 3 ∈ [0.7, 1.4]
              FALSIFY-APR-GGUF-PARITY-004: not measurable: runs a command (`pv validate contracts/apr-vs-gguf-forward-parity-v1.yaml`), not a quantity a report holds
              FALSIFY-APR-GGUF-PARITY-005: not measurable: prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity
              FALSIFY-APR-GGUF-PARITY-006: not measurable: prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity
              FALSIFY-APR-GGUF-PARITY-007: count(apr) == count(gguf) at attn_norm, qkv = q ∪ k ∪ v, attn_out, ffn_norm, ffn_gate, ffn_up, ffn_silu_gate = ffn_silu, ffn_swiglu_inner = ffn_swigl, ffn_out = ffn_down, output = resid_ffn, layers [0, 28)
        "#]].assert_eq(&text);
        assert!(
            all[0].tests.iter().all(|t| !matches!(t.check, Check::NotMeasurable { .. })),
            "Parallax's own contract measures every test it states"
        );
    }

    /// The files contract: paths with a file (`file2` maps to `q8@2`), the identical-weights
    /// tests and the measured ones.
    #[test]
    fn the_files_contract() {
        let c = files_contract();
        let mut text = String::new();
        for t in &c.tests {
            let tags = match (t.requires, t.measured) {
                (Some(Requirement::IdenticalWeights), _) => " [identical weights]",
                (None, true) => " [measured]",
                (None, false) => "",
            };
            text.push_str(&format!("{}: {}{tags}\n", t.id, t.check));
        }
        expect![[r#"
            PARALLAX-FILES-001: count(file1) == count(file2) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer
            PARALLAX-FILES-002: nonfinite(file2) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer == 0
            PARALLAX-FILES-003: nonfinite(file2) at logits, outside the layers == 0
            PARALLAX-FILES-004: max_abs(file2, file1) at embed, outside the layers == 0 [identical weights]
            PARALLAX-FILES-005: max_abs(file2, file1) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer == 0 [identical weights]
            PARALLAX-FILES-006: max_abs(file2, file1) at final_norm, outside the layers == 0 [identical weights]
            PARALLAX-FILES-007: kld_mean(file2, file1) on the logits == 0 [identical weights]
            PARALLAX-FILES-008: kld_mean(file2, file1) on the logits ≥ 0 [measured]
            PARALLAX-FILES-009: kld_p99(file2, file1) on the logits ≥ 0 [measured]
            PARALLAX-FILES-010: same_top1(file2, file1) on the logits ≥ 0 [measured]
        "#]].assert_eq(&text);
        assert_eq!(file_paths("f32"), ("f32".into(), "f32@2".into()));
        assert_eq!(file_paths("q8@2"), ("q8@2".into(), "q8".into()));
    }

    #[test]
    fn paths_may_name_a_file_and_tests_may_require_identical_weights() {
        let yaml = |extra: &str, prediction: &str| {
            format!("falsification_tests:\n- id: T\n  rule: r\n{extra}  prediction: |\n    {prediction}\n")
        };
        let c = Contract::from_yaml_str(&yaml(
            "  requires: identical_weights\n  measured: true\n",
            "kld_mean(q8.logits, q8@2.logits) ≤ 0.01",
        ))
        .unwrap();
        assert_eq!(c.tests[0].requires, Some(Requirement::IdenticalWeights));
        assert!(c.tests[0].measured);
        assert_eq!(c.tests[0].check.to_string(), "kld_mean(q8@2, q8) on the logits ≤ 0.01");
        let err = Contract::from_yaml_str(&yaml(
            "  requires: same_vibes\n",
            "kl(f32.logits, q8.logits) ≤ 1",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "T: `requires: same_vibes` is not a requirement Parallax knows (identical_weights)"
        );
    }
}
