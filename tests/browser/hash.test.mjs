// The sha256 of a model opened by URL downloads it once: the hash keeps what it would read twice
// in a spill file in the origin's private file system (crates/session's SpillStore, the worker's
// OpfsSpill). Counted at the server, in bytes sent (a request cancelled at a jump in the file asked
// for more than crossed the wire): a run with the hash against the same run without it, on both
// shared models. Gemma's run reads all of its file (its head is its embedding), so the hash costs
// nothing more; the 0.5B's run never reads 89 MiB of its untied embedding, which SHA-256 must.
// Run by `./dev test` after `trunk build`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { models, serveRange, openPage, modelsRequired, startPage, stopPage } from './harness.mjs';

const GEMMA = 'gemma-3-270m-q4_k_m.gguf';
const QWEN = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';

let server, browser, base;
// Bytes asked for (the Range lengths) and bytes sent (written to the socket: a request the
// fetch worker cancels at a jump in the file asked for more than crosses the wire).
let served = 0;
let sent = 0;

before(async () => {
  ({ server, base, browser } = await startPage(async (req, res, pathname) => {
    if (!pathname.startsWith('/models/')) return false;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const file = join(models, pathname.slice('/models/'.length).replace(/[\/\\]/g, ''));
    if (m) {
      const size = (await stat(file).catch(() => ({ size: 0 }))).size;
      served += Math.max(0, Math.min(Number(m[2]), size - 1) - Number(m[1]) + 1);
    }
    const write = res.write.bind(res);
    res.write = (chunk, ...rest) => { sent += chunk.length; return write(chunk, ...rest); };
    await serveRange(req, res, file);
    return true;
  }));
});

after(() => stopPage({ server, browser }));

/// Bytes served for `file` opened by URL (its summary) and run once (the hash ticked or not),
/// and the report's sha256.
async function run(file, hash) {
  served = 0;
  sent = 0;
  const { page, errors } = await openPage(browser, `${base}?model=/models/${file}`);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  assert.equal(await page.isChecked('#hash'), true, 'the sha256 is on by default');
  if (!hash) await page.uncheck('#hash');
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 240000 });
  const [bytes, bytesSent] = [served, sent];
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  const report = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.deepEqual(errors, []);
  await page.close();
  return { bytes, bytesSent, sha256: report.model.sha256 };
}

/// The bytes of `file` a run never reads and its hash must: an untied embedding (the run reads
/// only its prompt's rows), as `parallax_session::hash_unread_bytes` counts them.
function unreadBytes(file) {
  const summary = JSON.parse(execFileSync(process.env.PARALLAX_BIN, ['inspect', '-m', file, '--json'], { maxBuffer: 1 << 28 }));
  const bytes = (role) => summary.tensors.find((t) => t.role === role)?.bytes;
  return bytes('output.weight') === undefined ? 0 : bytes('token_embd.weight') ?? 0;
}

/// The header is read in pieces of 1 MiB (`parallax_source::FIRST_HEADER_CHUNK`): the summary's
/// last piece runs up to this far past it, and the run asks for its first piece again (the
/// answer names the file's version, the same: the rest of the header is the summary's, kept).
const HEADER_PIECE = 1 << 20;

/// The prompt's rows of the token embedding, read on their own before the layers (the 0.5B's
/// are inside what its run never reads otherwise; Gemma reads its embedding again, whole, as its
/// output head): a few KiB a token, well under this.
const PROMPT_ROWS = 1 << 20;

for (const file of [GEMMA, QWEN]) {
  test(`${file} by URL with the sha256 downloads no byte twice`, { timeout: 600000 }, async (t) => {
    const path = join(models, file);
    const size = (await stat(path).catch(() => null))?.size;
    if (!size) {
      assert.ok(!modelsRequired, `${file} is missing (CI or PARALLAX_REQUIRE_MODELS=1): run ../shared/models/fetch.sh`);
      return t.skip(`no ${file}`);
    }
    const without = await run(file, false);
    const withHash = await run(file, true);
    const unread = unreadBytes(path);
    const mib = (b) => (b / 1048576).toFixed(1);
    console.log(`${file} by URL: sent ${mib(without.bytesSent)} MiB without the hash, ${mib(withHash.bytesSent)} MiB ` +
      `with it (asked ${mib(without.bytes)} / ${mib(withHash.bytes)} MiB); the run never reads ${mib(unread)} MiB; ` +
      `file ${mib(size)} MiB`);
    assert.equal(without.sha256, null);
    // Without the hash, the server sends what the summary and the run read — the file but what
    // the run never reads, the header once and two pieces of it more, the prompt's rows — and
    // not a byte past it: the fetch worker's requests end where the run's plan jumps (the 0.5B
    // stores its layers 0, 1, 10–19, 2, 20–23, 3–9), not 16 MiB on (that sent 406–417 MiB here,
    // by timing), and none reads across a layer the run reads elsewhere.
    const reads = size - unread + 2 * HEADER_PIECE + PROMPT_ROWS;
    assert.ok(without.bytesSent <= reads,
      `${file}: ${without.bytesSent} bytes sent without the hash for a run that reads ${reads}`);
    assert.equal(withHash.sha256, createHash('sha256').update(await readFile(path)).digest('hex'));
    // Every byte crossed once for the hash but what the run itself reads twice (the header's
    // first piece, and Gemma's prompt rows, which its head reads again); beyond the run's own
    // download, only what the run never reads (what the page's note beside the checkbox says
    // it costs).
    assert.ok(withHash.bytesSent >= size, `${file}: ${withHash.bytesSent} bytes sent, file ${size}`);
    assert.ok(withHash.bytesSent <= size + HEADER_PIECE + PROMPT_ROWS,
      `${file}: ${withHash.bytesSent} bytes sent with the hash, file ${size}`);
    assert.ok(withHash.bytesSent <= without.bytesSent + unread,
      `${file}: ${withHash.bytesSent} bytes sent with the hash, ${without.bytesSent} without, unread ${unread}`);
  });
}
