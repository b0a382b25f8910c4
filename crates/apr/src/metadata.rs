//! The model hyperparameters in an APR file's JSON metadata.
//!
//! Writers disagree on key names: upstream's metadata struct writes `num_layers`, `num_heads`,
//! `num_kv_heads`; HF-style configs say `num_hidden_layers`, `num_attention_heads`,
//! `num_key_value_heads`; upstream's quantized import also writes `model.*` copies. Every alias
//! is read, and aliases that are present must agree.

use serde_json::{Map, Value};

use crate::error::{AprError, AprErrorKind};

/// Hyperparameters found in the metadata; `None` where no alias is present (or it is `null`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hyperparameters {
    pub architecture: Option<String>,
    pub hidden_size: Option<u64>,
    pub num_layers: Option<u64>,
    pub num_heads: Option<u64>,
    pub num_kv_heads: Option<u64>,
    pub vocab_size: Option<u64>,
    pub intermediate_size: Option<u64>,
    pub max_position_embeddings: Option<u64>,
    pub head_dim: Option<u64>,
    pub rope_theta: Option<f32>,
    /// 0 = NORM (adjacent pairs), 2 = NEOX (rotate halves).
    pub rope_type: Option<u64>,
    pub rms_norm_eps: Option<f32>,
}

impl Hyperparameters {
    /// Read the hyperparameters of a metadata object.
    pub fn from_metadata(meta: &Map<String, Value>) -> Result<Hyperparameters, AprError> {
        let int = |keys: &[&str]| one_of(meta, keys, |v| v.as_u64(), "a non-negative integer");
        let float = |keys: &[&str]| {
            // f64 -> f32 rounds to nearest: "0.000001" gives the same f32 as GGUF's 1e-6.
            one_of(meta, keys, |v| v.as_f64().map(|x| x as f32), "a number")
        };
        Ok(Hyperparameters {
            architecture: one_of(
                meta,
                &["architecture", "model.architecture"],
                |v| v.as_str().map(str::to_string),
                "a string",
            )?,
            hidden_size: int(&["hidden_size", "model.hidden_size"])?,
            num_layers: int(&["num_hidden_layers", "num_layers", "model.num_layers"])?,
            num_heads: int(&["num_attention_heads", "num_heads", "model.num_heads"])?,
            num_kv_heads: int(&["num_key_value_heads", "num_kv_heads", "model.num_kv_heads"])?,
            vocab_size: int(&["vocab_size", "model.vocab_size"])?,
            intermediate_size: int(&["intermediate_size", "model.intermediate_size"])?,
            max_position_embeddings: int(&[
                "max_position_embeddings",
                "model.max_position_embeddings",
            ])?,
            head_dim: int(&["head_dim", "model.head_dim"])?,
            rope_theta: float(&["rope_theta", "model.rope_theta"])?,
            rope_type: int(&["rope_type", "model.rope_type"])?,
            rms_norm_eps: float(&["rms_norm_eps", "model.rms_norm_eps"])?,
        })
    }
}

/// The value of the first present alias in `keys`, after checking that every present alias
/// converts and agrees with it.
fn one_of<T: PartialEq + std::fmt::Debug>(
    meta: &Map<String, Value>,
    keys: &[&str],
    convert: impl Fn(&Value) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, AprError> {
    let mut found: Option<(&str, T)> = None;
    for &key in keys {
        let Some(v) = meta.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(x) = convert(v) else {
            return Err(AprError::nowhere(AprErrorKind::BadHyperparameter {
                key: key.to_string(),
                message: format!("expected {expected}, found {v}"),
            }));
        };
        match &found {
            Some((first, y)) if *y != x => {
                return Err(AprError::nowhere(AprErrorKind::BadHyperparameter {
                    key: key.to_string(),
                    message: format!("{x:?} disagrees with \"{first}\" = {y:?}"),
                }))
            }
            Some(_) => {}
            None => found = Some((key, x)),
        }
    }
    Ok(found.map(|(_, x)| x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn aliases_are_read_and_must_agree() {
        let h = Hyperparameters::from_metadata(&meta(
            r#"{"num_hidden_layers":24,"num_attention_heads":14,"num_kv_heads":2,"model.num_kv_heads":2,
                "rms_norm_eps":0.000001,"rope_theta":1000000.0,"license":null,"head_dim":null}"#,
        ))
        .unwrap();
        assert_eq!(h.num_layers, Some(24));
        assert_eq!(h.num_heads, Some(14));
        assert_eq!(h.num_kv_heads, Some(2));
        assert_eq!(h.rms_norm_eps, Some(1e-6f32));
        assert_eq!(h.rope_theta, Some(1e6));
        assert_eq!(h.head_dim, None);
        assert_eq!(h.hidden_size, None);

        let e = Hyperparameters::from_metadata(&meta(r#"{"num_layers":2,"num_hidden_layers":3}"#))
            .unwrap_err();
        assert!(e.to_string().contains("disagrees"), "{e}");
        let e = Hyperparameters::from_metadata(&meta(r#"{"hidden_size":"256"}"#)).unwrap_err();
        assert!(e.to_string().contains("hidden_size"), "{e}");
        let e = Hyperparameters::from_metadata(&meta(r#"{"num_heads":-4}"#)).unwrap_err();
        assert!(matches!(e.kind(), AprErrorKind::BadHyperparameter { .. }));
    }
}
