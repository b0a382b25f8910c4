// Shared by every matmul kernel: bindings, byte access into the packed weights, the token tile
// and the workgroup reduction. A kernel file after this one defines
//   struct Chunk, fn load_chunk(row_base: u32, c: u32) -> Chunk and
//   fn chunk_value(ch: Chunk, row_base: u32, c: u32, l: u32) -> f32
// for chunk c (values 32c .. 32c+32 of a row whose bytes start at row_base).
//
// One workgroup computes one output row for up to TOK tokens (workgroup_id.y picks the token
// tile); its WG lanes take the row's 32-value chunks in turn, accumulate in f32, then add their
// partial sums in a fixed tree, so every output has the same order of operations on every run.

struct Params {
    rows: u32,      // rows of this tile (the output holds n_tokens × rows)
    cols: u32,      // values per row
    n_tokens: u32,
    row_bytes: u32, // bytes per packed row
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 64u;
const TOK: u32 = 8u;

var<workgroup> partial: array<f32, 512>; // WG × TOK
var<private> acc: array<f32, 8>;

fn byte_at(o: u32) -> u32 {
    return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

// `o` is even: every u16 / f16 field of a GGML block sits at an even offset of an even-sized
// block (or of a row of them).
fn u16_at(o: u32) -> u32 {
    return (w[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu;
}

fn i8_of(b: u32) -> i32 {
    return bitcast<i32>(b << 24u) >> 24u;
}

// IEEE half → f32, exact for every finite half including subnormals (which some
// unpack2x16float implementations flush to zero).
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        let v = f32(m) * 5.9604644775390625e-8; // m · 2^-24, exact
        return select(v, -v, sign != 0u);
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn f16_at(o: u32) -> f32 {
    return f16_to_f32(u16_at(o));
}

@compute @workgroup_size(64)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row = wid.x;
    let tok0 = wid.y * TOK;
    let ntok = min(TOK, p.n_tokens - tok0);
    let row_base = row * p.row_bytes;
    let n_chunks = (p.cols + 31u) / 32u;
    for (var t = 0u; t < TOK; t++) {
        acc[t] = 0.0;
    }
    for (var c = lane; c < n_chunks; c += WG) {
        let ch = load_chunk(row_base, c);
        let k0 = c * 32u;
        let n = min(32u, p.cols - k0);
        for (var l = 0u; l < n; l++) {
            let v = chunk_value(ch, row_base, c, l);
            for (var t = 0u; t < ntok; t++) {
                acc[t] += v * x[(tok0 + t) * p.cols + k0 + l];
            }
        }
    }
    for (var t = 0u; t < TOK; t++) {
        partial[lane * TOK + t] = acc[t];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            for (var t = 0u; t < TOK; t++) {
                partial[lane * TOK + t] += partial[(lane + s) * TOK + t];
            }
        }
        workgroupBarrier();
    }
    if (lane < ntok) {
        y[(tok0 + lane) * p.rows + row] = partial[lane];
    }
}

// The dequantized row itself (tests: the shader's dequantization against the CPU's, bit for bit).
@compute @workgroup_size(64)
fn dequant(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row = wid.x;
    let row_base = row * p.row_bytes;
    let n_chunks = (p.cols + 31u) / 32u;
    for (var c = lane; c < n_chunks; c += WG) {
        let ch = load_chunk(row_base, c);
        let k0 = c * 32u;
        let n = min(32u, p.cols - k0);
        for (var l = 0u; l < n; l++) {
            y[row * p.cols + k0 + l] = chunk_value(ch, row_base, c, l);
        }
    }
}
