//! The APR v2 reader on arbitrary bytes (the header CRC is repaired first, unless the last header
//! byte is odd, so the fuzzer gets past it), then payload reads of each tensor. (What is done
//! with an opened model is the `model_open` target.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_apr::AprFile;
use parallax_source::MemorySource;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 64 && bytes[..4] == *b"APR\0" && bytes[63] & 1 == 0 {
        let head: [u8; 64] = bytes[..64].try_into().unwrap();
        let crc = parallax_apr::header_crc(&head);
        bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(file) = AprFile::open(MemorySource::new(bytes)) else {
        return;
    };
    let _ = file.hyperparameters();
    let _ = file.verify_footer();
    for t in file.tensors().iter().take(16) {
        let rows = t.n_rows().min(1);
        let _ = file.tensor_rows(&t.name, 0..rows);
        let _ = file.tensor_rows_f32(&t.name, 0..rows);
        if t.size <= 1 << 16 {
            let _ = file.tensor_f32(&t.name);
        }
    }
});
