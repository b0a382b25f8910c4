//! The upstream-made APR fixtures: they load, carry what the GGUF they were made from holds, and
//! this crate's writer reproduces them byte for byte.

mod common;

use common::*;
use parallax_apr::{AprFile, TensorType, FLAG_QUANTIZED, FLAG_ROW_MAJOR};
use parallax_quant::GgmlType;
use parallax_source::{CountingSource, MemorySource};

#[test]
fn f32_fixture_loads_with_hf_names_and_metadata() {
    let bytes = fixture("tiny-qwen2.f32.apr");
    let src = CountingSource::new(MemorySource::new(bytes.clone()));
    let file = AprFile::open(&src).unwrap();
    // Opening reads the header and one range up to the data section, nothing more.
    assert_eq!(src.reads(), 3, "header, metadata+index, footer");
    assert_eq!(src.bytes_read(), file.header().data_offset + 4);

    assert_eq!(file.flags(), FLAG_ROW_MAJOR);
    assert_eq!(file.header().version, (2, 0));
    assert_eq!(file.tensors().len(), 27);
    assert_eq!(file.header().metadata_size, 3691);
    assert!(file.footer_crc().is_some());
    assert_eq!(file.verify_footer().unwrap(), file.footer_crc());

    let h = file.hyperparameters().unwrap();
    assert_eq!(h.architecture.as_deref(), Some("qwen2"));
    assert_eq!(
        (
            h.hidden_size,
            h.num_layers,
            h.num_heads,
            h.num_kv_heads,
            h.vocab_size,
            h.intermediate_size
        ),
        (Some(256), Some(2), Some(4), Some(2), Some(320), Some(512))
    );
    assert_eq!(h.max_position_embeddings, Some(128));
    assert_eq!(h.rope_theta, Some(10000.0));
    assert_eq!(h.rope_type, Some(2));
    let golden = golden();
    let eps_bits = golden["metadata"]["rms_norm_eps_f32_bits"].as_u64().unwrap() as u32;
    assert_eq!(h.rms_norm_eps.map(f32::to_bits), Some(eps_bits), "same f32 as the GGUF");
    let meta = file.metadata();
    assert_eq!(meta["tokenizer.vocabulary"], golden["metadata"]["tokenizer.vocabulary"]);
    assert_eq!(meta["tokenizer.merges"], golden["metadata"]["tokenizer.merges"]);
    assert_eq!(meta["tokenizer.bos_token_id"], 1);
    assert_eq!(meta["tokenizer.eos_token_id"], 2);

    let embed = file.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.dims, vec![320, 256]);
    assert_eq!(embed.ne(), vec![256, 320]);
    assert_eq!(embed.dtype, TensorType::Ggml(GgmlType::F32));
    assert_eq!((embed.n_rows(), embed.row_len()), (320, 256));
    assert!(file.tensor("token_embd.weight").is_none());
}

#[test]
fn f32_fixture_tensors_equal_gguf_py_dequantization() {
    let file = open(fixture("tiny-qwen2.f32.apr")).unwrap();
    let golden = golden();
    let tensors = golden["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), file.tensors().len());
    for g in tensors {
        let name = g["hf_name"].as_str().unwrap();
        let t = file.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        let dims: Vec<u64> =
            g["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(t.dims, dims, "{name}");
        assert_eq!(t.dtype_id, 0, "{name}");
        let values = file.tensor_f32(name).unwrap();
        assert_eq!(sha256_hex(&f32_bytes(&values)), g["f32_sha256"].as_str().unwrap(), "{name}");
        // Row reads give the same values as the whole tensor.
        let rows = t.n_rows();
        let mid = file.tensor_rows_f32(name, rows / 2..rows).unwrap();
        assert_eq!(&values[(rows / 2 * t.row_len()) as usize..], &mid[..], "{name}");
    }
}

#[test]
fn writer_reproduces_f32_fixture_byte_for_byte() {
    let bytes = fixture("tiny-qwen2.f32.apr");
    let file = open(bytes.clone()).unwrap();
    let again = rewrite(&file);
    assert_eq!(again.len(), bytes.len());
    let first_diff = again.iter().zip(&bytes).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "first differing byte");
}

/// The raw (`--preserve-q4k`) fixture made by upstream: GGML bytes with GGML ids, no footer.
#[test]
fn raw_fixture_matches_gguf_bytes() {
    let bytes = fixture("tiny-qwen2.raw.apr");
    let file = open(bytes.clone()).unwrap();
    assert_eq!(file.flags(), FLAG_QUANTIZED);
    assert_eq!(file.footer_crc(), None, "upstream's --preserve-q4k file has no footer");
    let golden = golden();
    for g in golden["tensors"].as_array().unwrap() {
        let name = g["gguf_name"].as_str().unwrap();
        let t = file.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(t.dtype_id as u64, g["ggml_type"].as_u64().unwrap(), "{name}");
        let raw = file.tensor_bytes(name).unwrap();
        assert_eq!(sha256_hex(&raw), g["raw_sha256"].as_str().unwrap(), "{name}");
        let values = file.tensor_f32(name).unwrap();
        assert_eq!(sha256_hex(&f32_bytes(&values)), g["f32_sha256"].as_str().unwrap(), "{name}");
    }
    assert_eq!(rewrite(&file), bytes, "writer reproduces the raw fixture");
}
