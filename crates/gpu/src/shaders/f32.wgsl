// F32 rows: 4 bytes per value, row_base is a multiple of 4.
struct Chunk {
    unused: u32,
}

fn load_chunk(row_base: u32, c: u32) -> Chunk {
    return Chunk(0u);
}

fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32 {
    return bitcast<f32>(w[(row_base >> 2u) + c * 32u + l]);
}
