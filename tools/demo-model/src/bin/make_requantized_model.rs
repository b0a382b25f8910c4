//! `make-requantized-model DEMO.gguf OUT.gguf`: the demo model with every matrix re-quantized
//! to Q8_0 (see `parallax_demo_model::requantize`), the second file of the two-file tests.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: make-requantized-model DEMO.gguf OUT.gguf");
        std::process::exit(2);
    }
    let result = std::fs::read(&args[1])
        .map_err(|e| format!("cannot read {}: {e}", args[1]))
        .and_then(|demo| {
            parallax_demo_model::requantize::requantized_q8_0(&demo).map_err(|e| e.to_string())
        })
        .and_then(|bytes| {
            std::fs::write(&args[2], bytes).map_err(|e| format!("cannot write {}: {e}", args[2]))
        });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
