//! A second file of the demo's network with other types: every matrix re-quantized to Q8_0
//! from the values the demo's own types decode to, vectors copied. Compatible with the demo
//! (same architecture, shapes and vocabulary) and close to it, yet not identical, so it is what
//! the tests and demos that compare two files run against.

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile, MetaValue};
use parallax_source::MemorySource;

use crate::quant::quantize_q8_0;
use crate::DemoError;

/// `general.file_type` of a file whose matrices are all Q8_0 (llama.cpp's `MOSTLY_Q8_0`).
const FILE_TYPE_MOSTLY_Q8_0: u32 = 7;

/// The demo model's bytes with every tensor of two or more dimensions re-quantized to Q8_0.
pub fn requantized_q8_0(demo: &[u8]) -> Result<Vec<u8>, DemoError> {
    let src = MemorySource::new(demo);
    let file = GgufFile::read(&src).map_err(|e| DemoError::new(format!("the demo model: {e}")))?;
    let bad = |e: parallax_gguf::writer::WriteError| DemoError::new(e.to_string());
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        let value = match key.as_str() {
            "general.file_type" => MetaValue::from(FILE_TYPE_MOSTLY_Q8_0),
            _ => value.clone(),
        };
        w.add(key, value).map_err(bad)?;
    }
    for t in file.tensors() {
        let bytes = file.tensor_bytes(&src, t).map_err(|e| DemoError::new(e.to_string()))?;
        if t.dims.len() < 2 {
            w.add_tensor(&t.name, &t.dims, t.ty, bytes).map_err(bad)?;
            continue;
        }
        let mut values = vec![0f32; t.n_elements as usize];
        parallax_quant::dequantize(t.ty, &bytes, &mut values)
            .map_err(|e| DemoError::new(format!("{}: {e}", t.name)))?;
        let q8 = quantize_q8_0(&values).map_err(|e| DemoError::new(format!("{}: {e}", t.name)))?;
        w.add_tensor(&t.name, &t.dims, GgmlType::Q8_0, q8.bytes).map_err(bad)?;
    }
    Ok(w.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every matrix is Q8_0 and decodes close to the demo's values (to the same values where the
    /// demo's was Q8_0 already); every vector is the demo's, byte for byte.
    #[test]
    fn matrices_become_q8_0_close_to_the_demo_and_vectors_stay() {
        let demo = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../www/demo/parallax-demo-qwen2.gguf"),
        )
        .unwrap();
        let bytes = requantized_q8_0(&demo).unwrap();
        let (a_src, b_src) = (MemorySource::new(&demo[..]), MemorySource::new(&bytes[..]));
        let (a, b) = (GgufFile::read(&a_src).unwrap(), GgufFile::read(&b_src).unwrap());
        assert_eq!(b.tensors().len(), a.tensors().len());
        assert_eq!(b.get_u32("general.file_type"), Some(FILE_TYPE_MOSTLY_Q8_0));
        assert_eq!(b.get_str("general.name"), a.get_str("general.name"));
        for (ta, tb) in a.tensors().iter().zip(b.tensors()) {
            assert_eq!((&ta.name, &ta.dims), (&tb.name, &tb.dims));
            let (ba, bb) =
                (a.tensor_bytes(&a_src, ta).unwrap(), b.tensor_bytes(&b_src, tb).unwrap());
            if ta.dims.len() < 2 {
                assert_eq!((tb.ty, &bb), (ta.ty, &ba), "{}", ta.name);
                continue;
            }
            assert_eq!(tb.ty, GgmlType::Q8_0, "{}", ta.name);
            let mut va = vec![0f32; ta.n_elements as usize];
            let mut vb = va.clone();
            parallax_quant::dequantize(ta.ty, &ba, &mut va).unwrap();
            parallax_quant::dequantize(tb.ty, &bb, &mut vb).unwrap();
            let err: f64 = va.iter().zip(&vb).map(|(x, y)| f64::from(x - y).powi(2)).sum();
            let norm: f64 = va.iter().map(|x| f64::from(*x).powi(2)).sum();
            let rel = (err / norm).sqrt();
            if ta.ty == GgmlType::Q8_0 {
                // Q8_0 values quantize back to themselves.
                assert_eq!(rel, 0.0, "{}", ta.name);
            } else {
                assert!(rel > 0.0 && rel < 0.02, "{}: relative L2 {rel}", ta.name);
            }
        }
    }
}
