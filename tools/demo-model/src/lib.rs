//! The page's embedded demo model: a small synthetic qwen2-shaped GGUF, generated
//! deterministically so the committed `www/demo/parallax-demo-qwen2.gguf` can be rebuilt byte
//! for byte.
//!
//! Owns the demo's shape ([`SPEC`]), its seeded weights (a portable PRNG, no transcendental
//! functions, so every platform gives the same bits), simple Q4_K / Q6_K / Q8_0 quantizers
//! ([`quant`]) and the choice of what to copy from the real Qwen2.5 tokenizer. Knows nothing of
//! the engine or of files: it takes the Qwen2.5 GGUF's parsed header and returns bytes; the
//! `make-demo-model` binary does the I/O.

pub mod hostile;
pub mod quant;
pub mod requantize;

use std::collections::HashSet;
use std::fmt;

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile, MetaValue};
use parallax_testkit::SplitMix64;

/// Why the demo could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoError {
    message: String,
}

impl DemoError {
    pub fn new(message: impl Into<String>) -> Self {
        DemoError { message: message.into() }
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DemoError {}

/// The demo model's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub n_layers: usize,
    pub n_ctx: u32,
}

impl Spec {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// 4096 tokens hold every id of the contract prompt "What is 2+2?" (the largest is 3838) and
/// keep the Q8_0 embedding at 1.1 MB, half of the file.
pub const SPEC: Spec = Spec {
    n_vocab: 4096,
    n_embd: 256,
    n_head: 4,
    n_head_kv: 2,
    n_ff: 512,
    n_layers: 3,
    n_ctx: 2048,
};

/// The file name the page and the tests expect.
pub const FILE_NAME: &str = "parallax-demo-qwen2.gguf";
/// The model name in `general.name`.
pub const MODEL_NAME: &str = "Parallax demo (synthetic qwen2)";
/// The Qwen2.5 model whose tokenizer the demo carries.
pub const QWEN_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The contract prompt and its Qwen2.5 token ids, which must survive the vocabulary cut.
pub const PROMPT: &str = "What is 2+2?";
pub const PROMPT_IDS: [u32; 7] = [3838, 374, 220, 17, 10, 17, 30];

/// Every random number comes from this seed (mixed with the tensor's name).
pub const SEED: u64 = 0x5041_5241_4c4c_4158; // "PARALLAX"

/// The test kit's SplitMix64 (tiny, well-distributed, and defined by integer arithmetic only),
/// plus the per-tensor seeding and the normal draws the weights need.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64(seed))
    }

    /// A generator for one tensor: its stream does not depend on the order tensors are made in.
    pub fn for_name(name: &str) -> Self {
        // FNV-1a of the name, then mixed with the global seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng::new(h ^ SEED)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Fills `b` with the generator's output, eight little-endian bytes per draw.
    pub fn fill_bytes(&mut self, b: &mut [u8]) {
        self.0.fill_bytes(b)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        self.0.unit_f64()
    }

    /// Approximately N(0, 1): the Irwin–Hall sum of 12 uniforms minus 6. Exact arithmetic only
    /// (Box–Muller's `ln`/`cos` may differ in the last bit between platforms' libms), and its
    /// tails stop at ±6, which keeps the synthetic weights free of absurd outliers.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// A weight matrix of `rows` outputs × `cols` inputs (row-major, ggml `ne = [cols, rows]`) with
/// std ≈ `std`, shaped like a trained layer's: each output row and each input channel has its
/// own scale (0.75–1.25 and 0.8–1.2), and 1 value in 128 is a 3× outlier.
fn matrix(name: &str, rows: usize, cols: usize, std: f64) -> Vec<f32> {
    let mut rng = Rng::for_name(name);
    let col_scale: Vec<f64> = (0..cols).map(|_| 0.8 + 0.4 * rng.uniform()).collect();
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let row_scale = 0.75 + 0.5 * rng.uniform();
        for c in &col_scale {
            let mut v = rng.normal() * std * row_scale * c;
            if rng.uniform() < 1.0 / 128.0 {
                v *= 3.0;
            }
            out.push(v as f32);
        }
    }
    out
}

/// A vector of `center + spread·N(0, 1)` (norm weights around 1, biases around 0).
fn vector(name: &str, n: usize, center: f64, spread: f64) -> Vec<f32> {
    let mut rng = Rng::for_name(name);
    (0..n).map(|_| (center + spread * rng.normal()) as f32).collect()
}

/// One tensor of the demo: name, ggml shape, type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: GgmlType,
}

/// Every tensor of the demo in file order, with the type mix of a llama.cpp Q4_K_M file:
/// Q4_K for attn_q/attn_k/attn_output/ffn_gate/ffn_up, Q6_K for attn_v/ffn_down, Q8_0 for the
/// embedding (which the output head shares: there is no `output.weight`), F32 for norms and
/// biases.
pub fn tensor_plan(s: &Spec) -> Vec<TensorPlan> {
    let (e, kv, ff) = (s.n_embd as u64, (s.n_head_kv * s.head_dim()) as u64, s.n_ff as u64);
    let t = |name: String, ne: &[u64], ty| TensorPlan { name, ne: ne.to_vec(), ty };
    let mut plan = vec![t("token_embd.weight".into(), &[e, s.n_vocab as u64], GgmlType::Q8_0)];
    for il in 0..s.n_layers {
        let b = |n: &str| format!("blk.{il}.{n}");
        plan.extend([
            t(b("attn_norm.weight"), &[e], GgmlType::F32),
            t(b("attn_q.weight"), &[e, e], GgmlType::Q4_K),
            t(b("attn_q.bias"), &[e], GgmlType::F32),
            t(b("attn_k.weight"), &[e, kv], GgmlType::Q4_K),
            t(b("attn_k.bias"), &[kv], GgmlType::F32),
            t(b("attn_v.weight"), &[e, kv], GgmlType::Q6_K),
            t(b("attn_v.bias"), &[kv], GgmlType::F32),
            t(b("attn_output.weight"), &[e, e], GgmlType::Q4_K),
            t(b("ffn_norm.weight"), &[e], GgmlType::F32),
            t(b("ffn_gate.weight"), &[e, ff], GgmlType::Q4_K),
            t(b("ffn_up.weight"), &[e, ff], GgmlType::Q4_K),
            t(b("ffn_down.weight"), &[ff, e], GgmlType::Q6_K),
        ]);
    }
    plan.push(t("output_norm.weight".into(), &[e], GgmlType::F32));
    plan
}

/// The f32 source values of one planned tensor.
fn source_values(t: &TensorPlan) -> Vec<f32> {
    let n = |i: usize| t.ne[i] as usize;
    let role = t
        .name
        .rsplit_once("blk.")
        .map_or(t.name.as_str(), |(_, r)| r.split_once('.').map_or(r, |(_, r)| r));
    match role {
        // Small embeddings, as trained ones are (Qwen2.5's std is ~0.02); with the tied head
        // they give logits of std ~1, a softmax that is peaked but not one-hot.
        "token_embd.weight" => matrix(&t.name, n(1), n(0), 0.06),
        "attn_norm.weight" | "ffn_norm.weight" | "output_norm.weight" => {
            vector(&t.name, n(0), 1.0, 0.1)
        }
        "attn_q.bias" | "attn_k.bias" => vector(&t.name, n(0), 0.0, 0.05),
        "attn_v.bias" => vector(&t.name, n(0), 0.0, 0.02),
        // Weights ~ N(0, 1/fan_in): each matmul keeps its input's scale, so the residual
        // stream grows gently over the layers and no activation saturates.
        _ => matrix(&t.name, n(1), n(0), 1.0 / (n(0) as f64).sqrt()),
    }
}

fn quantized_bytes(t: &TensorPlan) -> Result<Vec<u8>, DemoError> {
    let v = source_values(t);
    let fail = |e: DemoError| DemoError::new(format!("tensor {}: {e}", t.name));
    Ok(match t.ty {
        GgmlType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgmlType::Q4_K => quant::quantize_q4_k(&v).map_err(fail)?.bytes,
        GgmlType::Q6_K => quant::quantize_q6_k(&v).map_err(fail)?.bytes,
        GgmlType::Q8_0 => quant::quantize_q8_0(&v).map_err(fail)?.bytes,
        ty => return Err(DemoError::new(format!("tensor {}: no quantizer for {ty}", t.name))),
    })
}

/// What the demo copies from the Qwen2.5 tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerPart {
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
}

/// The first `n_vocab` tokens of the Qwen2.5 tokenizer, their types, and exactly the merges
/// whose two parts and result are all among them, in their original order (so BPE ranks keep
/// their relative order and any text built from these merges tokenizes as Qwen2.5 does).
/// Qwen's special tokens (`<|endoftext|>` …, ids ≥ 151643) fall outside, so the demo has no
/// bos/eos/padding ids.
pub fn tokenizer_part(qwen: &GgufFile, n_vocab: usize) -> Result<TokenizerPart, DemoError> {
    let want = |key: &str, value: &str| match qwen.get_str(key) {
        Some(v) if v == value => Ok(()),
        other => Err(DemoError::new(format!(
            "the Qwen2.5 file's {key} is {other:?}, expected \"{value}\""
        ))),
    };
    want("tokenizer.ggml.model", "gpt2")?;
    want("tokenizer.ggml.pre", "qwen2")?;
    let all = qwen.get_str_arr("tokenizer.ggml.tokens").ok_or_else(|| {
        DemoError::new("the Qwen2.5 file has no tokenizer.ggml.tokens string array")
    })?;
    let types =
        qwen.get_arr("tokenizer.ggml.token_type").and_then(|a| a.to_i64s()).ok_or_else(|| {
            DemoError::new("the Qwen2.5 file has no integer tokenizer.ggml.token_type array")
        })?;
    let merges = qwen.get_str_arr("tokenizer.ggml.merges").ok_or_else(|| {
        DemoError::new("the Qwen2.5 file has no tokenizer.ggml.merges string array")
    })?;
    if all.len() < n_vocab || types.len() != all.len() {
        return Err(DemoError::new(format!(
            "the Qwen2.5 tokenizer has {} tokens and {} types; the demo needs {n_vocab} of each",
            all.len(),
            types.len()
        )));
    }
    if let Some(id) = PROMPT_IDS.iter().find(|&&id| id as usize >= n_vocab) {
        return Err(DemoError::new(format!(
            "prompt token {id} falls outside a {n_vocab}-token vocabulary"
        )));
    }
    let tokens: Vec<String> = all.iter().take(n_vocab).map(str::to_string).collect();
    let token_types = types[..n_vocab]
        .iter()
        .map(|&t| {
            i32::try_from(t).map_err(|_| DemoError::new(format!("token type {t} is not an i32")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: HashSet<&str> = tokens.iter().map(String::as_str).collect();
    let merges = merges
        .iter()
        .filter(|m| {
            // Byte-level BPE pieces never contain a space, so the first one separates the parts.
            m.split_once(' ').is_some_and(|(a, b)| {
                vocab.contains(a) && vocab.contains(b) && vocab.contains(format!("{a}{b}").as_str())
            })
        })
        .map(str::to_string)
        .collect();
    Ok(TokenizerPart { tokens, token_types, merges })
}

/// The complete demo GGUF, from the Qwen2.5 file's parsed header (only its tokenizer is used).
pub fn generate(qwen: &GgufFile) -> Result<Vec<u8>, DemoError> {
    generate_with(&SPEC, qwen)
}

pub fn generate_with(s: &Spec, qwen: &GgufFile) -> Result<Vec<u8>, DemoError> {
    if s.n_head == 0
        || s.n_head_kv == 0
        || !s.n_embd.is_multiple_of(s.n_head)
        || !s.n_head.is_multiple_of(s.n_head_kv)
    {
        return Err(DemoError::new(format!("inconsistent head counts in {s:?}")));
    }
    let tok = tokenizer_part(qwen, s.n_vocab)?;
    let mut w = GgufWriter::new();
    let u = |x: usize| {
        u32::try_from(x).map_err(|_| DemoError::new(format!("{x} does not fit in a u32")))
    };
    let kv: Vec<(&str, MetaValue)> = vec![
        ("general.architecture", "qwen2".into()),
        ("general.type", "model".into()),
        ("general.name", MODEL_NAME.into()),
        (
            "general.description",
            "Synthetic weights from a seeded PRNG (not a trained model) in a Qwen2 shape, with the \
             first 4096 tokens of the Qwen2.5 tokenizer; made by tools/demo-model (make-demo-model)."
                .into(),
        ),
        ("qwen2.block_count", u(s.n_layers)?.into()),
        ("qwen2.context_length", s.n_ctx.into()),
        ("qwen2.embedding_length", u(s.n_embd)?.into()),
        ("qwen2.feed_forward_length", u(s.n_ff)?.into()),
        ("qwen2.attention.head_count", u(s.n_head)?.into()),
        ("qwen2.attention.head_count_kv", u(s.n_head_kv)?.into()),
        ("qwen2.rope.freq_base", 1_000_000f32.into()),
        ("qwen2.attention.layer_norm_rms_epsilon", 1e-6f32.into()),
        // LLAMA_FTYPE_MOSTLY_Q4_K_M: the mix this file imitates.
        ("general.file_type", 15u32.into()),
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "qwen2".into()),
        ("tokenizer.ggml.tokens", tok.tokens.into()),
        ("tokenizer.ggml.token_type", tok.token_types.into()),
        ("tokenizer.ggml.merges", tok.merges.into()),
        ("tokenizer.ggml.add_bos_token", false.into()),
        ("general.quantization_version", 2u32.into()),
    ];
    let werr = |e: parallax_gguf::writer::WriteError| DemoError::new(e.to_string());
    for (k, v) in kv {
        w.add(k, v).map_err(werr)?;
    }
    for t in tensor_plan(s) {
        let bytes = quantized_bytes(&t)?;
        w.add_tensor(t.name, &t.ne, t.ty, bytes).map_err(werr)?;
    }
    Ok(w.to_bytes())
}

/// Lowercase hex SHA-256 (printed by the binary and written into the README).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The README that sits beside the demo file: how it was made, what is in it, its hash.
pub fn readme(file: &[u8]) -> String {
    let s = SPEC;
    let plan = tensor_plan(&s);
    let count = |ty: GgmlType| plan.iter().filter(|t| t.ty == ty).count();
    format!(
        "# Demo model\n\n\
`{FILE_NAME}` is the model the page runs when no file is given (it works offline). It is a\n\
**synthetic** qwen2-shaped GGUF: the weights come from a seeded PRNG, not from training, so its\n\
predictions mean nothing; it exists to show the two forward paths side by side on real block\n\
formats and a real tokenizer.\n\n\
## How it was made\n\n\
```sh\n\
cargo run --release -p parallax-demo-model -- --out www/demo\n\
```\n\n\
The generator (`tools/demo-model`) is deterministic: the same command gives the same bytes\n\
(`tests/demo_model.rs` regenerates it and compares). It reads the tokenizer from the shared\n\
`{QWEN_FILE}` (`$PARALLAX_MODELS` or `~/.cache/parallax/models`; `--qwen PATH` overrides).\n\
It also writes this README.\n\n\
## What is in it\n\n\
- `general.architecture` qwen2, `general.name` \"{MODEL_NAME}\".\n\
- {layers} layers, hidden {embd}, {head} heads of {hd} (KV heads {kv}), feed-forward {ff},\n  \
context 2048, RoPE base 1e6, RMSNorm eps 1e-6.\n\
- Tensor types like a llama.cpp Q4_K_M file: Q4_K for `attn_q`, `attn_k`, `attn_output`,\n  \
`ffn_gate`, `ffn_up` ({q4k} tensors); Q6_K for `attn_v`, `ffn_down` ({q6k}); Q8_0 for\n  \
`token_embd` ({q80}); F32 for norms and the q/k/v biases ({f32}). The output head is tied to\n  \
`token_embd` (there is no `output.weight`).\n\
- Weights ~ N(0, 1/fan_in) with per-row and per-input-channel scales and rare 3× outliers;\n  \
norm weights ~ 1 ± 0.1; q/k biases ~ 0.05, v biases ~ 0.02; embeddings std 0.06.\n\
- Tokenizer: `gpt2` / pre `qwen2`, the first {vocab} tokens of the Qwen2.5 vocabulary with\n  \
their types, and the merges whose two parts and result all lie in it, in their original order.\n  \
\"{PROMPT}\" tokenizes to {ids:?}, as with Qwen2.5. Qwen's special tokens\n  \
(ids ≥ 151643) are not included, so there are no bos/eos ids; `add_bos_token` is false.\n\n\
## Checksum\n\n\
- size: {size} bytes\n\
- sha256: `{sha}`\n",
        layers = s.n_layers,
        embd = s.n_embd,
        head = s.n_head,
        hd = s.head_dim(),
        kv = s.n_head_kv,
        ff = s.n_ff,
        vocab = s.n_vocab,
        q4k = count(GgmlType::Q4_K),
        q6k = count(GgmlType::Q6_K),
        q80 = count(GgmlType::Q8_0),
        f32 = count(GgmlType::F32),
        ids = PROMPT_IDS,
        size = file.len(),
        sha = sha256_hex(file),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_source::MemorySource;

    /// A stand-in for the Qwen2.5 header: a toy byte-level vocabulary with merges, some of
    /// which reach outside the cut.
    fn fake_qwen(n: usize) -> GgufFile {
        let mut w = GgufWriter::new();
        let mut tokens: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        tokens[1] = "a".into();
        tokens[2] = "b".into();
        tokens[3] = "ab".into();
        tokens[n - 1] = "ba".into();
        w.add("tokenizer.ggml.model", "gpt2").unwrap();
        w.add("tokenizer.ggml.pre", "qwen2").unwrap();
        w.add("tokenizer.ggml.token_type", vec![1i32; n]).unwrap();
        w.add("tokenizer.ggml.tokens", tokens).unwrap();
        w.add("tokenizer.ggml.merges", vec!["a b", "b a", "ab t5", "t1 t2"]).unwrap();
        GgufFile::read(&MemorySource::new(w.to_bytes())).unwrap()
    }

    #[test]
    fn keeps_only_merges_inside_the_cut_in_order() {
        let q = fake_qwen(5000);
        let t = tokenizer_part(&q, 4096).unwrap();
        assert_eq!(t.tokens.len(), 4096);
        assert_eq!(t.token_types.len(), 4096);
        // "b a" makes token 4999 (cut), "ab t5" makes "abt5" (absent), "t1 t2" parts absent.
        assert_eq!(t.merges, vec!["a b".to_string()]);
    }

    #[test]
    fn refuses_a_vocabulary_too_small_or_another_tokenizer() {
        let e = tokenizer_part(&fake_qwen(100), 4096).unwrap_err();
        assert!(e.to_string().contains("100 tokens"), "{e}");
        let e = tokenizer_part(&fake_qwen(5000), 1000).unwrap_err();
        assert!(e.to_string().contains("3838"), "{e}");
        let mut w = GgufWriter::new();
        w.add("tokenizer.ggml.model", "llama").unwrap();
        let f = GgufFile::read(&MemorySource::new(w.to_bytes())).unwrap();
        assert!(tokenizer_part(&f, 10).unwrap_err().to_string().contains("tokenizer.ggml.model"));
    }

    #[test]
    fn generation_is_deterministic_and_reads_back() {
        let q = fake_qwen(5000);
        let a = generate(&q).unwrap();
        assert_eq!(a, generate(&q).unwrap());
        let f = GgufFile::read(&MemorySource::new(a.clone())).unwrap();
        assert_eq!(f.get_str("general.architecture"), Some("qwen2"));
        assert_eq!(f.get_u32("qwen2.block_count"), Some(3));
        let plan = tensor_plan(&SPEC);
        assert_eq!(f.tensors().len(), plan.len());
        for (t, p) in f.tensors().iter().zip(&plan) {
            assert_eq!((&t.name, t.ty), (&p.name, p.ty));
        }
        assert!(f.tensor("output.weight").is_none(), "the head is tied to token_embd");
        assert!(a.len() <= 2_500_000, "{} bytes", a.len());
    }

    #[test]
    fn source_weights_have_the_intended_scale() {
        let plan = tensor_plan(&SPEC);
        let std = |v: &[f32]| {
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let get = |n: &str| source_values(plan.iter().find(|t| t.name == n).unwrap());
        let down = get("blk.1.ffn_down.weight");
        let want = 1.0 / (512f64).sqrt();
        assert!((std(&down) / want - 1.0).abs() < 0.1, "ffn_down std {} vs {want}", std(&down));
        let norm = get("blk.2.attn_norm.weight");
        assert!(norm.iter().all(|&x| (0.3..1.7).contains(&x)));
        assert_ne!(get("blk.0.attn_q.weight"), get("blk.1.attn_q.weight"), "layers differ");
    }

    #[test]
    fn rng_is_the_documented_splitmix64() {
        // First output of SplitMix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut r = Rng::new(7);
        let n = 20_000;
        let v: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }
}
