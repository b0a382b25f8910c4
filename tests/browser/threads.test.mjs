// Every core in the browser: where the page is cross-origin isolated, a run with more than one
// thread goes to a threaded worker (`cargo xtask web-threads`, Trunk's post_build hook), whose
// matmuls run on a rayon pool of Web Workers over shared wasm memory — built with relaxed SIMD's
// integer dot where the browser computes it right, else with simd128. The numbers depend on
// neither: the report of 2 threads is the report of 1 and the CLI's, byte for byte, but for
// `execution.threads` and the kernels note. Where threads cannot run, the page runs on one and
// says why.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium and the shared 0.5B.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { models, hasModel, launchChromium, openPage, assertSameReport, serveModels, runTokens, cliReport, recordWorkerMessages } from './harness.mjs';

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
  const { execution } = JSON.parse(r.json);
  const kernels = execution.notes.find((n) => n.startsWith('kernels: '))?.slice('kernels: '.length);
  return { ...r, threads: execution.threads, kernels };
}

/// The CLI's report of the same tokens (once).
async function nativeReport() {
  native ??= await cliReport(['-m', join(models, MODEL), '--tokens', TOKENS.replace(/ /g, ''), '--no-hash']);
  return native;
}

test('runs on 2 threads, with relaxed SIMD or simd128, report the bytes of a run on 1 thread and of the CLI, but for execution', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { server, base } = await serveModels({ isolated: true });
  try {
    const relaxed = await run(`${base}?model=/models/${MODEL}&threads=2`);
    const simd128 = await run(`${base}?model=/models/${MODEL}&threads=2&kernels=simd128`);
    const one = await run(`${base}?model=/models/${MODEL}&threads=1`);
    // Chromium computes relaxed SIMD's dot right, so the threaded worker built with it runs.
    assert.deepEqual([relaxed.threads, relaxed.kernels], [2, 'simd128_relaxed']);
    assert.deepEqual([simd128.threads, simd128.kernels], [2, 'simd128']);
    assert.deepEqual([one.threads, one.kernels], [1, 'simd128']);
    assert.doesNotMatch(relaxed.console, /did not start|uses one thread/);
    assert.match(simd128.console, /the simd128 kernels, not relaxed SIMD: the page's address asks for the simd128 kernels/);
    assert.match(relaxed.note, /^default \d+ \(this machine has \d+ cores\)$/);
    // Only the threads and kernels lines differ; assertSameReport sets both aside.
    assert.notEqual(relaxed.json, one.json);
    assertSameReport(relaxed.json, one.json, '2 threads, relaxed SIMD vs 1 thread, simd128');
    assertSameReport(simd128.json, one.json, '2 threads, simd128 vs 1 thread');
    assertSameReport(relaxed.json, await nativeReport(), '2 threads, relaxed SIMD vs the CLI');
  } finally { server.close(); }
});

test('every worker build keys the tokenizer\'s hashing with a secret drawn from crypto.getRandomValues', async () => {
  // Where std has no random source (wasm32-unknown-unknown) its hash keys are the same for every
  // visitor; the worker draws its own and says so when it is ready.
  const { server, base } = await serveModels({ isolated: true });
  try {
    for (const query of ['threads=1', 'threads=2', 'threads=2&kernels=simd128']) {
      const { page, errors } = await openPage(browser);
      await recordWorkerMessages(page);
      await page.goto(`${base}?${query}`);
      await page.waitForFunction(() => self.__workerMessages.some((m) => m.text.includes('"kind":"ready"')), null, { timeout: 60000 });
      const ready = (await page.evaluate(() => self.__workerMessages.map((m) => m.text)))
        .filter((text) => text.includes('"kind":"ready"')).map((text) => JSON.parse(text));
      assert.ok(ready.length > 0, query);
      for (const message of ready) assert.deepEqual(message, { kind: 'ready', tokenizer_secret: true }, query);
      await page.close();
      assert.deepEqual(errors, []);
    }
  } finally { server.close(); }
});

test('a copy of the page without the relaxed-SIMD worker runs the simd128 one on as many threads', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { server, base } = await serveModels({ isolated: true, missing: ['/worker_mt_relaxed_loader.js'] });
  try {
    const r = await run(`${base}?model=/models/${MODEL}&threads=2`);
    assert.deepEqual([r.threads, r.kernels], [2, 'simd128']);
    assert.match(r.console, /its relaxed-SIMD build did not start \(its script did not load\); the simd128 kernels run/);
    assertSameReport(r.json, await nativeReport(), 'simd128 after the relaxed worker failed, vs the CLI');
  } finally { server.close(); }
});

// Where threads cannot run: no isolation headers and no service worker to add them, or a copy
// of the page built without its threaded worker (the hook warns where nightly's rust-src is
// missing).
for (const c of [
  { what: 'a page that is not cross-origin isolated', isolated: false, missing: ['/isolation-sw.js'],
    why: 'the page is not cross-origin isolated' },
  { what: 'a copy of the page without its threaded workers', isolated: true, missing: ['/worker_mt_loader.js', '/worker_mt_relaxed_loader.js'],
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

test('a run on another thread count than the worker reading the model\'s summary gets its summary too; a permalink starts no threads', async () => {
  // The demo posts Inspect and then Run at once; the run asks for 1 thread, so the 2-thread
  // worker that took the Inspect is replaced before it can answer: the new one must get it too.
  const { server, base } = await serveModels({ isolated: true });
  try {
    const { page, errors } = await openPage(browser, base);
    // The first worker (2 threads by default) is ready well within 2 s here: the Inspect goes
    // to it, not to the queue of jobs a loading worker gets on "ready".
    await page.waitForTimeout(2000);
    // A page opened to run starts the threaded worker and its pool at once (the pool's threads
    // are workers of blob: scripts, wasm-bindgen-rayon's).
    const scripts = (p) => p.workers().map((w) => w.url().startsWith('blob:') ? 'pool thread' : new URL(w.url()).pathname);
    assert.ok(scripts(page).includes('/worker_mt_relaxed_loader.js'), scripts(page).join(', '));
    assert.ok(scripts(page).includes('pool thread'), scripts(page).join(', '));
    await page.fill('#threads', '1');
    await page.click('#demo');
    await page.waitForSelector('#report .px-verdicts', { timeout: 60000 });
    await page.waitForSelector('#model table', { timeout: 10000 });
    assert.match(await page.textContent('#model'), /blk\.0\.ffn_gate\.weight/);
    // A page opened on a run's permalink only shows the report: it starts no pool of threads.
    const link = await page.getAttribute('#permalink', 'href');
    await page.close();
    const { page: viewer, errors: viewerErrors } = await openPage(browser, new URL(link, base).href);
    await viewer.waitForSelector('#report .px-verdicts', { timeout: 30000 });
    assert.deepEqual(scripts(viewer), ['/worker_loader.js']);
    await viewer.close();
    assert.deepEqual([...errors, ...viewerErrors], []);
  } finally { server.close(); }
});
