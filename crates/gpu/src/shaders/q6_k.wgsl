// Q6_K: 210-byte super-blocks of 256 — ql[128] @0 (low 4 bits), qh[64] @128 (high 2 bits),
// scales: i8[16] @192, d: f16 @208. Chunk c of 8: half n = c/4, group g = c%4; value l takes
// ql[64n + l + 32·(g&1)] (low nibble for g < 2, high otherwise), bits 2g of qh[32n + l], scale
// sc[8n + l/16 + 2g]; y = (d·sc)·(q − 32) as ggml evaluates `d * sc[is] * q` (dequantize_row_q6_k).
struct Chunk {
    d_lo: f32, // d·sc for l < 16
    d_hi: f32, // d·sc for l ≥ 16
    ql: u32,
    qh: u32,
    g: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    let base = row_base + (c / 8u) * 210u;
    let n = (c % 8u) / 4u;
    let g = c % 4u;
    let d = f16_at(base + 208u);
    let is = base + 192u + 8u * n + 2u * g;
    let d_lo = d * f32(i8_of(byte_at(is)));
    let d_hi = d * f32(i8_of(byte_at(is + 1u)));
    return Chunk(d_lo, d_hi, base + 64u * n + 32u * (g & 1u), base + 128u + 32u * n, g);
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    let lo = (byte_at(ch.ql + l) >> (4u * (ch.g >> 1u))) & 0xfu;
    let hi = (byte_at(ch.qh + l) >> (2u * ch.g)) & 3u;
    let q = i32(lo | (hi << 4u)) - 32;
    return select(ch.d_lo, ch.d_hi, l >= 16u) * f32(q);
}
