//! What the `parallax` binary's end-to-end tests share: running it, reading what it wrote, and
//! a folder of their own.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use parallax_tests::repo_root;

pub fn parallax(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parallax")).args(args).output().expect("run parallax")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The page's demo model (committed, small): a 3-layer qwen2 whose layers are ~370 KiB of weights.
pub fn demo() -> PathBuf {
    repo_root().join("www/demo/parallax-demo-qwen2.gguf")
}

/// A folder of its own for each test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parallax-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A JSON file the binary wrote.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The binary refused the input: exit code 2 and a sentence on stderr that contains `needle`.
pub fn assert_refused(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains(needle), "expected `{needle}` in: {e}");
}
