//! Reading a contract: the subset of the `pv` YAML schema Parallax needs, each test's
//! prediction parsed into a check.

use serde::Deserialize;

use super::prediction::{parse_prediction, PredError};
use super::{Check, Contract, ContractError, ContractTest, Requirement};

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
    #[serde(default)]
    explained_by: Option<OneOrMany>,
    #[serde(default)]
    measured: Option<bool>,
    #[serde(default)]
    requires: Option<String>,
}

/// `explained_by: ID` or `explained_by: [ID, …]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
            let explained_by = match t.explained_by {
                None => Vec::new(),
                Some(OneOrMany::One(e)) => vec![e],
                Some(OneOrMany::Many(es)) => es,
            };
            let requires = match t.requires {
                None => None,
                Some(given) => Some(Requirement::parse(&given).ok_or_else(|| {
                    ContractError::Requirement { test: id.clone(), given: given.clone() }
                })?),
            };
            let measured = t.measured.unwrap_or(false);
            tests.push(ContractTest {
                id,
                rule,
                prediction,
                check,
                explained_by,
                measured,
                requires,
            });
        }
        for t in &tests {
            for e in &t.explained_by {
                let ok = tests.iter().any(|x| {
                    &x.id == e
                        && x.id != t.id
                        && x.explained_by.is_empty()
                        && !matches!(x.check, Check::NotMeasurable { .. })
                });
                if !ok {
                    return Err(ContractError::Explainer {
                        test: t.id.clone(),
                        explainer: e.clone(),
                    });
                }
            }
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
