// Two files of one network in the page: the demo model against its copy with every matrix
// re-quantized to Q8_0 (tools/demo-model's make-requantized-model; ./dev test makes it and names
// it in PARALLAX_REQUANTIZED_MODEL). The report shows the verdict, the weights table, the
// per-position KLD strip and the tensor ranking, and its JSON is the native CLI's, byte for byte.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { root, shared, launchChromium, openPage, assertSameReport, serveRange, startPage, stopPage, cliReport } from './harness.mjs';

const demo = join(root, 'www/demo/parallax-demo-qwen2.gguf');
const requantized = process.env.PARALLAX_REQUANTIZED_MODEL;
const prompt = 'What is 2+2?';
// The demo's matrices that are not Q8_0 already (the embedding is) differ in the copy; its
// vectors and its embedding are the same values.
const DIFFERING = 21;
const IDENTICAL = 17;
// f32 is the reference; q8, f32@2 and q8@2 are compared with it at each of the 7 positions.
const LANES = ['q8', 'f32@2', 'q8@2'];
const POSITIONS = 7;
const KLD_LEVELS = 10;
const screenshots = join(root, 'target', 'screenshots');

let server, browser, base;

before(async () => {
  assert.ok(requantized, 'PARALLAX_REQUANTIZED_MODEL must name the re-quantized demo (./dev test makes it)');
  // /files/NAME serves the two test files over Range requests, as a model server must.
  const files = { [basename(demo)]: demo, [basename(requantized)]: requantized };
  ({ server, base, browser } = await startPage(async (req, res, pathname) => {
    if (!pathname.startsWith('/files/')) return false;
    const file = files[pathname.slice('/files/'.length)];
    if (file) await serveRange(req, res, file);
    else { res.writeHead(404); res.end('no such file'); }
    return true;
  }));
  await mkdir(screenshots, { recursive: true });
});

after(() => stopPage({ server, browser }));

/// Run the page's report to the end and return its JSON as downloaded.
async function runAndDownload(page) {
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 60000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  return readFile(await download.path(), 'utf8');
}

test('two dropped files: verdict, weights table, KLD strip and ranking shown, and the report is the CLI\'s byte for byte', async () => {
  const nativeText = await cliReport(['-m', demo, '--against', requantized, '-p', prompt]);

  const { page, errors } = await openPage(browser, base);
  await page.setViewportSize({ width: 1366, height: 800 });
  await page.setInputFiles('#file', demo);
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  await page.setInputFiles('#against-file', requantized);
  assert.match(await page.textContent('#against-name'), new RegExp(`Compared with ${basename(requantized)}`));
  // The reference field lists every path on both files.
  assert.match(await page.textContent('#lane-list'), /one of f32, q8, f32@2, q8@2/);
  await page.fill('#tokens', '');
  await page.fill('#prompt', prompt);
  const webText = await runAndDownload(page);

  assert.match(await page.textContent('#report .px-verdicts h3'), /Verdict: PASS/);
  // The files contract's KLD tests are measured, not judged: no band is known for two files.
  assert.match(await page.textContent('#report .px-verdicts'), /3 measured \(no band known for them\)/);
  assert.match(await page.textContent('#report .px-verdict-tables'), /PARALLAX-FILES-008/);
  // The files, the weights table worst first with the identical ones folded into one line.
  assert.equal(await page.$$eval('#report .px-files tr', (r) => r.length), 1 + 2);
  assert.equal(await page.$$eval('#report .px-weights-table tr', (r) => r.length), 1 + DIFFERING);
  assert.equal((await page.textContent('#report .px-identical')).trim(), `${IDENTICAL} tensors identical in every file`);
  assert.match(await page.textContent('#report .px-weights'), /as llama-quantize types: Q8_0/);
  const relL2 = await page.$$eval('#report .px-weights-table tr td:nth-child(5)', (c) => c.map((td) => Number(td.textContent)));
  assert.deepEqual(relL2, [...relL2].sort((a, b) => b - a), 'worst first');
  // One strip cell per lane and position, plus the colour bar's boxes, with its ticks.
  assert.equal(await page.$$eval('#report .px-kld svg rect', (r) => r.length), LANES.length * POSITIONS + KLD_LEVELS);
  assert.match(await page.textContent('#report .px-kld svg'), /0\.0001.*0\.001.*0\.01.*0\.1.*1/);
  const title = await page.textContent('#report .px-kld svg rect title');
  assert.match(title, /^q8 · position 0 “What” · KL \d\.\d{3}e-?\d+ nats · next token “.*” \(id \d+\), reference’s “.*” \(id \d+\) at p 0\.\d{4}$/);
  assert.equal(await page.$$eval('#report .px-kld-summary tr', (r) => r.length), 1 + LANES.length);
  // The tensor ranking for the two lanes on the second file.
  const rankings = await page.$$eval('#report .px-ranking h4', (h) => h.map((e) => e.textContent));
  assert.deepEqual(rankings, ['f32@2 against f32: the worst 20 of 21 matmul sites', 'q8@2 against f32: the worst 20 of 21 matmul sites']);
  assert.match(await page.textContent('#report .px-ranking tr:nth-child(2)'), /blk\.\d\.\w+\.weight(Q4_K|Q6_K)Q8_0/);

  assertSameReport(webText, nativeText, 'demo against its Q8_0 copy');
  const web = JSON.parse(webText);
  assert.equal(web.files.length, 2);
  assert.deepEqual(web.paths, ['f32', ...LANES]);
  assert.ok(web.files[1].sha256, 'the second file is hashed too');

  await page.screenshot({ path: join(screenshots, 'compare.png'), fullPage: true });
  await (await page.$('#report .px-kld')).screenshot({ path: join(screenshots, 'compare-kld.png') });
  await (await page.$('#report .px-weights')).screenshot({ path: join(screenshots, 'compare-weights.png') });
  await (await page.$('#report .px-ranking')).screenshot({ path: join(screenshots, 'compare-ranking.png') });
  assert.deepEqual(errors, []);
});

test('?model=URL&against=URL2 opens both files by Range requests and runs them in lockstep', async () => {
  const query = `?model=/files/${basename(demo)}&against=/files/${basename(requantized)}&scope=last&reference=q8`;
  const { page, errors } = await openPage(browser, base + query);
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  assert.match(await page.textContent('#against-name'), new RegExp(`Compared with http://127\\.0\\.0\\.1:\\d+/files/${basename(requantized)}`));
  const web = JSON.parse(await runAndDownload(page));
  assert.equal(web.reference, 'q8');
  assert.equal(web.scope, 'last');
  assert.match(web.files[1].file_name, /^http:\/\/127\.0\.0\.1:\d+\/files\//);
  assert.equal(await page.$$eval('#report .px-ranking h4', (h) => h.length), 2);
  assert.deepEqual(errors, []);
});

test('with the gpu box ticked both files run on WebGPU too (SwiftShader): gpu and gpu@2', async () => {
  const gpuBrowser = await launchChromium(['--enable-unsafe-webgpu']);
  try {
    const { page, errors } = await openPage(gpuBrowser, base);
    await page.setInputFiles('#file', demo);
    await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
    await page.setInputFiles('#against-file', requantized);
    await page.check('#gpu');
    assert.match(await page.textContent('#lane-list'), /one of f32, q8, gpu, f32@2, q8@2, gpu@2/);
    const web = JSON.parse(await runAndDownload(page));
    assert.equal(web.execution.gpu_unavailable, undefined, `gpu dropped: ${web.execution.gpu_unavailable}`);
    assert.deepEqual(web.paths, ['f32', 'q8', 'gpu', 'f32@2', 'q8@2', 'gpu@2']);
    // The gpu path is f32 arithmetic: on the second file it agrees with f32@2 at the logits.
    assert.equal(web.logits.compare['gpu@2'].top1_agree, web.logits.compare['f32@2'].top1_agree);
    assert.equal(await page.$$eval('#report .px-kld-summary tr', (r) => r.length), 1 + 5);
    assert.deepEqual(errors, []);
  } finally {
    await gpuBrowser.close();
  }
});

test('a file of another network is refused with the first difference before a layer is read', async () => {
  const { page, errors } = await openPage(browser, base);
  await page.setInputFiles('#file', demo);
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  await page.setInputFiles('#against-file', join(shared, 'fixtures/apr/tiny-qwen2.gguf'));
  await page.click('#run');
  await page.waitForSelector('#status .error', { timeout: 20000 });
  assert.match(await page.textContent('#status'), /^tiny-qwen2\.gguf cannot be compared with parallax-demo-qwen2\.gguf: .+/);
  assert.equal(await page.$('#report .px-report'), null, 'no report');
  await page.screenshot({ path: join(screenshots, 'compare-refused.png') });
  // Removing the second file runs the model alone again.
  await page.click('#clear-against');
  assert.match(await page.textContent('#against-name'), /No second file/);
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 60000 });
  assert.equal(await page.$('#report .px-files'), null);
  assert.deepEqual(errors, []);
});

test('a Hugging Face page link in either slot becomes the link to its file', async () => {
  const blob = 'https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/blob/main/qwen2.5-0.5b-instruct-q8_0.gguf';
  const { page, errors } = await openPage(browser, `${base}?against=${encodeURIComponent(blob)}`);
  await page.waitForFunction(() => /resolve/.test(document.querySelector('#against-name').textContent));
  assert.equal(
    await page.textContent('#against-name'),
    'Compared with https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q8_0.gguf' +
      ' (the Hugging Face page link was turned into the link to its file: /blob/ became /resolve/).',
  );
  assert.deepEqual(errors, []);
});
