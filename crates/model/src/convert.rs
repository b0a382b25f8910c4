//! GGUF → APR conversion, the way upstream's `apr import` does it (apr-cli 0.72.3, checked
//! against `../shared/fixtures/apr/tiny-qwen2.f32.apr`).
//!
//! Two variants:
//! - [`AprVariant::F32`] (`apr import`): every tensor dequantized to F32, HF-style names
//!   (`model.layers.0.mlp.up_proj.weight`, `lm_head.weight`), flags 0x0400, CRC footer.
//! - [`AprVariant::Quantized`] (`apr import --preserve-q4k`): GGUF names kept, GGML bytes copied
//!   with the GGML type id as dtype (Q4_K = 12, Q6_K = 14, Q8_0 = 8, F32 = 0, ...), flags 0x0020,
//!   no footer.
//!
//! Both carry the same JSON metadata shape: upstream's metadata struct (`model_type`, `name`,
//! `license`, `data_source`, `data_license`, `total_size`, `param_count`, the hyperparameters),
//! then `tensor_shapes` and the tokenizer under `tokenizer.*` keys. Upstream fills the last part
//! from a `HashMap`, so its key order differs from run to run; ours is fixed.

use std::collections::BTreeMap;

use parallax_apr::{AprWriter, TensorType, FLAG_QUANTIZED, FLAG_ROW_MAJOR};
use parallax_gguf::{GgufFile, MetaArray};
use parallax_quant::GgmlType;
use parallax_source::ByteSource;
use serde_json::Value;

use crate::names::{LayerTensor, Param, Role};
use crate::ModelError;

/// Which of upstream's two import paths to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AprVariant {
    /// `apr import`: F32, HF names, row-major flag, CRC footer.
    F32,
    /// `apr import --preserve-q4k`: GGML bytes, GGUF names, quantized flag, no footer.
    Quantized,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    pub variant: AprVariant,
    /// The metadata `name`: upstream writes the output file's stem (`tiny-qwen2.f32`).
    pub name: String,
    /// The metadata `model_type`: upstream writes its `--arch` option, `Auto` by default.
    pub model_type: String,
}

impl ConvertOptions {
    pub fn new(variant: AprVariant, name: impl Into<String>) -> Self {
        ConvertOptions { variant, name: name.into(), model_type: "Auto".to_string() }
    }
}

/// One tensor on its way into the APR file.
struct Planned<'a> {
    name: String,
    source: &'a parallax_gguf::TensorInfo,
}

/// Convert the GGUF `gguf` (read from `source`) into an APR writer; call
/// [`AprWriter::write`] or [`AprWriter::write_to`] on the result. Tensor payloads are read (and,
/// for [`AprVariant::F32`], dequantized) one at a time and held by the writer.
pub fn gguf_to_apr<S: ByteSource + ?Sized>(
    gguf: &GgufFile,
    source: &S,
    options: &ConvertOptions,
) -> Result<AprWriter, ModelError> {
    let arch = gguf.get_str("general.architecture").unwrap_or("").to_string();

    // Names in the APR file, sorted (the APR index is sorted by name).
    let mut planned: BTreeMap<String, Planned> = BTreeMap::new();
    for t in gguf.tensors() {
        let name = match options.variant {
            AprVariant::Quantized => t.name.clone(),
            AprVariant::F32 => hf_name(&t.name, &arch).unwrap_or_else(|| t.name.clone()),
        };
        planned.insert(name.clone(), Planned { name, source: t });
    }
    // Tied embeddings: upstream stores an explicit lm_head copied from the token embedding.
    let has_output = planned.keys().any(|k| k == "lm_head.weight" || k == "output.weight");
    let mut tied = false;
    if !has_output {
        let embed =
            planned.values().find(|p| p.source.name == "token_embd.weight").map(|p| p.source);
        if let Some(embed) = embed {
            planned.insert(
                "lm_head.weight".into(),
                Planned { name: "lm_head.weight".into(), source: embed },
            );
            tied = true;
        }
    }

    let param_count: u64 = planned.values().map(|p| p.source.n_elements).sum();
    let shapes: serde_json::Map<String, Value> =
        planned.values().map(|p| (p.name.clone(), Value::from(apr_dims(p.source)))).collect();

    let meta = match options.variant {
        AprVariant::F32 => {
            let mut meta = Ordered::default();
            meta.push("model_type", Value::from(options.model_type.clone()));
            meta.push("name", Value::from(options.name.clone()));
            meta.push("license", Value::Null);
            meta.push("data_source", Value::Null);
            meta.push("data_license", Value::Null);
            meta.push("total_size", Value::from(0));
            meta.push("param_count", Value::from(param_count));
            for (key, json) in &model_config(gguf, &arch) {
                meta.push_json(key, json.clone());
            }
            meta.push("tensor_shapes", Value::Object(shapes));
            if tied {
                meta.push("tied_embeddings", Value::Bool(true));
            }
            tokenizer_metadata(gguf, &arch, options.variant, &mut meta);
            meta
        }
        AprVariant::Quantized => quantized_metadata(gguf, &arch),
    };
    let (flags, footer) = match options.variant {
        AprVariant::F32 => (FLAG_ROW_MAJOR, true),
        AprVariant::Quantized => (FLAG_QUANTIZED, false),
    };
    let mut writer = AprWriter::new(flags).with_footer(footer);
    writer.set_metadata_json(meta.to_json()).map_err(ModelError::Apr)?;

    for p in planned.values() {
        let t = p.source;
        let bytes = gguf.tensor_bytes(source, t).map_err(ModelError::Gguf)?;
        let dims = apr_dims(t);
        match options.variant {
            AprVariant::Quantized => {
                writer
                    .add_tensor(&p.name, TensorType::Ggml(t.ty), dims, bytes)
                    .map_err(ModelError::Apr)?;
            }
            AprVariant::F32 => {
                if !t.ty.is_dequantizable() {
                    return Err(ModelError::Unsupported {
                        tensor: t.name.clone(),
                        ty: t.ty.name().into(),
                    });
                }
                let n = usize::try_from(t.n_elements).map_err(|_| ModelError::Unsupported {
                    tensor: t.name.clone(),
                    ty: "too many values".into(),
                })?;
                let mut values = vec![0f32; n];
                parallax_quant::dequantize(t.ty, &bytes, &mut values)
                    .map_err(|error| ModelError::Quant { tensor: t.name.clone(), error })?;
                drop(bytes);
                let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                writer
                    .add_tensor(&p.name, TensorType::Ggml(GgmlType::F32), dims, f32_bytes)
                    .map_err(ModelError::Apr)?;
            }
        }
    }
    Ok(writer)
}

/// APR dims: row-major, outermost first — the GGUF `ne` reversed. The bytes need no transpose.
fn apr_dims(t: &parallax_gguf::TensorInfo) -> Vec<u64> {
    t.dims.iter().rev().copied().collect()
}

/// The HF-style name upstream's plain import gives a GGUF tensor (Llama/Qwen layout; Gemma's
/// extra norms follow its HF names). `None` keeps the GGUF name.
fn hf_name(gguf_name: &str, arch: &str) -> Option<String> {
    let role = Role::from_name(gguf_name, arch)?;
    Some(match role {
        Role::TokenEmbd => "model.embed_tokens.weight".into(),
        Role::Output => "lm_head.weight".into(),
        Role::OutputNorm => "model.norm.weight".into(),
        Role::RopeFreqs => return None,
        Role::Layer { layer, kind, param } => {
            let gemma = arch.starts_with("gemma");
            use LayerTensor::*;
            let module = match kind {
                AttnNorm => "input_layernorm",
                AttnQ => "self_attn.q_proj",
                AttnK => "self_attn.k_proj",
                AttnV => "self_attn.v_proj",
                AttnOutput => "self_attn.o_proj",
                AttnQNorm => "self_attn.q_norm",
                AttnKNorm => "self_attn.k_norm",
                PostAttentionNorm => "post_attention_layernorm",
                FfnNorm if gemma => "pre_feedforward_layernorm",
                FfnNorm => "post_attention_layernorm",
                FfnGate => "mlp.gate_proj",
                FfnUp => "mlp.up_proj",
                FfnDown => "mlp.down_proj",
                PostFfwNorm => "post_feedforward_layernorm",
            };
            let param = match param {
                Param::Weight => "weight",
                Param::Bias => "bias",
            };
            format!("model.layers.{layer}.{module}.{param}")
        }
    })
}

/// Architectures whose RoPE rotates halves (llama.cpp's `LLAMA_ROPE_TYPE_NEOX`).
fn rope_type(arch: &str) -> u64 {
    const NEOX: &[&str] = &[
        "qwen",
        "qwen2",
        "qwen2moe",
        "qwen3",
        "qwen3moe",
        "phi2",
        "phi3",
        "gemma",
        "gemma2",
        "gemma3",
        "stablelm",
        "gptneox",
        "starcoder2",
        "falcon",
        "olmo2",
        "bert",
        "nomic-bert",
    ];
    if NEOX.contains(&arch) {
        2
    } else {
        0
    }
}

/// The metadata of upstream's `apr import --preserve-q4k` (0.72.3), key for key as in
/// `shared/fixtures/apr/tiny-qwen2.raw.apr`: HF-style config names, floats as the f64 value of
/// the f32 (`9.999999974752427e-7`), a fixed `quantization` record and the tokenizer.
fn quantized_metadata(gguf: &GgufFile, arch: &str) -> Ordered {
    let mut meta = Ordered::default();
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| gguf.get_u64(&key(k));
    let f = |k: &str| {
        gguf.get_f32(&key(k))
            .and_then(|v| serde_json::Number::from_f64(v as f64))
            .map(Value::Number)
    };
    let vocab =
        u("vocab_size").or_else(|| gguf.get_arr("tokenizer.ggml.tokens").map(|a| a.len() as u64));
    meta.push("model_type", Value::from("transformer_lm_q4k"));
    if !arch.is_empty() {
        meta.push("architecture", Value::from(arch));
    }
    let entries = [
        ("hidden_size", u("embedding_length").map(Value::from)),
        ("num_hidden_layers", u("block_count").map(Value::from)),
        ("num_attention_heads", u("attention.head_count").map(Value::from)),
        ("num_key_value_heads", u("attention.head_count_kv").map(Value::from)),
        ("vocab_size", vocab.map(Value::from)),
        ("intermediate_size", u("feed_forward_length").map(Value::from)),
        ("max_position_embeddings", u("context_length").map(Value::from)),
        ("rope_theta", f("rope.freq_base")),
        ("rope_type", Some(Value::from(rope_type(arch)))),
        ("rms_norm_eps", f("attention.layer_norm_rms_epsilon")),
    ];
    for (k, v) in entries {
        if let Some(v) = v {
            meta.push(k, v);
        }
    }
    meta.push(
        "quantization",
        serde_json::json!({"quant_type": "Q4_K", "bits": 4, "block_size": 256, "symmetric": true}),
    );
    if let Some(tokens) = gguf.get_str_arr("tokenizer.ggml.tokens").filter(|v| !v.is_empty()) {
        meta.push("tokenizer.vocab_size", Value::from(tokens.len()));
        meta.push("tokenizer.vocabulary", Value::from(tokens.to_vec()));
    }
    if let Some(merges) = gguf.get_str_arr("tokenizer.ggml.merges").filter(|v| !v.is_empty()) {
        meta.push("tokenizer.merges", Value::from(merges.to_vec()));
    }
    for (from, to) in [
        ("tokenizer.ggml.bos_token_id", "tokenizer.bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "tokenizer.eos_token_id"),
    ] {
        if let Some(id) = gguf.get_u64(from) {
            meta.push(to, Value::from(id));
        }
    }
    if let Some(t) = gguf.get_str("tokenizer.chat_template") {
        meta.push("chat_template", Value::from(t));
    }
    if let Some(model) = gguf.get_str("tokenizer.ggml.model") {
        meta.push("tokenizer.model", Value::from(model));
    }
    meta
}

/// The hyperparameters in upstream's metadata order, present ones only, as JSON text. Floats
/// are printed as f32 (upstream's struct holds f32): `1e-6` prints `0.000001`, which no
/// `serde_json::Value` (f64 inside) would reproduce.
fn model_config(gguf: &GgufFile, arch: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if arch.is_empty() {
        return out;
    }
    let key = |k: &str| format!("{arch}.{k}");
    // serde_json always serializes integers, strings and f32s.
    let int = |v: u64| serde_json::to_vec(&v).unwrap_or_default();
    let float = |v: f32| serde_json::to_vec(&v).unwrap_or_default();
    let u = |k: &str| gguf.get_u64(&key(k)).map(int);
    let vocab = gguf
        .get_u64(&key("vocab_size"))
        .or_else(|| gguf.get_arr("tokenizer.ggml.tokens").map(|a| a.len() as u64));
    let entries: [(&str, Option<Vec<u8>>); 12] = [
        ("architecture", serde_json::to_vec(arch).ok()),
        ("hidden_size", u("embedding_length")),
        ("num_layers", u("block_count")),
        ("num_heads", u("attention.head_count")),
        ("num_kv_heads", u("attention.head_count_kv")),
        ("vocab_size", vocab.map(int)),
        ("intermediate_size", u("feed_forward_length")),
        ("max_position_embeddings", u("context_length")),
        ("rope_theta", gguf.get_f32(&key("rope.freq_base")).map(float)),
        ("rope_type", Some(int(rope_type(arch)))),
        ("rms_norm_eps", gguf.get_f32(&key("attention.layer_norm_rms_epsilon")).map(float)),
        ("head_dim", u("attention.key_length")),
    ];
    for (k, v) in entries {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    }
    out
}

/// The tokenizer under `tokenizer.*` keys, as upstream's two import paths name them.
fn tokenizer_metadata(gguf: &GgufFile, arch: &str, variant: AprVariant, meta: &mut Ordered) {
    let strs = |k: &str| gguf.get_str_arr(k).filter(|v| !v.is_empty());
    if let Some(tokens) = strs("tokenizer.ggml.tokens") {
        meta.push("tokenizer.vocabulary", Value::from(tokens.to_vec()));
        meta.push("tokenizer.vocab_size", Value::from(tokens.len()));
    }
    if let Some(model) = gguf.get_str("tokenizer.ggml.model") {
        let key = match variant {
            AprVariant::F32 => "tokenizer.model_type",
            AprVariant::Quantized => "tokenizer.model",
        };
        meta.push(key, Value::from(model));
    }
    for (from, to) in [
        ("tokenizer.ggml.bos_token_id", "tokenizer.bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "tokenizer.eos_token_id"),
    ] {
        if let Some(id) = gguf.get_u64(from) {
            meta.push(to, Value::from(id));
        }
    }
    if let Some(pre) = gguf.get_str("tokenizer.ggml.pre") {
        meta.push("tokenizer.pre_type", Value::from(pre));
    }
    if variant == AprVariant::F32 {
        if !arch.is_empty() {
            meta.push("tokenizer.architecture", Value::from(arch));
        }
        if let Some(name) = gguf.get_str("general.name") {
            meta.push("tokenizer.model_name", Value::from(name));
        }
    }
    if let Some(merges) = strs("tokenizer.ggml.merges") {
        meta.push("tokenizer.merges", Value::from(merges.to_vec()));
    }
    if let Some(MetaArray::F32(scores)) = gguf.get_arr("tokenizer.ggml.scores") {
        if !scores.is_empty() {
            let values: Vec<Value> = scores
                .iter()
                .filter_map(|&s| serde_json::Number::from_f64(s as f64).map(Value::Number))
                .collect();
            meta.push("tokenizer.scores", Value::Array(values));
        }
    }
    if variant == AprVariant::Quantized {
        if let Some(types) = gguf.get_arr("tokenizer.ggml.token_type").and_then(MetaArray::to_i64s)
        {
            if !types.is_empty() {
                meta.push("tokenizer.token_type", Value::from(types));
            }
        }
        if let Some(id) = gguf.get_u64("tokenizer.ggml.padding_token_id") {
            meta.push("tokenizer.padding_token_id", Value::from(id));
        }
        if let Some(b) = gguf.get_bool("tokenizer.ggml.add_bos_token") {
            meta.push("tokenizer.add_bos_token", Value::Bool(b));
        }
        if let Some(t) = gguf.get_str("tokenizer.chat_template") {
            meta.push("tokenizer.chat_template", Value::from(t));
        }
    }
}

/// A JSON object written in insertion order (`serde_json::Map` sorts its keys).
#[derive(Default)]
struct Ordered(Vec<(String, Vec<u8>)>);

impl Ordered {
    fn push(&mut self, key: &str, value: Value) {
        // A Value always serializes.
        self.push_json(key, serde_json::to_vec(&value).unwrap_or_default());
    }
    fn push_json(&mut self, key: &str, json: Vec<u8>) {
        self.0.push((key.to_string(), json));
    }
    fn to_json(&self) -> Vec<u8> {
        let mut out = b"{".to_vec();
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend(serde_json::to_vec(k).unwrap_or_default());
            out.push(b':');
            out.extend(v);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_apr::AprFile;
    use parallax_source::{FileSource, MemorySource};
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/apr").join(name)
    }

    fn convert(variant: AprVariant, name: &str) -> Vec<u8> {
        let src =
            FileSource::open(fixture("tiny-qwen2.gguf")).expect("shared fixture tiny-qwen2.gguf");
        let gguf = GgufFile::read(&src).unwrap();
        gguf_to_apr(&gguf, &src, &ConvertOptions::new(variant, name)).unwrap().write().unwrap()
    }

    /// Our F32 conversion equals upstream's file except for the metadata key order (upstream's
    /// comes from a HashMap) and so the footer CRC: same length, same header, same index, same
    /// payloads, same metadata as JSON.
    #[test]
    fn f32_conversion_matches_upstream_fixture() {
        let ours = convert(AprVariant::F32, "tiny-qwen2.f32");
        let theirs = std::fs::read(fixture("tiny-qwen2.f32.apr")).unwrap();
        assert_eq!(ours.len(), theirs.len());
        let a = AprFile::open(MemorySource::new(ours.clone())).unwrap();
        let b = AprFile::open(MemorySource::new(theirs.clone())).unwrap();
        assert_eq!(a.header(), b.header(), "header, including its CRC");
        assert_eq!(a.metadata(), b.metadata(), "metadata as JSON");
        assert_eq!(a.metadata_json().len(), b.metadata_json().len());
        let data = a.header().data_offset as usize;
        let index = a.header().tensor_index_offset as usize;
        assert_eq!(ours[index..data], theirs[index..data], "tensor index");
        assert_eq!(ours[data..ours.len() - 4], theirs[data..theirs.len() - 4], "payloads");
        assert_eq!(a.verify_footer().unwrap(), a.footer_crc());
    }

    #[test]
    fn quantized_conversion_copies_gguf_bytes() {
        let ours = convert(AprVariant::Quantized, "tiny-qwen2.raw");
        let file = AprFile::open(MemorySource::new(ours)).unwrap();
        assert_eq!(file.flags(), FLAG_QUANTIZED);
        assert_eq!(file.footer_crc(), None);
        let src = FileSource::open(fixture("tiny-qwen2.gguf")).unwrap();
        let gguf = GgufFile::read(&src).unwrap();
        assert_eq!(file.tensors().len(), gguf.tensors().len());
        for t in gguf.tensors() {
            let a = file.tensor(&t.name).unwrap();
            assert_eq!(a.dtype, TensorType::Ggml(t.ty), "{}", t.name);
            assert_eq!(a.dtype_id as u32, t.ty.id(), "{}", t.name);
            assert_eq!(a.ne(), t.dims, "{}", t.name);
            assert_eq!(
                file.tensor_bytes(&t.name).unwrap(),
                gguf.tensor_bytes(&src, t).unwrap(),
                "{}",
                t.name
            );
        }
        let h = file.hyperparameters().unwrap();
        assert_eq!((h.num_layers, h.num_heads, h.num_kv_heads), (Some(2), Some(4), Some(2)));
        assert_eq!(file.metadata()["tokenizer.model"], "gpt2");

        // Against upstream's own `apr import --preserve-q4k` output of the same GGUF: the same
        // index (names, GGML ids, dims) and the same payload bytes.
        let theirs =
            AprFile::open(FileSource::open(fixture("tiny-qwen2.raw.apr")).unwrap()).unwrap();
        assert_eq!(theirs.flags(), file.flags());
        assert_eq!(theirs.tensors().len(), file.tensors().len());
        for (a, b) in file.tensors().iter().zip(theirs.tensors()) {
            assert_eq!((&a.name, a.dtype_id, &a.dims), (&b.name, b.dtype_id, &b.dims));
            assert_eq!(
                file.tensor_bytes(&a.name).unwrap(),
                theirs.tensor_bytes(&b.name).unwrap(),
                "{}",
                a.name
            );
        }
        assert_eq!(file.metadata(), theirs.metadata(), "metadata equals upstream's (as JSON)");
        // Same bytes too, except for key order where upstream iterates a HashMap.
        assert_eq!(file.metadata_json().len(), theirs.metadata_json().len());
        // Every byte outside the metadata JSON (whose key order upstream leaves to a HashMap) is
        // upstream's: header with its CRC, index, payloads, padding.
        let theirs_bytes = std::fs::read(fixture("tiny-qwen2.raw.apr")).unwrap();
        let ours_bytes = file.source().bytes();
        assert_eq!(ours_bytes.len(), theirs_bytes.len());
        let meta = file.header().metadata_offset as usize
            ..(file.header().metadata_offset as usize + file.header().metadata_size as usize);
        let outside_meta_differs =
            (0..ours_bytes.len()).find(|i| !meta.contains(i) && ours_bytes[*i] != theirs_bytes[*i]);
        assert_eq!(
            outside_meta_differs, None,
            "first byte differing from upstream outside the metadata"
        );
    }

    #[test]
    fn hf_names_round_trip_through_roles() {
        for (gguf, hf) in [
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
            ("blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"),
            ("output.weight", "lm_head.weight"),
        ] {
            assert_eq!(hf_name(gguf, "qwen2").as_deref(), Some(hf));
            assert_eq!(Role::from_name(hf, "qwen2"), Role::from_name(gguf, "qwen2"));
        }
        assert_eq!(
            hf_name("blk.1.ffn_norm.weight", "gemma3").as_deref(),
            Some("model.layers.1.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            Role::from_name("model.layers.1.pre_feedforward_layernorm.weight", "gemma3"),
            Role::from_name("blk.1.ffn_norm.weight", "gemma3")
        );
        assert_eq!(hf_name("some.other.tensor", "qwen2"), None);
    }
}
