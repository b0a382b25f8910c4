//! Whether two files describe the same network, so that their forward passes (or their weights)
//! can be compared value for value.
//!
//! Two files are compatible when a forward pass could not tell their structure apart: the same
//! architecture, the same hyperparameters, a tensor of the same shape for every role and the same
//! vocabulary. Tensor *types* may differ, and so may the container (GGUF against APR): comparing
//! a Q4_K file with its F32 source, or a GGUF with its `apr import`, is the point. Tensors are
//! paired by role, not by name (`blk.0.ffn_up.weight` in a GGUF is
//! `model.layers.0.mlp.up_proj.weight` in an APR), through [`counterpart`].

use std::fmt;

use parallax_gguf::StringArray;
use parallax_source::ByteSource;
use serde_json::Value;

use crate::{Hyperparameters, Model, Role, Tensor};

/// Relative tolerance for float hyperparameters: APR stores them as JSON numbers (f64 text) and
/// GGUF as f32, so the same value may arrive a rounding apart.
const FLOAT_TOLERANCE: f64 = 1e-6;

/// Which of the two files compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// The first difference between two files that a forward pass would see. Its `Display` is one
/// sentence naming it, with file A's value first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// `general.architecture` (GGUF) or `architecture` (APR); `None` when the file names none.
    Architecture { a: Option<String>, b: Option<String> },
    /// A hyperparameter a forward pass uses. `hyperparameter` says which, with its GGUF key;
    /// the values are written for people, `None` when the file does not set it.
    Hyperparameter { hyperparameter: &'static str, a: Option<String>, b: Option<String> },
    /// The tensors playing one role have different shapes. Shapes are written outermost first
    /// (the GGUF `ne` reversed: `ffn_up` of a 896-wide model with FFN 4864 is `[4864, 896]`).
    TensorShape { name_a: String, name_b: String, shape_a: Vec<u64>, shape_b: Vec<u64> },
    /// A tensor of one file (`present_in`) plays a role no tensor of the other file plays.
    MissingTensor { name: String, present_in: Side },
    /// The vocabularies hold different numbers of tokens (0 when a file carries none).
    VocabularySize { a: usize, b: usize },
    /// The first token id whose strings differ; `None` for an entry that is not a string.
    Token { id: usize, a: Option<String>, b: Option<String> },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unset = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".to_string());
        match self {
            Incompatibility::Architecture { a, b } => write!(
                f,
                "the files differ in architecture: {} in A, {} in B",
                or_unset(a),
                or_unset(b)
            ),
            Incompatibility::Hyperparameter { hyperparameter, a, b } => write!(
                f,
                "the files differ in the {hyperparameter}: {} in A, {} in B",
                or_unset(a),
                or_unset(b)
            ),
            Incompatibility::TensorShape { name_a, name_b, shape_a, shape_b } => {
                write!(f, "the files differ in {name_a}")?;
                if name_b != name_a {
                    write!(f, " ({name_b} in B)")?;
                }
                write!(f, ": {} in A, {} in B", shape_text(shape_a), shape_text(shape_b))
            }
            Incompatibility::MissingTensor { name, present_in } => {
                let other = match present_in {
                    Side::A => Side::B,
                    Side::B => Side::A,
                };
                write!(f, "the files differ in {name}: present in {present_in}, missing in {other}")
            }
            Incompatibility::VocabularySize { a, b } => {
                let tokens = |n: usize| match n {
                    0 => "none".to_string(),
                    n => format!("{n} tokens"),
                };
                write!(
                    f,
                    "the files differ in their vocabulary: {} in A, {} in B",
                    tokens(*a),
                    tokens(*b)
                )
            }
            Incompatibility::Token { id, a, b } => {
                let text = |v: &Option<String>| match v {
                    Some(s) => format!("{s:?}"),
                    None => "no string".to_string(),
                };
                write!(f, "the files differ in token {id}: {} in A, {} in B", text(a), text(b))
            }
        }
    }
}

impl std::error::Error for Incompatibility {}

/// `[4864, 896]` as `4864×896`.
fn shape_text(shape: &[u64]) -> String {
    shape.iter().map(u64::to_string).collect::<Vec<_>>().join("×")
}

/// Shape outermost first, from a tensor's ggml `ne` (innermost first).
fn shape_of(t: &Tensor) -> Vec<u64> {
    t.ne.iter().rev().copied().collect()
}

/// `Ok` when `a` and `b` are compatible (see the module documentation), else the first
/// difference: architecture, then hyperparameters, then tensors (`a`'s in file order, then any
/// only `b` has), then the vocabulary. Reads headers only, never a weight.
pub fn check_compatible<A: ByteSource, B: ByteSource>(
    a: &Model<A>,
    b: &Model<B>,
) -> Result<(), Incompatibility> {
    if a.architecture() != b.architecture() {
        return Err(Incompatibility::Architecture {
            a: a.architecture().map(str::to_string),
            b: b.architecture().map(str::to_string),
        });
    }
    check_hyperparameters(&a.hyperparameters(), &b.hyperparameters())?;
    check_tensors(a, b)?;
    check_vocabulary(&Vocabulary::of(a), &Vocabulary::of(b))
}

/// The tensor of `model` that plays the part `tensor` plays in another file: the tensor with the
/// same role, whatever either file names it; for the output head, the token embedding when
/// `model` has no head of its own (tied embeddings, as the engine reads them); for a tensor
/// Parallax has no role for, the tensor of the same name.
pub fn counterpart<'m, S: ByteSource>(model: &'m Model<S>, tensor: &Tensor) -> Option<&'m Tensor> {
    match tensor.role {
        Some(Role::Output) => {
            model.tensor_by_role(Role::Output).or_else(|| model.tensor_by_role(Role::TokenEmbd))
        }
        Some(role) => model.tensor_by_role(role),
        None => model.tensors().iter().find(|t| t.role.is_none() && t.name == tensor.name),
    }
}

fn check_hyperparameters(a: &Hyperparameters, b: &Hyperparameters) -> Result<(), Incompatibility> {
    let int = |hyperparameter, x: Option<u64>, y: Option<u64>| {
        if x == y {
            return Ok(());
        }
        let text = |v: Option<u64>| v.map(|v| v.to_string());
        Err(Incompatibility::Hyperparameter { hyperparameter, a: text(x), b: text(y) })
    };
    let float = |hyperparameter, x: Option<f32>, y: Option<f32>| {
        let same = match (x, y) {
            (Some(x), Some(y)) => {
                let (x, y) = (f64::from(x), f64::from(y));
                x == y || (x - y).abs() <= FLOAT_TOLERANCE * x.abs().max(y.abs())
            }
            (x, y) => x.is_none() && y.is_none(),
        };
        if same {
            return Ok(());
        }
        let text = |v: Option<f32>| v.map(|v| v.to_string());
        Err(Incompatibility::Hyperparameter { hyperparameter, a: text(x), b: text(y) })
    };
    int("layer count (block_count)", a.n_layers, b.n_layers)?;
    int("embedding width (embedding_length)", a.n_embd, b.n_embd)?;
    int("attention head count (attention.head_count)", a.n_head, b.n_head)?;
    int("KV head count (attention.head_count_kv)", a.n_head_kv, b.n_head_kv)?;
    int("head dimension (attention.key_length)", a.head_dim, b.head_dim)?;
    int("FFN width (feed_forward_length)", a.n_ff, b.n_ff)?;
    int("sliding window (attention.sliding_window)", a.sliding_window, b.sliding_window)?;
    float("RoPE base (rope.freq_base)", a.rope_theta, b.rope_theta)?;
    if a.rope_scaling_type != b.rope_scaling_type {
        return Err(Incompatibility::Hyperparameter {
            hyperparameter: "RoPE scaling (rope.scaling.type)",
            a: a.rope_scaling_type.clone(),
            b: b.rope_scaling_type.clone(),
        });
    }
    float(
        "RoPE scaling factor (rope.scaling.factor)",
        a.rope_scaling_factor,
        b.rope_scaling_factor,
    )?;
    float("RMS norm epsilon (attention.layer_norm_rms_epsilon)", a.rms_eps, b.rms_eps)
}

fn check_tensors<A: ByteSource, B: ByteSource>(
    a: &Model<A>,
    b: &Model<B>,
) -> Result<(), Incompatibility> {
    let shape_error = |ta: &Tensor, tb: &Tensor| Incompatibility::TensorShape {
        name_a: ta.name.clone(),
        name_b: tb.name.clone(),
        shape_a: shape_of(ta),
        shape_b: shape_of(tb),
    };
    for ta in a.tensors() {
        match counterpart(b, ta) {
            None => {
                return Err(Incompatibility::MissingTensor {
                    name: ta.name.clone(),
                    present_in: Side::A,
                })
            }
            Some(tb) if tb.ne != ta.ne => return Err(shape_error(ta, tb)),
            Some(_) => {}
        }
    }
    // A's tensors all have their counterpart; what is left is a role only B has, or B's own
    // output head against A's tied embedding.
    for tb in b.tensors() {
        match counterpart(a, tb) {
            None => {
                return Err(Incompatibility::MissingTensor {
                    name: tb.name.clone(),
                    present_in: Side::B,
                })
            }
            Some(ta) if ta.ne != tb.ne => return Err(shape_error(ta, tb)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// A file's token strings as stored, without copying them: GGUF `tokenizer.ggml.tokens`, APR
/// `tokenizer.vocabulary` (JSON values, whose non-strings read as `None`).
enum Vocabulary<'m> {
    Gguf(&'m StringArray),
    Apr(&'m [Value]),
}

impl<'m> Vocabulary<'m> {
    fn of<S: ByteSource>(model: &'m Model<S>) -> Vocabulary<'m> {
        if let Some(g) = model.gguf() {
            static NONE: StringArray = StringArray::new();
            return Vocabulary::Gguf(g.get_str_arr("tokenizer.ggml.tokens").unwrap_or(&NONE));
        }
        let apr = model.apr().and_then(|a| a.metadata().get("tokenizer.vocabulary"));
        Vocabulary::Apr(apr.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default())
    }

    fn len(&self) -> usize {
        match self {
            Vocabulary::Gguf(v) => v.len(),
            Vocabulary::Apr(v) => v.len(),
        }
    }

    fn token(&self, id: usize) -> Option<&'m str> {
        match self {
            Vocabulary::Gguf(v) => v.get(id),
            Vocabulary::Apr(v) => v.get(id).and_then(Value::as_str),
        }
    }
}

fn check_vocabulary(a: &Vocabulary, b: &Vocabulary) -> Result<(), Incompatibility> {
    if a.len() != b.len() {
        return Err(Incompatibility::VocabularySize { a: a.len(), b: b.len() });
    }
    match (0..a.len()).find(|&id| a.token(id) != b.token(id)) {
        Some(id) => Err(Incompatibility::Token {
            id,
            a: a.token(id).map(str::to_string),
            b: b.token(id).map(str::to_string),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{gguf_to_apr, AprVariant, ConvertOptions};
    use parallax_gguf::writer::GgufWriter;
    use parallax_gguf::{GgmlType, GgufFile, MetaValue};
    use parallax_source::MemorySource;

    /// A small qwen2-shaped file: what each test changes of it.
    #[derive(Clone)]
    struct Tiny {
        arch: &'static str,
        n_layers: u64,
        n_ff: u64,
        rope_theta: f32,
        rms_eps: Option<f32>,
        tokens: Vec<String>,
        /// No `output.weight`: the head is the token embedding.
        tied: bool,
        /// Type of the 2-D weights (values are zeros: no test here reads them).
        matrix_type: GgmlType,
        /// Rows of `blk.1.ffn_up.weight`, when not `n_ff`.
        ffn_up_rows: Option<u64>,
        /// Layer 0 has a q bias.
        q_bias: bool,
    }

    const N_EMBD: u64 = 32;
    const N_HEAD: u64 = 4;
    const N_HEAD_KV: u64 = 2;
    /// Rows of the embedding and the head, whatever the vocabulary says (real files pad them).
    const N_VOCAB: u64 = 8;

    impl Default for Tiny {
        fn default() -> Self {
            Tiny {
                arch: "qwen2",
                n_layers: 2,
                n_ff: 64,
                rope_theta: 1_000_000.0,
                rms_eps: Some(1e-6),
                tokens: (0..8).map(|i| format!("tok{i}")).collect(),
                tied: false,
                matrix_type: GgmlType::F32,
                ffn_up_rows: None,
                q_bias: true,
            }
        }
    }

    impl Tiny {
        fn gguf_bytes(&self) -> Vec<u8> {
            let mut w = GgufWriter::new();
            let key = |k: &str| format!("{}.{k}", self.arch);
            w.add("general.architecture", self.arch).unwrap();
            w.add(key("block_count"), MetaValue::U32(self.n_layers as u32)).unwrap();
            w.add(key("embedding_length"), MetaValue::U32(N_EMBD as u32)).unwrap();
            w.add(key("attention.head_count"), MetaValue::U32(N_HEAD as u32)).unwrap();
            w.add(key("attention.head_count_kv"), MetaValue::U32(N_HEAD_KV as u32)).unwrap();
            w.add(key("feed_forward_length"), MetaValue::U32(self.n_ff as u32)).unwrap();
            w.add(key("rope.freq_base"), MetaValue::F32(self.rope_theta)).unwrap();
            if let Some(eps) = self.rms_eps {
                w.add(key("attention.layer_norm_rms_epsilon"), MetaValue::F32(eps)).unwrap();
            }
            if !self.tokens.is_empty() {
                w.add("tokenizer.ggml.model", "gpt2").unwrap();
                let tokens: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
                w.add("tokenizer.ggml.tokens", tokens).unwrap();
            }

            let n_vocab = N_VOCAB;
            let kv = N_EMBD / N_HEAD * N_HEAD_KV;
            let mut add = |name: String, dims: &[u64]| {
                let ty = if dims.len() == 2 { self.matrix_type } else { GgmlType::F32 };
                let n: u64 = dims.iter().product();
                let bytes = vec![0u8; ty.bytes_for(n).unwrap() as usize];
                w.add_tensor(name, dims, ty, bytes).unwrap();
            };
            add("token_embd.weight".into(), &[N_EMBD, n_vocab]);
            for l in 0..self.n_layers {
                let blk = |s: &str| format!("blk.{l}.{s}");
                add(blk("attn_norm.weight"), &[N_EMBD]);
                add(blk("attn_q.weight"), &[N_EMBD, N_EMBD]);
                if self.q_bias && l == 0 {
                    add(blk("attn_q.bias"), &[N_EMBD]);
                }
                add(blk("attn_k.weight"), &[N_EMBD, kv]);
                add(blk("attn_v.weight"), &[N_EMBD, kv]);
                add(blk("attn_output.weight"), &[N_EMBD, N_EMBD]);
                add(blk("ffn_norm.weight"), &[N_EMBD]);
                add(blk("ffn_gate.weight"), &[N_EMBD, self.n_ff]);
                let up_rows =
                    if l == 1 { self.ffn_up_rows.unwrap_or(self.n_ff) } else { self.n_ff };
                add(blk("ffn_up.weight"), &[N_EMBD, up_rows]);
                add(blk("ffn_down.weight"), &[self.n_ff, N_EMBD]);
            }
            add("output_norm.weight".into(), &[N_EMBD]);
            if !self.tied {
                add("output.weight".into(), &[N_EMBD, n_vocab]);
            }
            w.to_bytes()
        }

        fn gguf(&self) -> Model<MemorySource> {
            Model::open(MemorySource::new(self.gguf_bytes())).unwrap()
        }

        /// The file as upstream's `apr import` writes it (HF names, F32, `lm_head` for a tied
        /// head), or as `--preserve-q4k` does.
        fn apr(&self, variant: AprVariant) -> Model<MemorySource> {
            let source = MemorySource::new(self.gguf_bytes());
            let gguf = GgufFile::read(&source).unwrap();
            let apr = gguf_to_apr(&gguf, &source, &ConvertOptions::new(variant, "tiny"))
                .unwrap()
                .write()
                .unwrap();
            Model::open(MemorySource::new(apr)).unwrap()
        }
    }

    fn incompatibility(a: &Model<MemorySource>, b: &Model<MemorySource>) -> Incompatibility {
        check_compatible(a, b).expect_err("the files differ")
    }

    #[test]
    fn a_file_is_compatible_with_itself_in_any_type_and_either_container() {
        let tiny = Tiny::default();
        let f32 = tiny.gguf();
        let q8 = Tiny { matrix_type: GgmlType::Q8_0, ..tiny.clone() }.gguf();
        let hf_named = tiny.apr(AprVariant::F32);
        let raw = tiny.apr(AprVariant::Quantized);
        assert!(hf_named.tensor("model.layers.1.mlp.up_proj.weight").is_some());
        for (a, b) in [(&f32, &f32), (&f32, &q8), (&q8, &hf_named), (&hf_named, &raw)] {
            assert_eq!(check_compatible(a, b), Ok(()));
            assert_eq!(check_compatible(b, a), Ok(()));
        }
    }

    #[test]
    fn a_missing_output_head_is_the_tied_embedding() {
        let tied = Tiny { tied: true, ..Tiny::default() };
        let untied = Tiny::default().gguf();
        // `apr import` writes the tied head out as `lm_head.weight`.
        let apr = tied.apr(AprVariant::F32);
        assert!(apr.tensor("lm_head.weight").is_some());
        let tied = tied.gguf();
        for (a, b) in [(&tied, &untied), (&tied, &apr)] {
            assert_eq!(check_compatible(a, b), Ok(()));
            assert_eq!(check_compatible(b, a), Ok(()));
        }
        let head = untied.tensor("output.weight").unwrap();
        assert_eq!(counterpart(&tied, head).unwrap().name, "token_embd.weight");
        assert_eq!(counterpart(&apr, head).unwrap().name, "lm_head.weight");
        let embd = untied.tensor("token_embd.weight").unwrap();
        assert_eq!(counterpart(&apr, embd).unwrap().name, "model.embed_tokens.weight");
    }

    #[test]
    fn a_different_architecture_is_named() {
        let a = Tiny::default().gguf();
        let b = Tiny { arch: "llama", ..Tiny::default() }.gguf();
        let e = incompatibility(&a, &b);
        assert_eq!(
            e,
            Incompatibility::Architecture { a: Some("qwen2".into()), b: Some("llama".into()) }
        );
        assert_eq!(e.to_string(), "the files differ in architecture: qwen2 in A, llama in B");
    }

    #[test]
    fn hyperparameters_are_compared_before_the_tensors_they_shape() {
        let a = Tiny::default().gguf();
        let b = Tiny { n_ff: 96, ..Tiny::default() }.gguf();
        assert_eq!(
            incompatibility(&a, &b).to_string(),
            "the files differ in the FFN width (feed_forward_length): 64 in A, 96 in B"
        );
        let b = Tiny { n_layers: 3, ..Tiny::default() }.gguf();
        assert_eq!(
            incompatibility(&a, &b).to_string(),
            "the files differ in the layer count (block_count): 2 in A, 3 in B"
        );
        let b = Tiny { rope_theta: 10_000.0, ..Tiny::default() }.gguf();
        assert_eq!(
            incompatibility(&a, &b).to_string(),
            "the files differ in the RoPE base (rope.freq_base): 1000000 in A, 10000 in B"
        );
        let b = Tiny { rms_eps: None, ..Tiny::default() }.gguf();
        assert_eq!(
            incompatibility(&a, &b).to_string(),
            "the files differ in the RMS norm epsilon (attention.layer_norm_rms_epsilon): \
             0.000001 in A, not set in B"
        );
    }

    #[test]
    fn float_hyperparameters_agree_within_a_relative_tolerance() {
        let a = Tiny::default().gguf();
        // One f32 step above 1e6 (a relative 6e-8): the same base written another way.
        let near = Tiny { rope_theta: 1_000_000.06, ..Tiny::default() }.gguf();
        assert_ne!(near.hyperparameters().rope_theta, a.hyperparameters().rope_theta);
        assert_eq!(check_compatible(&a, &near), Ok(()));
        let far = Tiny { rope_theta: 1_000_010.0, ..Tiny::default() }.gguf();
        assert!(matches!(incompatibility(&a, &far), Incompatibility::Hyperparameter { .. }));
    }

    #[test]
    fn a_tensor_shape_difference_names_the_tensor_in_both_files() {
        let a = Tiny::default().gguf();
        let narrow = Tiny { ffn_up_rows: Some(48), ..Tiny::default() };
        assert_eq!(
            incompatibility(&a, &narrow.gguf()),
            Incompatibility::TensorShape {
                name_a: "blk.1.ffn_up.weight".into(),
                name_b: "blk.1.ffn_up.weight".into(),
                shape_a: vec![64, 32],
                shape_b: vec![48, 32],
            }
        );
        assert_eq!(
            incompatibility(&a, &narrow.apr(AprVariant::F32)).to_string(),
            "the files differ in blk.1.ffn_up.weight (model.layers.1.mlp.up_proj.weight in B): \
             64×32 in A, 48×32 in B"
        );
    }

    #[test]
    fn a_role_only_one_file_has_is_a_difference() {
        let with_bias = Tiny::default().gguf();
        let without = Tiny { q_bias: false, ..Tiny::default() }.gguf();
        assert_eq!(
            incompatibility(&with_bias, &without).to_string(),
            "the files differ in blk.0.attn_q.bias: present in A, missing in B"
        );
        assert_eq!(
            incompatibility(&without, &with_bias),
            Incompatibility::MissingTensor {
                name: "blk.0.attn_q.bias".into(),
                present_in: Side::B
            }
        );
        let hf = Tiny::default().apr(AprVariant::F32);
        assert_eq!(
            incompatibility(&hf, &without).to_string(),
            "the files differ in model.layers.0.self_attn.q_proj.bias: present in A, missing in B"
        );
    }

    #[test]
    fn the_vocabulary_is_compared_by_count_then_token_by_token() {
        let a = Tiny::default();
        let mut tokens = a.tokens.clone();
        tokens.push("extra".into());
        let longer = Tiny { tokens: tokens.clone(), ..Tiny::default() };
        assert_eq!(
            incompatibility(&a.gguf(), &longer.gguf()).to_string(),
            "the files differ in their vocabulary: 8 tokens in A, 9 tokens in B"
        );
        let none = Tiny { tokens: Vec::new(), ..Tiny::default() };
        assert_eq!(
            incompatibility(&none.gguf(), &a.gguf()),
            Incompatibility::VocabularySize { a: 0, b: 8 }
        );
        assert_eq!(
            incompatibility(&a.gguf(), &none.gguf()).to_string(),
            "the files differ in their vocabulary: 8 tokens in A, none in B"
        );

        let mut renamed = a.tokens.clone();
        renamed[5] = "Ġfive".into();
        let b = Tiny { tokens: renamed, ..Tiny::default() };
        assert_eq!(
            incompatibility(&a.gguf(), &b.apr(AprVariant::F32)).to_string(),
            "the files differ in token 5: \"tok5\" in A, \"Ġfive\" in B"
        );
        assert_eq!(check_compatible(&a.gguf(), &a.apr(AprVariant::Quantized)), Ok(()));
    }

    #[test]
    fn a_vocabulary_entry_that_is_not_a_string_differs_from_every_string() {
        let tokens: StringArray = ["x", "y"].into_iter().collect();
        let json = [Value::from("x"), Value::from(7)];
        assert_eq!(
            check_vocabulary(&Vocabulary::Gguf(&tokens), &Vocabulary::Apr(&json))
                .unwrap_err()
                .to_string(),
            "the files differ in token 1: \"y\" in A, no string in B"
        );
    }
}
