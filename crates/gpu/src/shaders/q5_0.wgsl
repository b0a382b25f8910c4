// Q5_0: 22-byte blocks of 32 — d: f16 @0, qh: u32 @2 (bit j = 5th bit of value j), qs[16] @6
// (low nibbles = values 0..16, high = 16..32); x = (q − 16)·d (dequantize_row_q5_0).
struct Chunk {
    d: f32,
    qh: u32,
    base: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    let base = row_base + c * 22u;
    let qh = u16_at(base + 2u) | (u16_at(base + 4u) << 16u);
    return Chunk(f16_at(base), qh, base);
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    let b = byte_at(ch.base + 6u + (l & 15u));
    let lo = select(b & 0xfu, b >> 4u, l >= 16u);
    let hi = ((ch.qh >> l) & 1u) << 4u;
    return f32(i32(lo | hi) - 16) * ch.d;
}
