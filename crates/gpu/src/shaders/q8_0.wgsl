// Q8_0: 34-byte blocks of 32 — d: f16 @0, qs: i8[32] @2; x = q·d (dequantize_row_q8_0).
struct Chunk {
    d: f32,
    base: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    let base = row_base + c * 34u;
    return Chunk(f16_at(base), base);
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    return f32(i8_of(byte_at(ch.base + 2u + l))) * ch.d;
}
