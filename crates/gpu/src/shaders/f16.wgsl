// F16 rows: 2 bytes per value (ggml_fp16_to_fp32, exact).
struct Chunk {
    unused: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    return Chunk(0u);
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    return f16_at(row_base + 2u * (c * 32u + l));
}
