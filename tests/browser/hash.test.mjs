// The sha256 of a model opened by URL downloads it once: the hash keeps what it would read twice
// in a spill file in the origin's private file system (crates/session's SpillStore, the worker's
// OpfsSpill). Counted at the server: the bytes a run with the hash asks for against the same run
// without it, on both shared models. Gemma's run reads nearly all of its file, so the hash costs
// at most ×1.1; the 0.5B's run never reads 89 MiB of its untied embedding, which SHA-256 must,
// so there the bound is the file itself, read once. Run by `./dev test` after `trunk build`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { models, serveRange, openPage, modelsRequired, startPage, stopPage } from './harness.mjs';

const GEMMA = 'gemma-3-270m-q4_k_m.gguf';
const QWEN = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';

let server, browser, base;
let served = 0;

before(async () => {
  ({ server, base, browser } = await startPage(async (req, res, pathname) => {
    if (!pathname.startsWith('/models/')) return false;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const file = join(models, pathname.slice('/models/'.length).replace(/[\/\\]/g, ''));
    if (m) {
      const size = (await stat(file).catch(() => ({ size: 0 }))).size;
      served += Math.max(0, Math.min(Number(m[2]), size - 1) - Number(m[1]) + 1);
    }
    await serveRange(req, res, file);
    return true;
  }));
});

after(() => stopPage({ server, browser }));

/// Bytes served for one run of `file` by URL (the hash ticked or not), and the report's sha256.
async function run(file, hash) {
  const { page, errors } = await openPage(browser, `${base}?model=/models/${file}`);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  assert.equal(await page.isChecked('#hash'), true, 'the sha256 is on by default');
  if (!hash) await page.uncheck('#hash');
  served = 0;
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 240000 });
  const bytes = served;
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  const report = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.deepEqual(errors, []);
  await page.close();
  return { bytes, sha256: report.model.sha256 };
}

for (const [file, bound] of [[GEMMA, 'ratio'], [QWEN, 'file']]) {
  test(`${file} by URL with the sha256 downloads no byte twice`, { timeout: 600000 }, async (t) => {
    const path = join(models, file);
    const size = (await stat(path).catch(() => null))?.size;
    if (!size) {
      assert.ok(!modelsRequired, `${file} is missing (CI or PARALLAX_REQUIRE_MODELS=1): run ../shared/models/fetch.sh`);
      return t.skip(`no ${file}`);
    }
    const without = await run(file, false);
    const withHash = await run(file, true);
    const ratio = withHash.bytes / without.bytes;
    console.log(`${file} by URL: ${(without.bytes / 1048576).toFixed(1)} MiB without the hash, ` +
      `${(withHash.bytes / 1048576).toFixed(1)} MiB with it (×${ratio.toFixed(3)}); file ${(size / 1048576).toFixed(1)} MiB`);
    assert.equal(without.sha256, null);
    assert.equal(withHash.sha256, createHash('sha256').update(await readFile(path)).digest('hex'));
    // The run's own reads, and beyond them only what the run never reads, once (1 MiB: the
    // embedding rows and norms read ahead of the hash).
    assert.ok(withHash.bytes <= Math.max(without.bytes, size) + (1 << 20),
      `${file}: ${withHash.bytes} bytes with the hash, file ${size}, run ${without.bytes}`);
    if (bound === 'ratio') assert.ok(ratio <= 1.1, `${file}: ×${ratio.toFixed(3)}`);
  });
}
