// The gpu path in the browser: headless Chromium with --enable-unsafe-webgpu (its SwiftShader
// adapter, no GPU needed) runs the bundled demo with the gpu checkbox ticked; the report has a gpu
// column that agrees with f32 and names the adapter. Without WebGPU the run goes on with the other
// paths and the page says why. Run by `./dev test` after `trunk build`; needs /usr/bin/chromium.
// PARALLAX_DIST overrides the built page's folder (default dist/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { root, launchChromium, serveDist, openPage } from './harness.mjs';

let server, base;

before(async () => {
  ({ server, base } = await serveDist());
});

after(() => server?.close());

/// Runs the demo with the gpu box ticked in a browser launched with `args`; returns the page, the
/// report JSON and page errors.
async function runDemoWithGpu(args) {
  const browser = await launchChromium(args);
  const { page, errors } = await openPage(browser, base);
  await page.check('#gpu');
  await page.click('#demo');
  await page.waitForSelector('#report .px-verdicts', { timeout: 120000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  const report = JSON.parse(await readFile(await download.path(), 'utf8'));
  return { browser, page, report, errors };
}

test('the demo runs with the gpu path on WebGPU (SwiftShader) and agrees with f32', async () => {
  const { browser, page, report, errors } = await runDemoWithGpu(['--enable-unsafe-webgpu']);
  try {
    assert.equal(report.execution.gpu_unavailable, undefined, `gpu dropped: ${report.execution.gpu_unavailable}`);
    assert.deepEqual(report.paths, ['f32', 'q8', 'gpu']);
    const gpu = report.execution.gpu;
    assert.ok(gpu && gpu.adapter.length > 0, 'the report names the adapter');
    assert.equal(gpu.backend, 'webgpu');
    assert.equal(gpu.device_type, 'cpu', 'headless Chromium offers its software fallback adapter');
    assert.ok(gpu.limits.maxStorageBufferBindingSize > 0, 'the report records the limits');
    assert.match(report.execution.matmuls.gpu.join(' '), /dequantized in WGSL/);
    // Every site of every layer: the gpu path agrees with f32 (both are f32 arithmetic).
    const sites = [report.embed, ...report.layers.flatMap((l) => Object.values(l.sites)), report.final_norm];
    let worst = 1;
    for (const s of sites) {
      const c = s.compare.gpu;
      assert.ok(c && Number.isFinite(c.cosine), 'a gpu comparison at every site');
      assert.equal(c.count, s.compare.q8.count, 'same element count as the other paths');
      worst = Math.min(worst, c.cosine);
    }
    assert.ok(worst >= 0.99999, `worst gpu vs f32 cosine ${worst}`);
    assert.equal(report.logits.compare.gpu.top1_agree, true);
    assert.match(await page.textContent('#report .px-verdicts h3'), /Verdict: PASS/);
    // The page shows the gpu column and the adapter.
    const text = await page.textContent('#report');
    assert.match(text, /\bgpu\b/);
    assert.match(text, new RegExp(`adapter: ${gpu.adapter.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.equal(await page.isHidden('#warning'), true, 'no warning when the gpu path ran');
    await mkdir(join(root, 'target', 'screenshots'), { recursive: true });
    await page.screenshot({ path: join(root, 'target', 'screenshots', 'demo-gpu.png'), fullPage: false });
    console.log(`gpu in the browser: adapter "${gpu.adapter}" (${gpu.backend}, ${gpu.device_type}), worst cosine 1 − ${(1 - worst).toExponential(2)}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU the run goes on with the other paths and the page says why', async () => {
  const { browser, page, report, errors } = await runDemoWithGpu(['--disable-gpu', '--disable-webgpu']);
  try {
    assert.deepEqual(report.paths, ['f32', 'q8']);
    assert.match(report.execution.gpu_unavailable, /gpu path was dropped/);
    await page.waitForSelector('#warning:not([hidden])', { timeout: 10000 });
    assert.match(await page.textContent('#warning'), /gpu path was dropped/);
    assert.match(await page.textContent('#report .px-exec'), /gpu unavailable/);
    assert.match(await page.textContent('#report .px-verdicts h3'), /Verdict: PASS/);
    // The warning was that run's: a run without the gpu path does not keep it.
    await page.click('#edit-settings');
    await page.uncheck('#gpu');
    await page.click('#run');
    await page.waitForSelector('body.folded #report .px-verdicts', { timeout: 60000 });
    assert.equal(await page.isHidden('#warning'), true, 'the earlier run\'s warning is gone');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
