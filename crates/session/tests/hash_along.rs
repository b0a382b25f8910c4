//! The sha256 hashed along a real run reads the file once plus only what the run skips: counted
//! at the bottom of a read-ahead stack (the page's `ReadAhead` window, and a native
//! `BackgroundReadAhead`), with the hash and without, on the shared real models.

use std::sync::Mutex;

use parallax_engine::{PathKind, Run, RunInput, RunOptions};
use parallax_model::{Model, Role};
use parallax_session::{record_sha256, HashAlong, MemorySpill, NoSpill, SpillStore};
use parallax_source::{BackgroundReadAhead, ByteSource, FileSource, ReadAhead, SourceError};
use parallax_testkit::{model_path, GEMMA_270M, QWEN_0_5B};
use sha2::{Digest, Sha256};

/// The network (or disk): counts every byte and logs every read, in order.
struct Logged {
    inner: FileSource,
    reads: Mutex<Vec<(u64, u64)>>,
}

impl Logged {
    fn bytes(&self) -> u64 {
        self.reads.lock().unwrap().iter().map(|r| r.1).sum()
    }
}

impl ByteSource for Logged {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.inner.read_exact_at(offset, buf)?;
        self.reads.lock().unwrap().push((offset, buf.len() as u64));
        Ok(())
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}

#[derive(Clone, Copy, Debug)]
enum Stack {
    /// The page's: a 32 MiB `ReadAhead` window over the file.
    Page,
    /// A native read-ahead's: a 256 MiB `BackgroundReadAhead`, reading on a thread of its own
    /// (the CLI's stack, but for the hash: the CLI hashes each file whole beside the run).
    Background,
}

struct Measured {
    bytes: u64,
    own_bytes: u64,
    digest: Option<String>,
    report_json: String,
    reads: Vec<(u64, u64)>,
}

fn logged(path: &std::path::Path) -> Logged {
    Logged { inner: FileSource::open(path).unwrap(), reads: Mutex::default() }
}

/// One q8 run over two tokens, hashed along when `hash`.
fn measure(path: &std::path::Path, stack: Stack, hash: bool) -> Measured {
    let hashing = if hash { HashAlong::new(logged(path)) } else { HashAlong::off(logged(path)) };
    measure_with(stack, hashing)
}

fn measure_with<K: SpillStore + Send + Sync + 'static>(
    stack: Stack,
    hashing: Hashing<K>,
) -> Measured {
    match stack {
        Stack::Page => run(&ReadAhead::new(hashing, 32 << 20), |s| s.inner()),
        Stack::Background => run(&BackgroundReadAhead::new(hashing, 256 << 20), |s| s.inner()),
    }
}

type Hashing<K = NoSpill> = HashAlong<Logged, fn(u64, u64), K>;

fn run<S: ByteSource, K: SpillStore>(source: &S, hashing: impl Fn(&S) -> &Hashing<K>) -> Measured {
    let model = Model::open(source).unwrap();
    let opts = RunOptions { paths: vec![PathKind::Q8], ..RunOptions::default() };
    let input = RunInput { tokens: vec![9707, 11], ..RunInput::default() };
    let mut report = Run::new(&model, &input, &opts).run().unwrap();
    let hashing = hashing(source);
    let digest = hashing.finish().unwrap();
    record_sha256(&mut report, std::slice::from_ref(&digest));
    let logged = hashing.inner();
    Measured {
        bytes: logged.bytes(),
        own_bytes: hashing.own_bytes(),
        digest,
        report_json: report.to_json(),
        reads: logged.reads.lock().unwrap().clone(),
    }
}

/// Bytes of a file of `len` bytes that no read touched.
fn never_read(len: u64, reads: &[(u64, u64)]) -> u64 {
    let mut spans: Vec<(u64, u64)> = reads.iter().map(|&(a, n)| (a, a + n)).collect();
    spans.sort();
    let (mut covered, mut to) = (0u64, 0u64);
    for (a, b) in spans {
        if b > to {
            covered += b - a.max(to);
            to = b;
        }
    }
    len - covered
}

/// The reads as regions of the file, in order, runs of one region merged: what the run reads
/// when (printed, for the record).
fn read_order(model: &Model<FileSource>, reads: &[(u64, u64)]) -> String {
    let region = |offset: u64| -> String {
        let Some(t) = model
            .tensors()
            .iter()
            .find(|t| t.offset <= offset && offset < t.offset + t.n_bytes.max(1))
        else {
            let first = model.tensors().iter().map(|t| t.offset).min().unwrap_or(0);
            return if offset < first { "header".into() } else { "between tensors".into() };
        };
        match t.role {
            Some(Role::Layer { layer, .. }) => format!("layer {layer}"),
            _ => t.name.clone(),
        }
    };
    let mut out: Vec<(String, u64)> = Vec::new();
    for &(offset, len) in reads {
        let r = region(offset);
        match out.last_mut() {
            Some((last, n)) if *last == r => *n += len,
            _ => out.push((r, len)),
        }
    }
    out.iter()
        .map(|(r, n)| format!("{r} ({:.1} MiB)", *n as f64 / 1048576.0))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn check(file: &str) {
    let Some(path) = model_path(file) else { return };
    let bytes = std::fs::read(&path).unwrap();
    let whole = hex::encode(Sha256::digest(&bytes));
    drop(bytes);
    let model = Model::open(FileSource::open(&path).unwrap()).unwrap();
    let embd = model.tensors().iter().find(|t| t.role == Some(Role::TokenEmbd)).unwrap();
    let embd_bytes = embd.n_bytes;
    let tied = model.tensors().iter().all(|t| t.role != Some(Role::Output));
    for stack in [Stack::Page, Stack::Background] {
        let without = measure(&path, stack, false);
        let with = measure(&path, stack, true);
        let ratio = with.bytes as f64 / without.bytes as f64;
        eprintln!(
            "{file} ({stack:?}, {} head): {:.1} MiB without the hash, {:.1} MiB with ({:.1} MiB for the hash alone): ×{ratio:.3}; file {:.1} MiB, embedding {:.1} MiB\n  order with the hash: {}",
            if tied { "tied" } else { "untied" },
            without.bytes as f64 / 1048576.0,
            with.bytes as f64 / 1048576.0,
            with.own_bytes as f64 / 1048576.0,
            model.source().len() as f64 / 1048576.0,
            embd_bytes as f64 / 1048576.0,
            read_order(&model, &with.reads),
        );
        assert_eq!(with.digest.as_deref(), Some(whole.as_str()), "{file} ({stack:?}): the digest");
        assert_eq!(without.digest, None);
        // The report is today's, byte for byte, but for the digest it now carries.
        assert_eq!(
            with.report_json.replace(&format!("\"{whole}\""), "null"),
            without.report_json,
            "{file} ({stack:?}): the report"
        );
        // Every byte the hash reads itself it reads once; the run's own reads are unchanged.
        assert_eq!(with.bytes, without.bytes + with.own_bytes, "{file} ({stack:?})");
        // What the design promises: the hash reads the bytes the run never reads, plus what
        // the run reads only after the hash needed it — the head when it lies before the layers
        // (a tied head always: it is the embedding, read again after the last layer), and the
        // layers a file stores before a layer numbered lower (`blk.10` before `blk.2`). Hashing
        // those when the run reads them would mean reading the layers after them again;
        // holding them, memory beyond a layer. The 1 MiB covers the norms and embedding rows
        // read far ahead of the hash, which are read again when it gets there.
        let skipped = never_read(model.source().len(), &without.reads);
        let head = model.tensors().iter().find(|t| t.role == Some(Role::Output)).unwrap_or(embd);
        let in_layer = |il: u32| {
            let tensors = model.tensors().iter();
            tensors
                .filter(move |t| matches!(t.role, Some(Role::Layer { layer, .. }) if layer == il))
        };
        let layer_start = |il: u32| in_layer(il).map(|t| t.offset).min().unwrap();
        let layer_bytes = |il: u32| -> u64 { in_layer(il).map(|t| t.n_bytes).sum() };
        let n_layers = (0..)
            .take_while(|&il| {
                model
                    .tensors()
                    .iter()
                    .any(|t| matches!(t.role, Some(Role::Layer { layer, .. }) if layer == il))
            })
            .count() as u32;
        let head_first = if head.offset < layer_start(0) { head.n_bytes } else { 0 };
        let mut reordered = 0;
        for il in 1..n_layers {
            if (0..il).any(|lower| layer_start(lower) > layer_start(il)) {
                reordered += layer_bytes(il);
            }
        }
        let promised = skipped + head_first + reordered + (1 << 20);
        eprintln!(
            "  never read by the run {:.1} MiB, head before the layers {:.1} MiB, layers stored before a lower one {:.1} MiB",
            skipped as f64 / 1048576.0,
            head_first as f64 / 1048576.0,
            reordered as f64 / 1048576.0
        );
        assert!(
            skipped <= with.own_bytes && with.own_bytes <= promised,
            "{file} ({stack:?}): the hash read {} bytes itself; promised at most {promised}",
            with.own_bytes
        );
        // What the page says the hash costs this model bounds what it read.
        let estimate = parallax_session::hash_extra_bytes(&model.summary());
        assert!(with.own_bytes <= estimate + (1 << 20), "{file}: estimated {estimate}");
        if tied && reordered == 0 {
            // Exactly the embedding but the prompt's rows, which pass in order before layer 0.
            assert!(with.own_bytes <= embd_bytes && with.own_bytes + (1 << 20) >= embd_bytes);
        }
        if head_first == 0 && reordered == 0 && skipped < without.bytes / 20 {
            assert!(ratio <= 1.1, "{file} ({stack:?}): ×{ratio:.3}");
        }
    }
}

#[test]
fn qwen_0_5b_hashed_along_its_run() {
    check(QWEN_0_5B);
}

#[test]
fn gemma_270m_hashed_along_its_run() {
    check(GEMMA_270M);
}

/// With a spill store (the page keeps it on disk, in the origin's private file system) and its
/// compression on other threads (the page's pool), the hash reads no byte twice: beyond the
/// run's own reads it reads only the bytes the run never reads, through both front ends' source
/// stacks, on both real models (a tied head, an untied
/// one and layers stored out of order), with the same digest and report. Where the run reads
/// nearly all of the file (Gemma's tied head), that is ×1.1 or less of a run without the hash.
/// It cannot be less than the file over the run's reads: the 0.5B's untied embedding is 89 MiB
/// the run never reads (only its prompt's rows) and SHA-256 must.
fn check_spilled(file: &str) {
    let Some(path) = model_path(file) else { return };
    let whole = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    let len = std::fs::metadata(&path).unwrap().len();
    for stack in [Stack::Page, Stack::Background] {
        let without = measure(&path, stack, false);
        // As the page hashes a URL: its compression in jobs on other threads (the pool's).
        let threads: parallax_session::Spawner = std::sync::Arc::new(|job| {
            std::thread::spawn(job);
        });
        let spilled = measure_with(
            stack,
            HashAlong::new(logged(&path)).with_spill(MemorySpill::default()).hashing_on(threads),
        );
        let ratio = spilled.bytes as f64 / without.bytes as f64;
        let skipped = never_read(len, &without.reads);
        let again = spilled.bytes - (len - never_read(len, &spilled.reads));
        eprintln!(
            "{file} ({stack:?}) with a spill store: {:.1} MiB against {:.1} MiB without the hash (×{ratio:.3}); the run never reads {:.1} MiB of the {:.1} MiB file (×{:.3}); read twice: {:.2} MiB",
            spilled.bytes as f64 / 1048576.0,
            without.bytes as f64 / 1048576.0,
            skipped as f64 / 1048576.0,
            len as f64 / 1048576.0,
            (without.bytes + skipped) as f64 / without.bytes as f64,
            again as f64 / 1048576.0
        );
        assert_eq!(
            spilled.digest.as_deref(),
            Some(whole.as_str()),
            "{file} ({stack:?}): the digest"
        );
        assert_eq!(
            spilled.report_json.replace(&format!("\"{whole}\""), "null"),
            without.report_json,
            "{file} ({stack:?}): the report"
        );
        assert!(again <= 1 << 20, "{file} ({stack:?}): {again} bytes read twice");
        // What the page says the hash costs with its spill store: what the run never reads.
        let said = parallax_session::hash_unread_bytes(
            &Model::open(FileSource::open(&path).unwrap()).unwrap().summary(),
        );
        assert!(said.abs_diff(skipped) <= 1 << 20, "{file}: said {said}, skipped {skipped}");
        assert!(spilled.bytes <= without.bytes + skipped + (1 << 20), "{file} ({stack:?})");
        if skipped < without.bytes / 20 {
            assert!(ratio <= 1.1, "{file} ({stack:?}): ×{ratio:.3} with a spill store");
        }
    }
}

#[test]
fn qwen_0_5b_hashed_along_with_a_spill_store_reads_no_byte_twice() {
    check_spilled(QWEN_0_5B);
}

#[test]
fn gemma_270m_hashed_along_with_a_spill_store_reads_its_file_once() {
    check_spilled(GEMMA_270M);
}
