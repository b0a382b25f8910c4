//! `make-7b-shaped [--layers N] OUT.gguf`: a GGUF with the shape of Qwen2.5-7B Q4_K_M (28 layers,
//! hidden 3584, FFN 18944, 28 heads / 4 KV heads, vocabulary 152064; ~4.7 GB) and synthetic
//! weights, for the memory test of the page (a 7B-class model must run inside a wasm32 tab).
//! `--layers N` keeps the width and changes the depth (bench/peak_memory.py sweeps it to show
//! that peak memory does not grow with the number of layers).
//!
//! The file is written front to back (header, then each tensor), so the generator itself holds
//! no more than one block pool in memory. Weights are valid Q4_K / Q6_K blocks with small, fixed
//! scales and pseudo-random quants (a deterministic pool, cycled), so every value is finite and
//! activations stay in a sane range; no tokenizer is included (run with `--tokens`).

use std::io::{BufWriter, Write};

use parallax_demo_model::Rng;

const QK_K: usize = 256;
const ALIGN: u64 = 32;

#[derive(Clone, Copy)]
enum Ty {
    F32,
    Q4K,
    Q6K,
}

impl Ty {
    fn id(self) -> u32 {
        match self {
            Ty::F32 => 0,
            Ty::Q4K => 12,
            Ty::Q6K => 14,
        }
    }
    fn bytes(self, n: u64) -> u64 {
        match self {
            Ty::F32 => n * 4,
            Ty::Q4K => n / QK_K as u64 * 144,
            Ty::Q6K => n / QK_K as u64 * 210,
        }
    }
}

/// A pool of valid blocks: Q4_K with d = 2^-11, dmin = 7.5·d·(scale/min ratio 1) so values are
/// centred, scales and mins 40; Q6_K with d = 2^-10 and scales 12. Quants are random.
fn pool(ty: Ty, rng: &mut Rng, n: usize) -> Vec<u8> {
    let size = ty.bytes(QK_K as u64) as usize;
    let mut out = vec![0u8; size * n];
    for b in out.chunks_mut(size) {
        match ty {
            Ty::Q4K => {
                let d = half::f16::from_f32(1.0 / 2048.0);
                let dmin = half::f16::from_f32(7.5 / 2048.0);
                b[0..2].copy_from_slice(&d.to_le_bytes());
                b[2..4].copy_from_slice(&dmin.to_le_bytes());
                // 6-bit scales and mins, all 40: low 6 bits in bytes 0..8; for sub-blocks 4..7
                // the low nibbles in bytes 8..12 and the top 2 bits in bits 6..7 of bytes 0..8.
                let v = 40u8;
                for j in 0..4 {
                    b[4 + j] = (v & 63) | ((v >> 4) << 6);
                    b[4 + j + 4] = (v & 63) | ((v >> 4) << 6);
                    b[4 + j + 8] = (v & 0xF) | ((v & 0xF) << 4);
                }
                rng.fill_bytes(&mut b[16..]);
            }
            Ty::Q6K => {
                rng.fill_bytes(&mut b[..192]);
                for s in &mut b[192..208] {
                    *s = 12;
                }
                b[208..210].copy_from_slice(&half::f16::from_f32(1.0 / 1024.0).to_le_bytes());
            }
            Ty::F32 => {}
        }
    }
    out
}

fn main() {
    let usage = || -> ! {
        eprintln!("usage: make-7b-shaped [--layers N] OUT.gguf   (N from 1 to 1000, default 28)");
        std::process::exit(2)
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut n_layers = 28u64;
    if let Some(i) = args.iter().position(|a| a == "--layers") {
        let n =
            args.get(i + 1).and_then(|v| v.parse::<u64>().ok()).filter(|n| (1..=1000).contains(n));
        n_layers = n.unwrap_or_else(|| usage());
        args.drain(i..i + 2);
    }
    let [out] = <[String; 1]>::try_from(args).unwrap_or_else(|_| usage());
    let (n_embd, n_ff, n_head, n_head_kv, vocab) = (3584u64, 18944u64, 28u64, 4u64, 152064u64);
    let head_dim = n_embd / n_head;
    let kv = n_head_kv * head_dim;

    // (name, ne, type) in file order.
    let mut tensors: Vec<(String, Vec<u64>, Ty)> = vec![
        ("token_embd.weight".into(), vec![n_embd, vocab], Ty::Q4K),
        ("output_norm.weight".into(), vec![n_embd], Ty::F32),
        ("output.weight".into(), vec![n_embd, vocab], Ty::Q6K),
    ];
    for il in 0..n_layers {
        let b = |s: &str| format!("blk.{il}.{s}");
        tensors.push((b("attn_norm.weight"), vec![n_embd], Ty::F32));
        tensors.push((b("attn_q.weight"), vec![n_embd, n_embd], Ty::Q4K));
        tensors.push((b("attn_q.bias"), vec![n_embd], Ty::F32));
        tensors.push((b("attn_k.weight"), vec![n_embd, kv], Ty::Q4K));
        tensors.push((b("attn_k.bias"), vec![kv], Ty::F32));
        tensors.push((b("attn_v.weight"), vec![n_embd, kv], Ty::Q6K));
        tensors.push((b("attn_v.bias"), vec![kv], Ty::F32));
        tensors.push((b("attn_output.weight"), vec![n_embd, n_embd], Ty::Q4K));
        tensors.push((b("ffn_norm.weight"), vec![n_embd], Ty::F32));
        tensors.push((b("ffn_gate.weight"), vec![n_embd, n_ff], Ty::Q4K));
        tensors.push((b("ffn_up.weight"), vec![n_embd, n_ff], Ty::Q4K));
        tensors.push((
            b("ffn_down.weight"),
            vec![n_ff, n_embd],
            if il % 2 == 0 { Ty::Q6K } else { Ty::Q4K },
        ));
    }

    let mut header = Vec::new();
    let put_str = |h: &mut Vec<u8>, s: &str| {
        h.extend((s.len() as u64).to_le_bytes());
        h.extend(s.as_bytes());
    };
    let kvs: Vec<(&str, u32, Vec<u8>)> = vec![
        ("general.architecture", 8, {
            let mut v = Vec::new();
            put_str(&mut v, "qwen2");
            v
        }),
        ("general.name", 8, {
            let mut v = Vec::new();
            put_str(&mut v, "Parallax synthetic 7B-shaped (qwen2, Q4_K_M-like)");
            v
        }),
        ("qwen2.block_count", 4, (n_layers as u32).to_le_bytes().to_vec()),
        ("qwen2.context_length", 4, 32768u32.to_le_bytes().to_vec()),
        ("qwen2.embedding_length", 4, (n_embd as u32).to_le_bytes().to_vec()),
        ("qwen2.feed_forward_length", 4, (n_ff as u32).to_le_bytes().to_vec()),
        ("qwen2.attention.head_count", 4, (n_head as u32).to_le_bytes().to_vec()),
        ("qwen2.attention.head_count_kv", 4, (n_head_kv as u32).to_le_bytes().to_vec()),
        ("qwen2.rope.freq_base", 6, 1_000_000f32.to_le_bytes().to_vec()),
        ("qwen2.attention.layer_norm_rms_epsilon", 6, 1e-6f32.to_le_bytes().to_vec()),
        ("qwen2.vocab_size", 4, (vocab as u32).to_le_bytes().to_vec()),
    ];
    header.extend(b"GGUF");
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((kvs.len() as u64).to_le_bytes());
    for (k, ty, v) in &kvs {
        put_str(&mut header, k);
        header.extend(ty.to_le_bytes());
        header.extend(v);
    }
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for (name, ne, ty) in &tensors {
        put_str(&mut header, name);
        header.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            header.extend(d.to_le_bytes());
        }
        header.extend(ty.id().to_le_bytes());
        header.extend(offset.to_le_bytes());
        let n: u64 = ne.iter().product();
        let size = ty.bytes(n);
        sizes.push(size);
        offset += size.div_ceil(ALIGN) * ALIGN;
    }
    while !(header.len() as u64).is_multiple_of(ALIGN) {
        header.push(0);
    }

    let file = std::fs::File::create(&out).unwrap_or_else(|e| {
        eprintln!("make-7b-shaped: cannot create {out}: {e}");
        std::process::exit(2)
    });
    let mut w = BufWriter::with_capacity(8 << 20, file);
    let mut rng = Rng::new(0x7B);
    let pools = [(Ty::Q4K, pool(Ty::Q4K, &mut rng, 509)), (Ty::Q6K, pool(Ty::Q6K, &mut rng, 509))];
    let io = |e: std::io::Error| -> ! {
        eprintln!("make-7b-shaped: writing {out}: {e}");
        std::process::exit(2)
    };
    w.write_all(&header).unwrap_or_else(|e| io(e));
    let mut cursor = 0usize;
    for ((_, ne, ty), size) in tensors.iter().zip(&sizes) {
        match ty {
            Ty::F32 => {
                // Norm weights 1, biases 0.01: finite, unremarkable.
                let v: f32 = if ne.len() == 1 && ne[0] != n_embd { 0.01 } else { 1.0 };
                for _ in 0..ne[0] {
                    w.write_all(&v.to_le_bytes()).unwrap_or_else(|e| io(e));
                }
            }
            Ty::Q4K | Ty::Q6K => {
                let p = &pools.iter().find(|(t, _)| t.id() == ty.id()).expect("pool per type").1;
                let mut left = *size as usize;
                while left > 0 {
                    // A prime-sized pool, entered at a moving offset: rows do not repeat in step.
                    let block = ty.bytes(QK_K as u64) as usize;
                    let start = (cursor % (p.len() / block)) * block;
                    let n = (p.len() - start).min(left);
                    w.write_all(&p[start..start + n]).unwrap_or_else(|e| io(e));
                    left -= n;
                    cursor += 7;
                }
            }
        }
        let pad = (size.div_ceil(ALIGN) * ALIGN - size) as usize;
        w.write_all(&vec![0u8; pad]).unwrap_or_else(|e| io(e));
    }
    w.flush().unwrap_or_else(|e| io(e));
    eprintln!("make-7b-shaped: wrote {out} ({} bytes of tensor data)", offset);
}
