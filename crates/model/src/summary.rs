//! The inspect summary: what `parallax inspect` prints and the page shows, as one serializable
//! value so both show the same thing.

use std::collections::BTreeMap;

use parallax_gguf::{MetaArray, MetaValue};
use parallax_source::ByteSource;
use serde::{Deserialize, Serialize};

use crate::{Model, TensorType};

/// Array elements shown before "… N more" unless a full summary is asked for.
const ARRAY_PREVIEW: usize = 8;
/// Characters of a string value shown before it is cut (chat templates run to kilobytes).
const STRING_PREVIEW: usize = 160;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSummary {
    pub file_name: String,
    pub file_bytes: u64,
    /// "GGUF v3", "APR v2.0".
    pub format: String,
    pub architecture: Option<String>,
    pub hyperparameters: Option<Hyperparameters>,
    pub metadata: Vec<MetaEntry>,
    pub type_histogram: Vec<TypeCount>,
    pub tensors: Vec<TensorSummary>,
}

/// One metadata key with its type and a display form of its value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetaEntry {
    pub key: String,
    /// `u32`, `string`, `array<string>[151936]`, `json object`, …
    pub value_type: String,
    /// The value, previewed (see [`crate::Model::summary_full`] for everything).
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TypeCount {
    pub ty: String,
    pub tensors: u64,
    pub elements: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorSummary {
    pub name: String,
    /// Canonical GGUF name of the tensor's role, when known.
    pub role: Option<String>,
    pub ty: String,
    /// ggml shape, `ne0` first.
    pub ne: Vec<u64>,
    pub offset: u64,
    pub bytes: u64,
}

/// The architecture's shape as far as the metadata tells it. Missing keys stay `None`; the
/// engine decides which it needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Hyperparameters {
    pub n_layers: Option<u64>,
    pub n_embd: Option<u64>,
    pub n_head: Option<u64>,
    pub n_head_kv: Option<u64>,
    pub head_dim: Option<u64>,
    pub n_ff: Option<u64>,
    pub n_vocab: Option<u64>,
    pub n_ctx: Option<u64>,
    pub rope_theta: Option<f32>,
    pub rms_eps: Option<f32>,
    pub sliding_window: Option<u64>,
    /// RoPE scaling (`{arch}.rope.scaling.type`: "linear", "yarn", …) and its factor
    /// (`{arch}.rope.scaling.factor`), GGUF only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling_factor: Option<f32>,
}

impl Hyperparameters {
    /// `(label, value)` pairs for the present fields, in a fixed order.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut int = |label: &str, v: Option<u64>| {
            if let Some(v) = v {
                out.push((label.to_string(), v.to_string()));
            }
        };
        int("layers", self.n_layers);
        int("hidden", self.n_embd);
        int("heads", self.n_head);
        int("kv heads", self.n_head_kv);
        int("head dim", self.head_dim);
        int("ffn", self.n_ff);
        int("vocab", self.n_vocab);
        int("context", self.n_ctx);
        int("sliding win", self.sliding_window);
        if let Some(t) = self.rope_theta {
            out.push(("rope theta".into(), t.to_string()));
        }
        if let Some(e) = self.rms_eps {
            out.push(("rms eps".into(), e.to_string()));
        }
        out
    }
}

pub(crate) fn hyperparameters<S: ByteSource>(model: &Model<S>) -> Hyperparameters {
    if let Some(file) = model.gguf() {
        let arch = model.architecture().unwrap_or("");
        let u = |k: &str| file.get_u64(&format!("{arch}.{k}"));
        let f = |k: &str| file.get_f32(&format!("{arch}.{k}"));
        let n_embd = u("embedding_length");
        let n_head = u("attention.head_count");
        let n_vocab = u("vocab_size")
            .or_else(|| file.get_arr("tokenizer.ggml.tokens").map(|a| a.len() as u64))
            .or_else(|| model.tensor("token_embd.weight").and_then(|t| t.ne.get(1).copied()));
        return Hyperparameters {
            n_layers: u("block_count"),
            n_embd,
            n_head,
            n_head_kv: u("attention.head_count_kv").or(n_head),
            head_dim: u("attention.key_length")
                .or_else(|| Some(n_embd? / n_head.filter(|h| *h > 0)?)),
            n_ff: u("feed_forward_length"),
            n_vocab,
            n_ctx: u("context_length"),
            rope_theta: f("rope.freq_base"),
            rms_eps: f("attention.layer_norm_rms_epsilon"),
            sliding_window: u("attention.sliding_window"),
            rope_scaling_type: file
                .get_str(&format!("{arch}.rope.scaling.type"))
                .map(str::to_string),
            rope_scaling_factor: f("rope.scaling.factor"),
        };
    }
    if let Some(file) = model.apr() {
        if let Ok(h) = file.hyperparameters() {
            return Hyperparameters {
                n_layers: h.num_layers,
                n_embd: h.hidden_size,
                n_head: h.num_heads,
                n_head_kv: h.num_kv_heads.or(h.num_heads),
                head_dim: h
                    .head_dim
                    .or_else(|| Some(h.hidden_size? / h.num_heads.filter(|n| *n > 0)?)),
                n_ff: h.intermediate_size,
                n_vocab: h.vocab_size,
                n_ctx: h.max_position_embeddings,
                rope_theta: h.rope_theta,
                rms_eps: h.rms_norm_eps,
                sliding_window: None,
                rope_scaling_type: None,
                rope_scaling_factor: None,
            };
        }
    }
    Hyperparameters::default()
}

pub(crate) fn summarize<S: ByteSource>(model: &Model<S>, full: bool) -> ModelSummary {
    let metadata = if let Some(file) = model.gguf() {
        file.metadata()
            .iter()
            .map(|(key, value)| MetaEntry {
                key: key.clone(),
                value_type: gguf_type(value),
                value: decoded(key, value, gguf_value(value, full)),
            })
            .collect()
    } else if let Some(file) = model.apr() {
        file.metadata()
            .iter()
            .map(|(key, value)| MetaEntry {
                key: key.clone(),
                value_type: json_type(value),
                value: json_value(value, full),
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut histogram: BTreeMap<String, TypeCount> = BTreeMap::new();
    for t in model.tensors() {
        let e = histogram.entry(t.ty.name().to_string()).or_insert_with(|| TypeCount {
            ty: t.ty.name().to_string(),
            tensors: 0,
            elements: 0,
            bytes: 0,
        });
        e.tensors += 1;
        e.elements += t.n_elements();
        e.bytes += t.n_bytes;
    }
    let mut type_histogram: Vec<TypeCount> = histogram.into_values().collect();
    type_histogram.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.ty.cmp(&b.ty)));

    let hyper = hyperparameters(model);
    ModelSummary {
        file_name: model.source().name(),
        file_bytes: model.source().len(),
        format: model.format().to_string(),
        architecture: model.architecture().map(str::to_string),
        hyperparameters: (hyper != Hyperparameters::default()).then_some(hyper),
        metadata,
        type_histogram,
        tensors: model
            .tensors()
            .iter()
            .map(|t| TensorSummary {
                name: t.name.clone(),
                role: t.role.map(|r| r.canonical_name()),
                ty: type_name(t.ty),
                ne: t.ne.clone(),
                offset: t.offset,
                bytes: t.n_bytes,
            })
            .collect(),
    }
}

/// A metadata enum with its name beside the number: `general.file_type` 15 is "15 (Q4_K_M)",
/// `{arch}.pooling_type` 1 is "1 (mean)". Other values as they are.
fn decoded(key: &str, value: &MetaValue, shown: String) -> String {
    let name = match (key, value.as_u64()) {
        ("general.file_type", Some(v)) => file_type_name(v),
        (k, Some(v)) if k.ends_with(".pooling_type") => match v {
            0 => Some("none"),
            1 => Some("mean"),
            2 => Some("cls"),
            3 => Some("last"),
            4 => Some("rank"),
            _ => None,
        },
        _ => None,
    };
    match name {
        Some(name) => format!("{shown} ({name})"),
        None => shown,
    }
}

/// llama.cpp's `llama_ftype` names (`LLAMA_FTYPE_MOSTLY_Q4_K_M` is 15): the recipe
/// llama-quantize was asked for, which names the file, not every tensor's type.
pub(crate) fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

fn type_name(t: TensorType) -> String {
    t.name().to_string()
}

fn gguf_type(v: &MetaValue) -> String {
    match v {
        MetaValue::Array(a) => array_type(a),
        other => other.value_type().name().to_string(),
    }
}

fn array_type(a: &MetaArray) -> String {
    let inner = match a {
        MetaArray::Array(items) => items.first().map(array_type).unwrap_or_else(|| "array".into()),
        other => other.elem_type().name().to_string(),
    };
    format!("array<{inner}>[{}]", a.len())
}

fn cut(s: &str, full: bool) -> String {
    if full || s.chars().count() <= STRING_PREVIEW {
        return s.to_string();
    }
    let head: String = s.chars().take(STRING_PREVIEW).collect();
    format!("{head}… ({} chars)", s.chars().count())
}

fn gguf_value(v: &MetaValue, full: bool) -> String {
    match v {
        MetaValue::String(s) => format!("{:?}", cut(s, full)),
        MetaValue::Array(a) => gguf_array(a, full),
        MetaValue::U8(x) => x.to_string(),
        MetaValue::I8(x) => x.to_string(),
        MetaValue::U16(x) => x.to_string(),
        MetaValue::I16(x) => x.to_string(),
        MetaValue::U32(x) => x.to_string(),
        MetaValue::I32(x) => x.to_string(),
        MetaValue::U64(x) => x.to_string(),
        MetaValue::I64(x) => x.to_string(),
        MetaValue::F32(x) => x.to_string(),
        MetaValue::F64(x) => x.to_string(),
        MetaValue::Bool(x) => x.to_string(),
    }
}

fn gguf_array(a: &MetaArray, full: bool) -> String {
    let n = a.len();
    let shown = if full { n } else { n.min(ARRAY_PREVIEW) };
    let items: Vec<String> = (0..shown)
        .filter_map(|i| match a {
            MetaArray::Array(inner) => inner.get(i).map(|x| gguf_array(x, full)),
            _ => a.get(i).map(|v| gguf_value(&v, full)),
        })
        .collect();
    let more = if shown < n { format!(", … {} more", n - shown) } else { String::new() };
    format!("[{}{more}]", items.join(", "))
}

fn json_type(v: &serde_json::Value) -> String {
    use serde_json::Value::*;
    match v {
        Null => "null".into(),
        Bool(_) => "bool".into(),
        Number(_) => "number".into(),
        String(_) => "string".into(),
        Array(a) => format!("array[{}]", a.len()),
        Object(o) => format!("object{{{}}}", o.len()),
    }
}

fn json_value(v: &serde_json::Value, full: bool) -> String {
    use serde_json::Value::*;
    match v {
        String(s) => format!("{:?}", cut(s, full)),
        Array(a) => {
            let shown = if full { a.len() } else { a.len().min(ARRAY_PREVIEW) };
            let items: Vec<std::string::String> =
                a.iter().take(shown).map(|x| json_value(x, full)).collect();
            let more = if shown < a.len() {
                format!(", … {} more", a.len() - shown)
            } else {
                std::string::String::new()
            };
            format!("[{}{more}]", items.join(", "))
        }
        Object(o) if !full && o.len() > ARRAY_PREVIEW => {
            let keys: Vec<&str> = o.keys().take(ARRAY_PREVIEW).map(|k| k.as_str()).collect();
            format!("{{{}, … {} more keys}}", keys.join(", "), o.len() - ARRAY_PREVIEW)
        }
        other => cut(&other.to_string(), full),
    }
}

/// `1.23 GiB`-style sizes for people.
/// A size as a person writes it: `1.5 GiB`, `1.5G`, `800M`, `800 MB`, `4096` (bytes). Units are
/// binary (K = KiB = 1024); `KB`/`MB`/`GB` are read as their binary twins too, since a budget is
/// an estimate. Refuses negative, non-finite and absurd (≥ 2^64) sizes with a sentence.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a size (try 1.5G, 800M or 4096)"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use K, M, G or T)")),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is too large a size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod parse_bytes_tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_units_and_bad_ones_are_refused() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("800M"), Ok(800 << 20));
        assert_eq!(parse_bytes(" 64 kb "), Ok(64 << 10));
        assert!(parse_bytes("-1G").unwrap_err().contains("not a size"));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("99999999999T").unwrap_err().contains("too large"));
        assert!(parse_bytes("").is_err());
    }
}

#[cfg(test)]
mod decoded_tests {
    use parallax_gguf::MetaValue;

    use super::decoded;

    #[test]
    fn metadata_enums_show_their_names() {
        let shown = |k: &str, v: MetaValue| decoded(k, &v, super::gguf_value(&v, false));
        assert_eq!(shown("general.file_type", MetaValue::U32(15)), "15 (Q4_K_M)");
        assert_eq!(shown("general.file_type", MetaValue::U32(30)), "30 (IQ4_XS)");
        // Numbers llama.cpp retired or never used stay bare; so does every other key.
        assert_eq!(shown("general.file_type", MetaValue::U32(33)), "33");
        assert_eq!(shown("bert.pooling_type", MetaValue::U32(1)), "1 (mean)");
        assert_eq!(shown("qwen2.block_count", MetaValue::U32(15)), "15");
    }
}
