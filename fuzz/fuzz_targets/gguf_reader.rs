//! The GGUF header reader on arbitrary bytes: strict and lenient UTF-8, then a first row of each
//! tensor. (What is done with an opened model is the `model_open` target.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_gguf::{GgufFile, ReadOptions};
use parallax_source::MemorySource;

fuzz_target!(|data: &[u8]| {
    let source = MemorySource::new(data);
    let strict = GgufFile::read_with(&source, ReadOptions::default().strict_utf8(true));
    let lenient = GgufFile::read(&source);
    if let Ok(file) = strict {
        // A file the strict reader accepts is accepted by the lenient one, identically
        // (compared through Debug: a NaN value is not equal to itself).
        let other = lenient.as_ref().expect("strict accepted, lenient refused");
        assert_eq!(format!("{:?}", file.metadata()), format!("{:?}", other.metadata()));
        assert_eq!(file.tensors(), other.tensors());
    }
    if let Ok(file) = lenient {
        for t in file.tensors().iter().take(16) {
            let _ = file.tensor_rows(&source, t, 0..t.n_rows().min(1));
        }
    }
});
