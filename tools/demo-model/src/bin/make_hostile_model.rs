//! `make-hostile-model DEMO.gguf OUT.gguf`: the demo model with HTML/script payloads in its
//! name, a tensor name, tokenizer pieces and chat template (see `parallax_demo_model::hostile`).
//! Prints the token ids that carry the hostile pieces.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: make-hostile-model DEMO.gguf OUT.gguf");
        std::process::exit(2);
    }
    let result = std::fs::read(&args[1])
        .map_err(|e| format!("cannot read {}: {e}", args[1]))
        .and_then(|demo| {
            parallax_demo_model::hostile::hostile_model(&demo).map_err(|e| e.to_string())
        })
        .and_then(|(bytes, ids)| {
            std::fs::write(&args[2], bytes)
                .map_err(|e| format!("cannot write {}: {e}", args[2]))?;
            Ok(ids)
        });
    match result {
        Ok(ids) => println!("{}", ids.map(|i| i.to_string()).join(",")),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
