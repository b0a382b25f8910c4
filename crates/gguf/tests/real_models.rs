//! The two real models (see common::real_model for where they are looked up). Expected numbers
//! come from gguf-py's GGUFReader on the same files.

mod common;

use common::real_model;
use parallax_gguf::{GgmlType, GgufFile, MetaArray};
use parallax_source::{ByteSource, CountingSource, FileSource};

struct Expect {
    file: &'static str,
    arch: &'static str,
    n_tensors: usize,
    n_kv: usize,
    block_count: u64,
    n_tokens: usize,
    data_offset: u64,
    first: (&'static str, GgmlType, [u64; 2], u64),
}

const QWEN: Expect = Expect {
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    arch: "qwen2",
    n_tensors: 291,
    n_kv: 26,
    block_count: 24,
    n_tokens: 151936,
    data_offset: 5947776,
    first: ("output.weight", GgmlType::Q8_0, [896, 151936], 144643072),
};

const GEMMA: Expect = Expect {
    file: "gemma-3-270m-q4_k_m.gguf",
    arch: "gemma3",
    n_tensors: 236,
    n_kv: 33,
    block_count: 18,
    n_tokens: 262144,
    data_offset: 6525120,
    first: ("output_norm.weight", GgmlType::F32, [640, 1], 2560),
};

fn check(e: &Expect) {
    let Some(path) = real_model(e.file) else {
        return;
    };
    let src = CountingSource::new(FileSource::open(&path).unwrap());
    let file = GgufFile::read(&src).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let header_bytes = src.bytes_read();
    eprintln!(
        "{}: header {} bytes (data at {}), read {} bytes in {} reads, file {} bytes",
        e.file,
        file.header_len(),
        file.data_offset(),
        header_bytes,
        src.reads(),
        src.len()
    );

    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture"), Some(e.arch));
    assert_eq!(file.get_u64(&format!("{}.block_count", e.arch)), Some(e.block_count));
    assert_eq!(file.metadata().len(), e.n_kv);
    assert_eq!(file.tensors().len(), e.n_tensors);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.data_offset(), e.data_offset);
    assert_eq!(
        file.get_str_arr("tokenizer.ggml.tokens").map(parallax_gguf::StringArray::len),
        Some(e.n_tokens)
    );
    match file.get_arr("tokenizer.ggml.token_type") {
        Some(MetaArray::I32(v)) => assert_eq!(v.len(), e.n_tokens),
        other => panic!("token_type: {other:?}"),
    }
    assert!(file.repaired_strings().is_empty(), "{:?}", file.repaired_strings());

    let t = &file.tensors()[0];
    let (name, ty, [ne0, ne1], n_bytes) = e.first;
    assert_eq!((t.name.as_str(), t.ty, t.ne(0), t.ne(1), t.n_bytes), (name, ty, ne0, ne1, n_bytes));
    for t in file.tensors() {
        assert!(t.offset >= file.data_offset() && t.offset + t.n_bytes <= src.len(), "{}", t.name);
        assert_eq!(t.offset % 32, 0);
        assert_eq!(Some(t.n_bytes), t.ty.bytes_for(t.n_elements));
        assert!(
            matches!(
                t.ty,
                GgmlType::F32 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_K | GgmlType::Q6_K
            ),
            "{} is {}",
            t.name,
            t.ty
        );
    }
    // The whole data section is accounted for: the last tensor ends within one alignment of EOF.
    let end = file.tensors().iter().map(|t| t.offset + t.n_bytes).max().unwrap();
    assert!(src.len() - end < 32);

    // The header read pulls the header plus at most one read-ahead chunk, never the data, and no
    // byte twice.
    assert!(header_bytes >= file.header_len());
    assert!(header_bytes <= file.header_len() + (1 << 20), "{header_bytes}");

    // One row of a matrix is read with exactly one row's bytes.
    let t = file.tensors().iter().find(|t| t.n_rows() > 1).unwrap();
    let before = src.bytes_read();
    let row = file.tensor_rows(&src, t, 1..2).unwrap();
    assert_eq!(row.len() as u64, t.row_bytes());
    assert_eq!(src.bytes_read() - before, t.row_bytes());
}

#[test]
fn qwen2_5_coder_0_5b_header() {
    check(&QWEN);
    let Some(path) = real_model(QWEN.file) else {
        return;
    };
    let file = GgufFile::read(&FileSource::open(path).unwrap()).unwrap();
    assert_eq!(
        file.get_str_arr("tokenizer.ggml.merges").map(parallax_gguf::StringArray::len),
        Some(151387)
    );
    assert_eq!(file.get_str("tokenizer.ggml.model"), Some("gpt2"));
    let counts = |ty| file.tensors().iter().filter(|t| t.ty == ty).count();
    assert_eq!(
        [GgmlType::Q5_0, GgmlType::F32, GgmlType::Q8_0, GgmlType::Q6_K, GgmlType::Q4_K].map(counts),
        [133, 121, 13, 12, 12]
    );
}

#[test]
fn gemma3_270m_header() {
    check(&GEMMA);
}
