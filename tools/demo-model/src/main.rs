//! `make-demo-model [--qwen PATH] [--out DIR]`: writes `DIR/parallax-demo-qwen2.gguf` and
//! `DIR/README.md` (default DIR: `www/demo`, run from the repository root). The tokenizer comes
//! from the shared Qwen2.5 model (`$PARALLAX_MODELS` or `~/.cache/parallax/models`).

use std::path::PathBuf;
use std::process::ExitCode;

use parallax_demo_model::{generate, readme, sha256_hex, FILE_NAME, QWEN_FILE};
use parallax_gguf::GgufFile;
use parallax_source::FileSource;

const USAGE: &str = "usage: make-demo-model [--qwen PATH] [--out DIR]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make-demo-model: {e}");
            ExitCode::from(2)
        }
    }
}

fn default_qwen() -> PathBuf {
    let dir = std::env::var_os("PARALLAX_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/parallax/models")
    });
    dir.join(QWEN_FILE)
}

fn run() -> Result<(), String> {
    let mut qwen = default_qwen();
    let mut out = PathBuf::from("www/demo");
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next().map(PathBuf::from).ok_or_else(|| format!("{a:?} needs a value\n{USAGE}"))
        };
        match a.to_str() {
            Some("--qwen") => qwen = value()?,
            Some("--out") => out = value()?,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    let source = FileSource::open(&qwen).map_err(|e| {
        format!("{}: {e} (run ../shared/models/fetch.sh, or pass --qwen PATH)", qwen.display())
    })?;
    let header = GgufFile::read(&source).map_err(|e| format!("{}: {e}", qwen.display()))?;
    let bytes = generate(&header).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join(FILE_NAME);
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let readme_path = out.join("README.md");
    std::fs::write(&readme_path, readme(&bytes))
        .map_err(|e| format!("{}: {e}", readme_path.display()))?;
    println!("{}: {} bytes, sha256 {}", path.display(), bytes.len(), sha256_hex(&bytes));
    Ok(())
}
