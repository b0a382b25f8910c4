// Q4_K: 144-byte super-blocks of 256 — d: f16 @0, dmin: f16 @2, scales[12] @4 (8 × 6-bit scale,
// 8 × 6-bit min), qs[128] @16. Chunk j of 8: bytes qs[32·(j/2) ..], low nibbles for even j,
// high for odd; y = (d·sc_j)·q − (dmin·m_j), both products rounded to f32 first
// (dequantize_row_q4_k with get_scale_min_k4).
struct Chunk {
    d1: f32,
    m1: f32,
    qbase: u32,
    shift: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    let base = row_base + (c / 8u) * 144u;
    let j = c % 8u;
    let d = f16_at(base);
    let dmin = f16_at(base + 2u);
    let s = base + 4u;
    var sc: u32;
    var m: u32;
    if (j < 4u) {
        sc = byte_at(s + j) & 63u;
        m = byte_at(s + j + 4u) & 63u;
    } else {
        sc = (byte_at(s + j + 4u) & 0xfu) | ((byte_at(s + j - 4u) >> 6u) << 4u);
        m = (byte_at(s + j + 4u) >> 4u) | ((byte_at(s + j) >> 6u) << 4u);
    }
    return Chunk(d * f32(sc), dmin * f32(m), base + 16u + 32u * (j / 2u), 4u * (j % 2u));
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    let q = (byte_at(ch.qbase + l) >> ch.shift) & 0xfu;
    return ch.d1 * f32(q) - ch.m1;
}
