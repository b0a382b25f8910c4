// A split GGUF from local files: every shard chosen (or dropped) at once opens as one model, in
// shard order whatever order they came in, and runs as the CLI runs it, byte for byte; files that
// are not one model (a shard alone, shards missing, shards of two models) end in a sentence.
// The 0.5B split is the shared one by gguf-py's own splitter (tools/golden/make_split.py, made by
// ./dev); the "Compare with…" slot's run uses the demo model split the same way (gguf-py, which
// ./dev installs to make the 0.5B split). Run by `./dev test` after `trunk build`; needs
// /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { root, models, openPage, assertSameReport, startPage, stopPage, cliReport } from './harness.mjs';

const split = 'qwen2.5-coder-0.5b-split';
const shard = (k, dir = models, name = split) => join(dir, `${name}-0000${k}-of-00003.gguf`);
const demo = join(root, 'www/demo/parallax-demo-qwen2.gguf');

let server, browser, base;

before(async () => {
  assert.ok(process.env.PARALLAX_BIN, 'PARALLAX_BIN must name the native parallax binary (./dev test sets it)');
  ({ server, base, browser } = await startPage());
});

after(() => stopPage({ server, browser }));


/// Run the page to its report and return the report JSON as downloaded.
async function runAndDownload(page, timeout) {
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  return readFile(await download.path(), 'utf8');
}

/// Drop files on the zone `selector` as a user's drag would: `files` are paths on this machine
/// (given to a scratch input, then moved into the drop's DataTransfer) or [name, text] pairs
/// made in the page.
async function dropFiles(page, selector, files) {
  const paths = files.filter((f) => typeof f === 'string');
  if (paths.length > 0) {
    await page.evaluate(() => {
      const input = Object.assign(document.createElement('input'), { type: 'file', multiple: true, id: 'scratch-files', hidden: true });
      document.body.append(input);
    });
    await page.setInputFiles('#scratch-files', paths);
  }
  await page.evaluate(([selector, made]) => {
    const transfer = new DataTransfer();
    for (const file of document.querySelector('#scratch-files')?.files ?? []) transfer.items.add(file);
    for (const [name, text] of made) transfer.items.add(new File([text], name));
    document.querySelector('#scratch-files')?.remove();
    document.querySelector(selector).dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, [selector, files.filter((f) => typeof f !== 'string')]);
}

test('every shard of a split GGUF chosen at once, in any order, runs as one model and matches the native CLI', async () => {
  const tokens = '3838,374,220,17,10,17,30';
  const nativeText = await cliReport(['-m', shard(1), '--tokens', tokens, '--scope', 'last']);
  const { page, errors } = await openPage(browser, base);
  // Out of order on purpose: the page reads them by shard number.
  await page.setInputFiles('#file', [shard(3), shard(1), shard(2)]);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  assert.match(await page.textContent('#status'), new RegExp(`^${split}-00001-of-00003\\.gguf \\(\\+2 more shards\\) — GGUF v3, 291 tensors`));
  await page.fill('#tokens', tokens);
  await page.selectOption('#scope', 'last');
  const webText = await runAndDownload(page, 600000);
  const [web, native] = [JSON.parse(webText), JSON.parse(nativeText)];
  assert.equal(web.model.file_name, `${split}-00001-of-00003.gguf (+2 more shards)`);
  assert.equal(web.model.sha256, native.model.sha256, 'the shards hashed end to end, in shard order');
  assertSameReport(webText, nativeText, 'split Qwen2.5-0.5B from local files');
  assert.deepEqual(errors, []);
});

test('files that are not one model are refused with a sentence saying what to choose', async () => {
  const { page, errors } = await openPage(browser, base);
  // A model opened first is let go: the run button waits for files that make one model.
  await page.setInputFiles('#file', demo);
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  await page.setInputFiles('#file', shard(1));
  await page.waitForSelector('#status .error', { timeout: 20000 });
  assert.equal(await page.textContent('#status'),
    `${split}-00001-of-00003.gguf is shard 1 of a split GGUF of 3 files; choose all 3 at once ` +
    `(missing: ${split}-00002-of-00003.gguf, ${split}-00003-of-00003.gguf)`);
  assert.equal(await page.getAttribute('#run', 'disabled'), '');
  assert.equal(await page.textContent('#model'), '');

  // Dropped: some shards, shards of two models, unrelated files, the same shard twice.
  const cases = [
    [['m-00003-of-00003.gguf', 'm-00001-of-00003.gguf'],
      'the 2 files chosen are shards 1, 3 of a split GGUF of 3 files; choose all 3 at once (missing: m-00002-of-00003.gguf)'],
    [['a-00001-of-00002.gguf', 'b-00002-of-00002.gguf'],
      'a-00001-of-00002.gguf and b-00002-of-00002.gguf are shards of two different split GGUFs; choose the shards of one model only'],
    [['a.gguf', 'b.gguf'], /^2 files were chosen \(a\.gguf, b\.gguf\), but a model is one file or the shards of one split GGUF/],
    [['m-00001-of-00002.gguf', 'm-00001-of-00002.gguf'], 'm-00001-of-00002.gguf was chosen twice; choose each shard of the model once'],
  ];
  for (const [names, sentence] of cases) {
    await page.evaluate(() => document.querySelector('#status').replaceChildren());
    await dropFiles(page, '#drop', names.map((n) => [n, 'GGUF']));
    await page.waitForSelector('#status .error');
    const status = await page.textContent('#status');
    if (typeof sentence === 'string') assert.equal(status, sentence);
    else assert.match(status, sentence);
  }
  // The "Compare with…" slot refuses them the same way and stays empty.
  await page.evaluate(() => document.querySelector('#status').replaceChildren());
  await dropFiles(page, '#compare', [['m-00002-of-00003.gguf', 'GGUF']]);
  await page.waitForSelector('#status .error');
  assert.match(await page.textContent('#status'), /^m-00002-of-00003\.gguf is shard 2 of a split GGUF of 3 files/);
  assert.equal(await page.textContent('#against-name'), 'No second file: the run reads one file.');
  assert.deepEqual(errors, []);
});

test('a split GGUF dropped on "Compare with…" runs as the second file, as the CLI runs it', async () => {
  // The demo split in three by gguf-py (38 tensors, at most 13 a shard).
  const dir = await mkdtemp(join(tmpdir(), 'parallax-demo-split-'));
  execFileSync('python3', [join(root, 'tools/golden/make_split.py'), demo, join(dir, 'demo.gguf'), '--max-tensors', '13']);
  const demoShard = (k) => shard(k, dir, 'demo');
  const prompt = 'What is 2+2?';
  const nativeText = await cliReport(['-m', demo, '--against', demoShard(1), '-p', prompt]);
  const { page, errors } = await openPage(browser, base);
  await page.setInputFiles('#file', demo);
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  await dropFiles(page, '#compare', [demoShard(2), demoShard(3), demoShard(1)]);
  assert.equal(await page.textContent('#against-name'), 'Compared with demo-00001-of-00003.gguf (+2 more shards).');
  assert.match(await page.textContent('#lane-list'), /one of f32, q8, f32@2, q8@2/);
  await page.fill('#tokens', '');
  await page.fill('#prompt', prompt);
  const webText = await runAndDownload(page, 60000);
  const web = JSON.parse(webText);
  assert.equal(web.files[1].file_name, 'demo-00001-of-00003.gguf (+2 more shards)');
  assertSameReport(webText, nativeText, 'the demo against its split');
  assert.deepEqual(errors, []);
  await rm(dir, { recursive: true, force: true });
});
