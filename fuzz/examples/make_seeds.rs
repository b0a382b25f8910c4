//! Writes the generated part of the seed corpus: a tiny but complete qwen2 GGUF (1 layer,
//! hidden 32, the 320-token tokenizer of `../shared/fixtures/apr/tiny-qwen2.gguf`) and its two
//! APR conversions. Everything else in `corpus/` is copied from committed files (see README).
//!
//! `cargo run --example make_seeds -- ../../shared/fixtures/apr/tiny-qwen2.gguf corpus`

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile, MetaValue};
use parallax_model::convert::{gguf_to_apr, AprVariant, ConvertOptions};
use parallax_source::{FileSource, MemorySource};

const N_EMBD: u64 = 32;
const N_HEAD: u64 = 2;
const N_HEAD_KV: u64 = 1;
const N_FF: u64 = 64;

/// A deterministic xorshift stream of small signed bytes.
struct Noise(u64);
impl Noise {
    fn next_i8(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 32) as i8 / 4) as u8
    }
}

/// Q8_0 bytes for a `[ne0, ne1]` matrix: scale 1/64 (f16 0x2400) and noise.
fn q8_0(ne0: u64, ne1: u64, noise: &mut Noise) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..ne0 * ne1 / 32 {
        out.extend_from_slice(&0x2400u16.to_le_bytes());
        out.extend((0..32).map(|_| noise.next_i8()));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (real, out) = (&args[1], std::path::Path::new(&args[2]));
    let src = FileSource::open(real).expect("the real tiny-qwen2.gguf");
    let real = GgufFile::read(&src).expect("it parses");
    let n_vocab = real.get_str_arr("tokenizer.ggml.tokens").expect("a vocabulary").len() as u64;

    let mut w = GgufWriter::new();
    for (key, value) in real.metadata() {
        if key.starts_with("tokenizer.") || key == "general.architecture" {
            w.add(key, value.clone()).unwrap();
        }
    }
    let put = |w: &mut GgufWriter, k: &str, v: MetaValue| {
        w.add(k, v).unwrap();
    };
    put(&mut w, "general.name", "parallax fuzz seed".into());
    put(&mut w, "qwen2.block_count", MetaValue::U32(1));
    put(&mut w, "qwen2.context_length", MetaValue::U32(64));
    put(&mut w, "qwen2.embedding_length", MetaValue::U32(N_EMBD as u32));
    put(&mut w, "qwen2.feed_forward_length", MetaValue::U32(N_FF as u32));
    put(&mut w, "qwen2.attention.head_count", MetaValue::U32(N_HEAD as u32));
    put(&mut w, "qwen2.attention.head_count_kv", MetaValue::U32(N_HEAD_KV as u32));
    put(&mut w, "qwen2.rope.freq_base", MetaValue::F32(1e6));
    put(&mut w, "qwen2.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-6));

    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let kv = N_EMBD / N_HEAD * N_HEAD_KV;
    let ones = vec![1.0f32; N_EMBD as usize];
    w.add_tensor(
        "token_embd.weight",
        &[N_EMBD, n_vocab],
        GgmlType::Q8_0,
        q8_0(N_EMBD, n_vocab, &mut noise),
    )
    .unwrap();
    for (name, ne1) in [("attn_q", N_EMBD), ("attn_k", kv), ("attn_v", kv)] {
        w.add_tensor(
            format!("blk.0.{name}.weight"),
            &[N_EMBD, ne1],
            GgmlType::Q8_0,
            q8_0(N_EMBD, ne1, &mut noise),
        )
        .unwrap();
        w.add_f32_tensor(format!("blk.0.{name}.bias"), &[ne1], &vec![0.01; ne1 as usize]).unwrap();
    }
    w.add_tensor(
        "blk.0.attn_output.weight",
        &[N_EMBD, N_EMBD],
        GgmlType::Q8_0,
        q8_0(N_EMBD, N_EMBD, &mut noise),
    )
    .unwrap();
    w.add_f32_tensor("blk.0.attn_norm.weight", &[N_EMBD], &ones).unwrap();
    w.add_f32_tensor("blk.0.ffn_norm.weight", &[N_EMBD], &ones).unwrap();
    w.add_tensor(
        "blk.0.ffn_gate.weight",
        &[N_EMBD, N_FF],
        GgmlType::Q8_0,
        q8_0(N_EMBD, N_FF, &mut noise),
    )
    .unwrap();
    w.add_tensor(
        "blk.0.ffn_up.weight",
        &[N_EMBD, N_FF],
        GgmlType::Q8_0,
        q8_0(N_EMBD, N_FF, &mut noise),
    )
    .unwrap();
    w.add_tensor(
        "blk.0.ffn_down.weight",
        &[N_FF, N_EMBD],
        GgmlType::Q8_0,
        q8_0(N_FF, N_EMBD, &mut noise),
    )
    .unwrap();
    w.add_f32_tensor("output_norm.weight", &[N_EMBD], &ones).unwrap();
    let gguf = w.to_bytes();

    std::fs::create_dir_all(out.join("gguf_reader")).unwrap();
    std::fs::create_dir_all(out.join("apr_reader")).unwrap();
    std::fs::write(out.join("gguf_reader/tiny-qwen2-h32.gguf"), &gguf).unwrap();
    let mem = MemorySource::new(gguf.clone());
    let file = GgufFile::read(&mem).unwrap();
    for (variant, name) in [
        (AprVariant::F32, "tiny-qwen2-h32.f32.apr"),
        (AprVariant::Quantized, "tiny-qwen2-h32.raw.apr"),
    ] {
        let apr =
            gguf_to_apr(&file, &mem, &ConvertOptions::new(variant, name)).unwrap().write().unwrap();
        std::fs::write(out.join("apr_reader").join(name), apr).unwrap();
    }
    eprintln!("wrote {} bytes of GGUF and its APR conversions under {}", gguf.len(), out.display());
}
