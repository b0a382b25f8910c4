// Every core in the browser: where the page is cross-origin isolated, a run with more than one
// thread goes to the threaded worker (`cargo xtask web-threads`, Trunk's post_build hook), whose
// matmuls run on a rayon pool of Web Workers over shared wasm memory. The numbers do not depend on
// it: the report of 2 threads is the report of 1 and the CLI's, byte for byte, but for
// `execution.threads`. Where threads cannot run, the page runs on one and says why.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium and the shared 0.5B.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { models, hasModel, launchChromium, assertSameReport, serveModels, runTokens } from './harness.mjs';

const MODEL = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const TOKENS = '3838, 374, 220, 17, 10, 17, 30';
let browser, native, skip = false;

before(async () => {
  skip = !(await hasModel(MODEL));
  browser = await launchChromium();
});

after(async () => { await browser?.close(); });

/// Open `url`, run the tokens without the hash, and return the report's JSON, the threads it
/// records, the threads field's note and the page's console.
async function run(url) {
  const r = await runTokens(browser, url, {
    tokens: TOKENS,
    inspect: async (page) => ({ note: await page.textContent('#threads-note') }),
  });
  return { ...r, threads: JSON.parse(r.json).execution.threads };
}

/// The CLI's report of the same tokens (once).
async function nativeReport() {
  if (!native) {
    const bin = process.env.PARALLAX_BIN;
    assert.ok(bin, 'PARALLAX_BIN must name the native parallax binary (./dev test sets it)');
    const dir = await mkdtemp(join(tmpdir(), 'parallax-threads-'));
    try {
      const out = join(dir, 'native.json');
      try {
        execFileSync(bin, ['run', '-m', join(models, MODEL), '--tokens', TOKENS.replace(/ /g, ''), '--no-hash', '-q', '--json', out]);
      } catch (e) {
        if (e.status !== 1) throw e; // 1 = a contract failed; the numbers are still compared
      }
      native = await readFile(out, 'utf8');
    } finally { await rm(dir, { recursive: true, force: true }); }
  }
  return native;
}

test('a run on 2 threads reports the bytes of a run on 1 thread and of the CLI, but for execution.threads', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { server, base } = await serveModels({ isolated: true });
  try {
    const two = await run(`${base}?model=/models/${MODEL}&threads=2`);
    const one = await run(`${base}?model=/models/${MODEL}&threads=1`);
    assert.equal(two.threads, 2, 'the threaded worker ran the matmuls on 2 threads');
    assert.equal(one.threads, 1);
    assert.doesNotMatch(two.console, /did not start|uses one thread/);
    assert.match(two.note, /^default \d+ \(this machine has \d+ cores\)$/);
    // Only the threads line differs; assertSameReport sets `threads` aside like the kernels.
    assert.notEqual(two.json, one.json);
    assertSameReport(two.json, one.json, '2 threads vs 1');
    assertSameReport(two.json, await nativeReport(), '2 threads vs the CLI');
  } finally { server.close(); }
});

// Where threads cannot run: no isolation headers and no service worker to add them, or a copy
// of the page built without its threaded worker (the hook warns where nightly's rust-src is
// missing).
for (const c of [
  { what: 'a page that is not cross-origin isolated', isolated: false, missing: ['/isolation-sw.js'],
    why: 'the page is not cross-origin isolated' },
  { what: 'a copy of the page without its threaded worker', isolated: true, missing: ['/worker_mt_loader.js'],
    why: 'this page\'s threaded worker did not start' },
]) {
  test(`${c.what} runs on one thread and says why`, async (t) => {
    if (skip) return t.skip(`${MODEL} not in ${models}`);
    const { server, base } = await serveModels({ isolated: c.isolated, missing: c.missing });
    try {
      const r = await run(`${base}?model=/models/${MODEL}&threads=2`);
      assert.equal(r.threads, 1);
      assert.ok(r.note.startsWith(`The run uses one thread: ${c.why}`), r.note);
      assert.ok(r.console.includes(c.why), r.console);
      assertSameReport(r.json, await nativeReport(), `${c.what}, vs the CLI`);
    } finally { server.close(); }
  });
}
