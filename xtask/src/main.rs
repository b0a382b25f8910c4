//! `cargo xtask <verb>`: the project's tooling, in Rust instead of shell.
//!
//! Owns the test tiers (`check`: fast and model-free; `test`: everything), the list of crates
//! that must build for the browser (read from each crate's `[package.metadata.parallax]
//! portable = true`), the fuzz targets (read from `fuzz/Cargo.toml`), corpus minimisation and
//! the cross-check of version pins. Installing toolchain pieces (rust targets, wasm-bindgen,
//! trunk, Chromium, lavapipe) and fetching models stays in `./dev`, which calls this.
//! Knows nothing of Parallax's code: it only runs cargo, node and scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = args.first().map(String::as_str).unwrap_or("");
    let rest = &args[args.len().min(1)..];
    let result = match verb {
        "check" => check(),
        "test" => test(),
        "portable-crates" => portable_crates().map(|c| println!("{}", c.join(" "))),
        "fuzz-targets" => fuzz_targets().map(|t| {
            for t in t {
                println!("{}", t.name);
            }
        }),
        "fuzz" => fuzz(rest),
        "fuzz-smoke" => fuzz_smoke(rest.first().map(String::as_str).unwrap_or("20")),
        "fuzz-cmin" => fuzz_cmin(rest),
        "pin" => pin(rest),
        "check-pins" => check_pins(),
        "check-goldens" => run(Command::new("bash").arg("tools/golden/check_goldens.sh")),
        "web-threads" => web_threads(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask VERB
  check              the fast tier: fmt, clippy (native, and the page's wasm where installed),
                     the tests that need no model, browser or fuzzer
  test               every test (expects ./dev's installs and models; ./dev test does both)
  portable-crates    the crates that must build for wasm32 (metadata.parallax.portable)
  fuzz-targets       the fuzz targets of fuzz/Cargo.toml
  fuzz TARGET [SECONDS] [libFuzzer args]
  fuzz-smoke [SECONDS]   every fuzz target briefly (20 s each)
  fuzz-cmin TARGET [KIB] fold what runs found into fuzz/corpus/TARGET, minimised and small
  pin NAME           a pinned tool version (wasm-bindgen), read from Cargo.toml
  check-pins         the wasm-bindgen pin agrees in Cargo.toml, Cargo.lock and Trunk.toml
  check-goldens      rerun every golden generator that runs offline and diff its output
  web-threads        the page's threaded worker, into $TRUNK_STAGING_DIR (Trunk's post_build hook)";

type Result<T = (), E = String> = std::result::Result<T, E>;

/// The repository root: from `CARGO_MANIFEST_DIR` as `cargo run` (the `xtask` alias) sets it for
/// this process, else as it was when this binary was compiled. The run's first: one target
/// directory shared by several checkouts (CI's cache, a second clone) can hand a checkout the
/// binary another one compiled, which then built and linted that other tree's sources — the
/// page's threaded workers came from a stale clone that way.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().expect("xtask sits in the repository").into()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn step(what: &str) {
    eprintln!("\x1b[1m==> {what}\x1b[0m");
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

/// Formatting and lints of every workspace here (the main one, fuzz/, bench/peers/).
fn lint() -> Result {
    step("cargo fmt --check (workspace, fuzz, bench/peers)");
    for manifest in ["Cargo.toml", "fuzz/Cargo.toml", "bench/peers/Cargo.toml"] {
        run(cargo().args(["fmt", "--all", "--check", "--manifest-path", manifest]))?;
    }
    step("cargo clippy --workspace --all-targets -- -D warnings");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

/// Whether the page's lints may be skipped where their toolchain is missing.
#[derive(PartialEq)]
enum PageLints {
    /// `./dev test`: installs the toolchain first, so a missing piece is an error.
    Required,
    /// `./dev check`: the fast tier installs nothing beyond rustfmt and clippy; it skips a lint
    /// whose target or toolchain is missing and says so.
    WhereInstalled,
}

/// Clippy of the page's wasm code: the app and the workers with simd128 (stable), and the
/// threaded worker (nightly, build-std, relaxed SIMD). Code behind `cfg(target_arch = "wasm32")`
/// and the `threads` feature is invisible to the native lint, and a lint only CI ran had cost a
/// CI round (session 20).
fn lint_page(lints: PageLints) -> Result {
    let wasm_target =
        Command::new("rustup").args(["target", "list", "--installed"]).output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|l| l == "wasm32-unknown-unknown")
        });
    if wasm_target || lints == PageLints::Required {
        step("cargo clippy of the page's wasm code (app, worker, simd128) -- -D warnings");
        run(cargo()
            .args(["clippy", "--target", "wasm32-unknown-unknown", "-p", "parallax-web", "--bins"])
            .args(["--", "-D", "warnings"])
            .env_remove("RUSTFLAGS"))?;
    } else {
        step("skipped: clippy of the page's wasm code (no wasm32-unknown-unknown target; `./dev setup`)");
    }
    match (nightly_rust_src(), lints) {
        (Err(why), PageLints::WhereInstalled) => {
            step(&format!("skipped: clippy of the page's threaded worker ({why})"));
            Ok(())
        }
        (ready, _) => {
            ready?;
            step("cargo clippy of the page's threaded worker (nightly, build-std, relaxed SIMD) -- -D warnings");
            // Under the folder trunk builds in, where its hook builds the workers: one std.
            run(ThreadedWorker::Relaxed
                .cargo("clippy", &target_dir().join("web"))
                .args(["--", "-D", "warnings"]))
        }
    }
}

/// The fast tier: what a change to any crate must pass, in minutes, with no model, browser,
/// GPU install or fuzzer. Model tests are skipped by name (`PARALLAX_ALLOW_MISSING_MODELS`
/// with an empty model folder), so the tier does not depend on what the cache holds.
fn check() -> Result {
    let started = Instant::now();
    lint()?;
    lint_page(PageLints::WhereInstalled)?;
    step("cargo test --workspace (model-free: the model folder is empty)");
    let empty = target_dir().join("xtask-no-models");
    std::fs::create_dir_all(&empty).map_err(|e| format!("{}: {e}", empty.display()))?;
    run(cargo()
        .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .env("PARALLAX_MODELS", &empty)
        .env("PARALLAX_ALLOW_MISSING_MODELS", "1")
        .env_remove("PARALLAX_REQUIRE_GPU")
        .env_remove("CI"))?;
    step("cargo test --workspace --doc");
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    check_pins()?;
    check_locks()?;
    eprintln!("check passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every test. Expects what `./dev test` installs first: the wasm targets, wasm-bindgen, trunk,
/// Chromium with playwright-core, lavapipe, the shared models and the 7B-shaped model.
fn test() -> Result {
    let started = Instant::now();
    lint()?;
    check_pins()?;
    check_locks()?;
    step("cargo test (workspace, real models)");
    run(cargo().args(["test", "--workspace", "--all-targets", "--no-fail-fast"]))?;
    step("doctests");
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    step("wasm32 builds of the portable crates (without simd128: the scalar fallback builds too)");
    let mut build = cargo();
    // An empty RUSTFLAGS replaces .cargo/config.toml's +simd128 for this build.
    build.args(["build", "--target", "wasm32-unknown-unknown"]).env("RUSTFLAGS", "");
    for c in portable_crates()? {
        build.args(["-p", &c]);
    }
    run(&mut build)?;
    run(cargo()
        .args([
            "build",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "parallax-engine",
            "--no-default-features",
        ])
        .env("RUSTFLAGS", ""))?;
    step("quant kernels and metrics linted as wasm: without SIMD, with simd128, with relaxed SIMD");
    // Linted as built, tests included: code behind cfg(target_feature = ...) (and what only it
    // uses) is invisible to the native lint, and to a wasm build without the feature.
    let simd128 = "-C target-feature=+simd128";
    let relaxed = "-C target-feature=+simd128,+relaxed-simd";
    let builds = [("", "wasip1-plain"), (simd128, "wasip1-simd128"), (relaxed, "wasip1-relaxed")];
    for (flags, folder) in builds {
        run(cargo()
            .args(["clippy", "-p", "parallax-quant", "-p", "parallax-metrics"])
            .args(["--target", "wasm32-wasip1", "--all-targets", "--", "-D", "warnings"])
            .env("RUSTFLAGS", flags)
            .env("CARGO_TARGET_DIR", target_dir().join(folder)))?;
    }
    step("quant kernels and the metrics' exponentials as wasm simd128, tested against the scalar reference under node");
    let runner = format!("node --no-warnings {}", root().join("tools/wasi-run.mjs").display());
    run(cargo()
        .args([
            "test",
            "-p",
            "parallax-quant",
            "-p",
            "parallax-metrics",
            "--target",
            "wasm32-wasip1",
        ])
        .env("RUSTFLAGS", simd128)
        .env("CARGO_TARGET_DIR", target_dir().join("wasip1-simd128"))
        .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", runner))?;
    step("quant kernels with relaxed SIMD as well, tested against the scalar reference under wasmtime");
    // Not node 20: relaxed SIMD only behind a flag there, and one of its dots is wrong
    // (tools/wasi-run.py).
    let wasmtime = format!("python3 {}", root().join("tools/wasi-run.py").display());
    run(cargo()
        .args(["test", "-p", "parallax-quant", "--target", "wasm32-wasip1"])
        .env("RUSTFLAGS", relaxed)
        .env("CARGO_TARGET_DIR", target_dir().join("wasip1-relaxed"))
        .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", wasmtime))?;
    lint_page(PageLints::Required)?;
    let web_target = target_dir().join("web");
    step("web app build (trunk) and browser tests (headless chromium)");
    // Plain `trunk build`: its simd128 flag comes from .cargo/config.toml, as for any user, and
    // its post_build hook makes the threaded worker.
    run(Command::new("trunk")
        .args(["build", "--release"])
        .current_dir(root())
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &web_target))?;
    for build in ThreadedWorker::ALL {
        let loader = format!("dist/{}_loader.js", build.name());
        if !root().join(&loader).is_file() {
            return Err(format!("`trunk build` made no threaded worker ({loader})"));
        }
    }
    // The hostile-metadata test's model: the demo with HTML/script in its strings.
    let hostile = target_dir().join("parallax-hostile.gguf");
    run(cargo()
        .args(["run", "-q", "-p", "parallax-demo-model", "--bin", "make-hostile-model", "--"])
        .arg(root().join("www/demo/parallax-demo-qwen2.gguf"))
        .arg(&hostile)
        .stdout(std::process::Stdio::null()))?;
    // The two-file test's second file: the demo with every matrix re-quantized to Q8_0.
    let requantized = target_dir().join("parallax-demo-requantized-q8_0.gguf");
    run(cargo()
        .args(["run", "-q", "-p", "parallax-demo-model", "--bin", "make-requantized-model", "--"])
        .arg(root().join("www/demo/parallax-demo-qwen2.gguf"))
        .arg(&requantized))?;
    // The page's reports are compared with the CLI's (built by cargo test above).
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .current_dir(root().join("tests/browser"))
        .env("PARALLAX_BIN", target_dir().join("debug/parallax"))
        .env("PARALLAX_HOSTILE_MODEL", &hostile)
        .env("PARALLAX_REQUANTIZED_MODEL", &requantized))?;
    step("fuzz smoke (every target briefly; cargo xtask fuzz TARGET SECONDS for longer)");
    fuzz_smoke(&std::env::var("FUZZ_SMOKE_SECONDS").unwrap_or_else(|_| "20".into()))?;
    eprintln!("all tests passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Workspace packages whose manifest says `[package.metadata.parallax] portable = true`: they
/// must build for wasm32-unknown-unknown, because the page runs them.
fn portable_crates() -> Result<Vec<String>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["parallax"]["portable"].as_bool() == Some(true))
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err("no crate says [package.metadata.parallax] portable = true".into());
    }
    Ok(names)
}

struct FuzzTarget {
    name: String,
    features: Vec<String>,
}

/// The `[[bin]]` targets of fuzz/Cargo.toml with their `required-features`.
fn fuzz_targets() -> Result<Vec<FuzzTarget>> {
    let path = root().join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value = |line: &str, key: &str| -> Option<String> {
        let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
        Some(rest.to_string())
    };
    let mut targets: Vec<FuzzTarget> = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if !in_bin {
            continue;
        }
        if let Some(v) = value(line, "name") {
            targets.push(FuzzTarget { name: v.trim_matches('"').into(), features: Vec::new() });
        } else if let (Some(v), Some(t)) = (value(line, "required-features"), targets.last_mut()) {
            t.features = v
                .trim_matches(['[', ']'])
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .filter(|f| !f.is_empty())
                .collect();
        }
    }
    if targets.is_empty() {
        return Err(format!("{} names no [[bin]] target", path.display()));
    }
    Ok(targets)
}

fn fuzz_target(name: &str) -> Result<FuzzTarget> {
    let all = fuzz_targets()?;
    let names: Vec<String> = all.iter().map(|t| t.name.clone()).collect();
    all.into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("no fuzz target `{name}`; the targets are {}", names.join(", ")))
}

/// `cargo +nightly fuzz run` of one target on its committed corpus (read only) plus a working
/// corpus in the build folder, in a build folder of its own (the sanitizer flags would
/// otherwise rebuild the main workspace). A crash leaves its input in fuzz-artifacts/TARGET.
fn fuzz_command(t: &FuzzTarget, corpora: &[PathBuf]) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root().join("fuzz"))
        .env("CARGO_TARGET_DIR", target_dir().join("fuzz"))
        .args(["+nightly", "fuzz", "run"]);
    if !t.features.is_empty() {
        c.args(["--features", &t.features.join(",")]);
    }
    c.arg(&t.name).args(corpora);
    c
}

fn fuzz_run(t: &FuzzTarget, seconds: &str, extra: &[String]) -> Command {
    let work = target_dir().join("fuzz-corpus").join(&t.name);
    let artifacts = target_dir().join("fuzz-artifacts").join(&t.name);
    let _ = std::fs::create_dir_all(&work);
    let _ = std::fs::create_dir_all(&artifacts);
    let mut c = fuzz_command(t, &[work, PathBuf::from("corpus").join(&t.name)]);
    c.arg("--").args([
        format!("-max_total_time={seconds}"),
        "-timeout=10".into(),
        "-rss_limit_mb=2048".into(),
        "-malloc_limit_mb=512".into(),
        "-max_len=65536".into(),
        format!("-artifact_prefix={}/", artifacts.display()),
        "-print_final_stats=1".into(),
    ]);
    c.args(extra);
    c
}

fn fuzz(args: &[String]) -> Result {
    let name = args.first().ok_or("usage: cargo xtask fuzz TARGET [SECONDS] [libFuzzer args]")?;
    let seconds = args.get(1).map(String::as_str).unwrap_or("600");
    run(&mut fuzz_run(&fuzz_target(name)?, seconds, args.get(2..).unwrap_or(&[])))
}

fn fuzz_smoke(seconds: &str) -> Result {
    for t in fuzz_targets()? {
        step(&format!("fuzz smoke: {} ({seconds} s)", t.name));
        let log = target_dir().join(format!("fuzz-smoke-{}.log", t.name));
        let _ = std::fs::create_dir_all(target_dir());
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let status = fuzz_run(&t, seconds, &[])
            .stdout(file)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
            return Err(format!(
                "fuzz target {} failed (full log {}; the input is in {}/)",
                t.name,
                log.display(),
                target_dir().join("fuzz-artifacts").join(&t.name).display()
            ));
        }
        for line in text.lines().filter(|l| {
            l.starts_with("stat::number_of_executed_units")
                || l.starts_with("stat::average_exec_per_sec")
        }) {
            eprintln!("{line}");
        }
    }
    Ok(())
}

/// Keep what long runs found, small: the inputs that add coverage (libFuzzer -merge), smallest
/// first up to KIB KiB and 256 files, merged once more, replace the hash-named files of
/// fuzz/corpus/TARGET. The named seeds (derived from real files, see fuzz/README.md) stay.
fn fuzz_cmin(args: &[String]) -> Result {
    let name = args.first().ok_or("usage: cargo xtask fuzz-cmin TARGET [KIB]")?;
    let kib: u64 = args.get(1).map_or(Ok(48), |k| k.parse()).map_err(|_| "KIB is a number")?;
    let t = fuzz_target(name)?;
    let tmp = target_dir().join(format!("fuzz-cmin-{name}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let (all, small, min) = (tmp.join("all"), tmp.join("small"), tmp.join("min"));
    for d in [&all, &small, &min] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let corpus = root().join("fuzz/corpus").join(name);
    let work = target_dir().join("fuzz-corpus").join(name);
    let merge = ["--", "-merge=1", "-max_len=65536"];
    run(fuzz_command(&t, &[all.clone(), corpus.clone(), work]).args(merge))?;
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&all)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.len(), e.path())))
        .collect();
    files.sort();
    let (mut used, mut count) = (0u64, 0usize);
    for (size, path) in files {
        if used + size > kib * 1024 || count >= 256 {
            break;
        }
        std::fs::copy(&path, small.join(path.file_name().unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        used += size;
        count += 1;
    }
    run(fuzz_command(&t, &[min.clone(), small]).args(merge))?;
    // Hash-named files (40 hex digits) are the fuzzer's; named seeds are kept.
    let is_hash_name = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.len() == 40 && n.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    };
    for e in std::fs::read_dir(&corpus).map_err(|e| e.to_string())?.flatten() {
        if is_hash_name(&e.path()) {
            std::fs::remove_file(e.path()).map_err(|e| e.to_string())?;
        }
    }
    let mut kept = 0;
    for e in std::fs::read_dir(&min).map_err(|e| e.to_string())?.flatten() {
        std::fs::copy(e.path(), corpus.join(e.file_name())).map_err(|e| e.to_string())?;
        kept += 1;
    }
    eprintln!("fuzz/corpus/{name}: {kept} minimised files added");
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// The wasm-bindgen version the workspace pins (`wasm-bindgen = "=X"` in Cargo.toml): the one
/// source of the pin, which `./dev` installs and Trunk.toml must name.
fn wasm_bindgen_pin() -> Result<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("wasm-bindgen = \"="))
        .and_then(|rest| rest.split('"').next())
        .map(String::from)
        .ok_or_else(|| "Cargo.toml pins no wasm-bindgen (`wasm-bindgen = \"=X.Y.Z\"`)".into())
}

fn pin(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("wasm-bindgen") => {
            println!("{}", wasm_bindgen_pin()?);
            Ok(())
        }
        _ => Err("usage: cargo xtask pin wasm-bindgen".into()),
    }
}

fn check_pins() -> Result {
    let pin = wasm_bindgen_pin()?;
    let trunk = std::fs::read_to_string(root().join("Trunk.toml")).map_err(|e| e.to_string())?;
    let trunk_pin = trunk
        .lines()
        .find_map(|l| l.trim().strip_prefix("wasm_bindgen = \""))
        .and_then(|r| r.split('"').next())
        .ok_or("Trunk.toml names no [tools] wasm_bindgen")?;
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| e.to_string())?;
    let locked = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .and_then(|r| r.split('"').next())
        .ok_or("Cargo.lock has no wasm-bindgen")?;
    if trunk_pin != pin || locked != pin {
        return Err(format!(
            "the wasm-bindgen pins disagree: Cargo.toml ={pin}, Trunk.toml {trunk_pin}, Cargo.lock {locked}"
        ));
    }
    eprintln!("pins agree: wasm-bindgen {pin}");
    Ok(())
}

/// The lock files of the workspaces outside the main one (the fuzz targets, the peer benches)
/// are up to date with their manifests: their builds run without `--locked`, so a dependency
/// added to a shared crate would otherwise change what they build with, unnoticed.
fn check_locks() -> Result {
    for manifest in ["fuzz/Cargo.toml", "bench/peers/Cargo.toml"] {
        run(cargo()
            .args(["metadata", "--locked", "--format-version", "1", "--manifest-path", manifest])
            .stdout(std::process::Stdio::null()))
        .map_err(|e| format!("{e}: the lock file beside {manifest} needs updating: `cargo update --workspace --manifest-path {manifest}` adds what is missing without moving the other versions"))?;
    }
    eprintln!("lock files up to date: fuzz, bench/peers");
    Ok(())
}

/// The page's threaded workers: the worker binary with the `threads` feature, built by nightly
/// Rust with its standard library rebuilt for shared memory (`+atomics,+bulk-memory`; stable
/// Rust ships no such std), bound by wasm-bindgen as an ES module (wasm-bindgen-rayon's
/// helpers start its threads as module workers), plus the three-line loader the page starts.
/// Twice: with simd128 (`worker_mt`), and with relaxed SIMD's integer dot in the k-quant kernels
/// too (`worker_mt_relaxed`), which the page loads where the browser runs that instruction
/// right (see `parallax_web::RELAXED_SIMD_PROBE`).
///
/// Trunk runs this as a post_build hook, so plain `trunk build` and `trunk serve` ship them:
/// files go to `$TRUNK_STAGING_DIR`, optimised when `$TRUNK_PROFILE` is `release`. Without
/// nightly's `rust-src` (`./dev setup` installs it) it says so and builds nothing: the page then
/// runs on one thread and says why. The single-threaded worker (stable) stays the default.
fn web_threads() -> Result {
    let out = std::env::var_os("TRUNK_STAGING_DIR")
        .map(PathBuf::from)
        .ok_or("web-threads writes into $TRUNK_STAGING_DIR: run it through `trunk build`")?;
    let release = std::env::var("TRUNK_PROFILE").is_ok_and(|p| p == "release");
    if let Err(why) = nightly_rust_src() {
        eprintln!("warning: no threaded worker: {why}; the page will run on one thread");
        return Ok(());
    }
    for build in ThreadedWorker::ALL {
        step(&format!(
            "the page's threaded worker {} (nightly, build-std, +atomics)",
            build.name()
        ));
        let mut cargo = build.cargo("build", &target_dir());
        if release {
            cargo.arg("--release");
        }
        run(&mut cargo)?;
        let profile = if release { "release" } else { "debug" };
        let wasm = build
            .target(&target_dir())
            .join("wasm32-unknown-unknown")
            .join(profile)
            .join("worker.wasm");
        run(Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-name", build.name(), "--out-dir"])
            .arg(&out)
            .arg(&wasm))?;
        // The page starts `NAME_loader.js?threads=N` as a module worker; the worker reads N
        // from its own address and starts that many threads before it says it is ready.
        std::fs::write(
            out.join(format!("{}_loader.js", build.name())),
            format!(
                "// Made by `cargo xtask web-threads`: the page's threaded worker.\n\
                 import init from './{}.js';\n\
                 await init();\n",
                build.name()
            ),
        )
        .map_err(|e| format!("cannot write the threaded worker's loader: {e}"))?;
    }
    Ok(())
}

/// The two builds of the page's threaded worker.
#[derive(Clone, Copy)]
enum ThreadedWorker {
    Simd128,
    Relaxed,
}

impl ThreadedWorker {
    const ALL: [ThreadedWorker; 2] = [ThreadedWorker::Simd128, ThreadedWorker::Relaxed];

    /// Its file names' stem in the bundle (the page starts `STEM_loader.js`).
    fn name(self) -> &'static str {
        match self {
            ThreadedWorker::Simd128 => "worker_mt",
            ThreadedWorker::Relaxed => "worker_mt_relaxed",
        }
    }

    /// Its own build folder under `base`: the flags differ, and so does nightly's std built
    /// with them.
    fn target(self, base: &Path) -> PathBuf {
        base.join(match self {
            ThreadedWorker::Simd128 => "wasm-threads",
            ThreadedWorker::Relaxed => "wasm-threads-relaxed",
        })
    }

    /// `cargo VERB` of this build in its folder under `base`: nightly, std rebuilt, shared
    /// memory.
    fn cargo(self, verb: &str, base: &Path) -> Command {
        // Shared, imported memory up to wasm32's 4 GiB, and the thread-local storage symbols
        // wasm-bindgen needs to give each thread its own.
        let link = [
            "--shared-memory",
            "--import-memory",
            "--max-memory=4294967296",
            "--export=__wasm_init_tls",
            "--export=__tls_size",
            "--export=__tls_align",
            "--export=__tls_base",
        ];
        let mut rustflags =
            String::from("-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals");
        if let ThreadedWorker::Relaxed = self {
            rustflags.push_str(",+relaxed-simd");
        }
        for arg in link {
            rustflags.push_str(" -C link-arg=");
            rustflags.push_str(arg);
        }
        let mut cargo = Command::new("rustup");
        cargo
            .args(["run", "nightly", "cargo", verb, "--target", "wasm32-unknown-unknown"])
            .args(["-Z", "build-std=panic_abort,std", "-p", "parallax-web", "--bin", "worker"])
            .args(["--features", "threads"])
            .current_dir(root())
            .env("RUSTFLAGS", &rustflags)
            .env("CARGO_TARGET_DIR", self.target(base))
            // The stable toolchain of the cargo that runs xtask must not leak into nightly's.
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC");
        cargo
    }
}

/// Whether nightly Rust with its library sources (for `-Z build-std`) is installed.
fn nightly_rust_src() -> Result {
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match sysroot {
        Some(s) if s.join("lib/rustlib/src/rust/library/std").is_dir() => Ok(()),
        _ => Err("it needs nightly Rust with rust-src (`rustup component add rust-src \
                  --toolchain nightly`, or `./dev setup`)"
            .into()),
    }
}
