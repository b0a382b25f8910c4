// The answer first, on a laptop's screen (1366×800): after a run the intake and the settings fold
// into one line and the page scrolls to the report's summary card, so that the verdict, the first
// divergence and the first chart (distance from the reference per layer) lie within the first
// screen — for the faulty demo, whose chart must mark layer 1 as out of band, and for the healthy
// Qwen2.5-0.5B, where nothing may be drawn as failing, and whose answer is shown while the whole
// report is drawn, then replaced by the report without moving.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium and the shared 0.5B model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { root, models, openPage, modelsRequired, startPage, stopPage, modelsRoute } from './harness.mjs';

const VIEWPORT = { width: 1366, height: 800 };
const qwenFile = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const screenshots = join(root, 'target', 'screenshots');

let server, browser, base;

before(async () => {
  ({ server, base, browser } = await startPage(modelsRoute));
  await mkdir(screenshots, { recursive: true });
});

after(() => stopPage({ server, browser }));

/// The viewport box (after the page's own scroll) of the verdict, the first divergence and the
/// first chart, and of the settings' folded line.
function firstScreenBoxes(page) {
  return page.evaluate(() => {
    const box = (sel) => {
      const e = document.querySelector(sel);
      if (!e) return null;
      const r = e.getBoundingClientRect();
      return { top: Math.round(r.top), bottom: Math.round(r.bottom) };
    };
    return {
      verdict: box('#report .px-summary-card h3'),
      divergence: box('#report .px-summary-card .px-first-divergence'),
      chart: box('#report .px-distance'),
      scrollY: Math.round(window.scrollY),
    };
  });
}

/// Each box lies within the first screen: top at or below its top edge, bottom above its fold.
function assertOnFirstScreen(boxes, what) {
  for (const name of ['verdict', 'divergence', 'chart']) {
    const b = boxes[name];
    assert.ok(b, `${what}: no ${name} in the report`);
    assert.ok(b.top >= 0 && b.bottom <= VIEWPORT.height,
      `${what}: the ${name} spans y = ${b.top}–${b.bottom}, outside the first screen (0–${VIEWPORT.height}); ${JSON.stringify(boxes)}`);
  }
}

/// The distance chart's points (hover text, whether marked failing), and every other mark of a
/// failing value in the report: sparkline cells, heatmap cells (those with a hover, not the
/// colour bar's swatches) and σ-ratio points.
function failingMarks(page) {
  return page.evaluate(() => {
    const chart = document.querySelector('#report .px-distance');
    const points = [...chart.querySelectorAll('.px-dist-point')].map((g) => ({
      title: g.querySelector('title').textContent,
      failing: g.querySelector('.px-dist-out') !== null,
    }));
    const spark = [...document.querySelectorAll('#report .px-spark .px-spark-cell')].map((c) => ({
      title: c.querySelector('title')?.textContent ?? '',
      failing: c.classList.contains('px-spark-out'),
    }));
    // A cell has a hover; the colour bar's swatch of "outside" has none.
    const heat = [...document.querySelectorAll('#report .px-hm rect.px-h-out')].filter((r) => r.querySelector('title')).length;
    const heatCells = document.querySelectorAll('#report .px-hm rect title').length;
    const ratio = document.querySelectorAll('#report .px-ratio .px-out').length;
    return { points, spark, heat, heatCells, ratio };
  });
}

test('the faulty demo: the verdict, the first divergence and the first chart are on the first screen, layer 1 marked out of band', async () => {
  const { page, errors } = await openPage(browser, base, { viewport: VIEWPORT });
  await page.click('#demo-fault');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  const boxes = await firstScreenBoxes(page);
  console.log(`faulty demo at 1366×800, scrolled to y = ${boxes.scrollY}: verdict ${boxes.verdict.top}–${boxes.verdict.bottom}, ` +
    `first divergence ${boxes.divergence.top}–${boxes.divergence.bottom}, first chart ${boxes.chart.top}–${boxes.chart.bottom}`);
  await page.screenshot({ path: join(screenshots, 'first-screen-fault.png') });
  assertOnFirstScreen(boxes, 'faulty demo');
  assert.match(await page.textContent('#report .px-summary-card h3'), /Verdict: FAIL/);
  assert.match(await page.textContent('#report .px-first-divergence'), /First divergence: layer 1 ffn_gate — \S+ [\d.]+ \(.+, band .+\)/);
  assert.match(await page.textContent('#report .px-next-token'), /^Next token: (same|different) — /);

  // The settings folded into one line naming what ran.
  assert.equal(await page.isVisible('#settings'), false);
  assert.equal(await page.isVisible('#source'), false);
  assert.match(await page.textContent('#run-summary-text'),
    /^parallax-demo-qwen2\.gguf · “What is 2\+2\?” · q8 vs f32 · all tokens · free mode · fault q4k-scales@1:ffn_gate$/);

  // The first chart marks layer 1 as out of band, on both series; layer 0 is upstream of the fault.
  const marks = await failingMarks(page);
  const layer = (l) => marks.points.filter((p) => p.title.startsWith(`layer ${l} · `));
  assert.equal(layer(1).length, 2, JSON.stringify(marks.points));
  assert.ok(layer(1).every((p) => p.failing), `layer 1 not marked out of band: ${JSON.stringify(layer(1))}`);
  assert.ok(layer(0).every((p) => !p.failing), `layer 0 marked: ${JSON.stringify(layer(0))}`);
  assert.equal(marks.spark.length, 3, 'one sparkline cell per layer');
  assert.ok(marks.spark[1].failing && !marks.spark[0].failing, JSON.stringify(marks.spark));

  // Failing tests first; the passes folded away under their count, closed.
  const tables = await page.evaluate(() => {
    const section = document.querySelector('#report .px-verdict-tables');
    // The first open table (not one folded away), its first row after the header.
    const firstRow = section.querySelector(':scope > table tr:nth-child(2) td');
    const folded = section.querySelector('details.px-folded-tests');
    return { first: firstRow?.textContent, summary: folded?.querySelector('summary').textContent, open: folded?.open };
  });
  assert.equal(tables.first, 'FAIL');
  assert.match(tables.summary, /^\d+ passed(, \d+ not measurable)? — show$/);
  assert.equal(tables.open, false);

  // Edit opens the settings again; Run again runs them and folds them once more.
  await page.click('#edit-settings');
  assert.ok(await page.isVisible('#settings'));
  assert.equal(await page.isVisible('#run-summary'), false);
  await page.click('#demo'); // the healthy demo, from the unfolded intake
  await page.waitForFunction(() => /Verdict: PASS/.test(document.querySelector('#report .px-summary-card h3')?.textContent ?? '')
    && document.body.classList.contains('folded'), null, { timeout: 60000 });
  assert.doesNotMatch(await page.textContent('#run-summary-text'), /fault/);
  await page.evaluate(() => document.querySelector('#report').replaceChildren());
  await page.click('#run-again');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  assert.match(await page.textContent('#report .px-summary-card h3'), /Verdict: PASS/);
  assertOnFirstScreen(await firstScreenBoxes(page), 'the demo run again');
  assert.deepEqual(errors, []);
});

test('the healthy Qwen2.5-0.5B: the answer is on the first screen and nothing is drawn as failing', { timeout: 300000 }, async (t) => {
  if (!(await access(join(models, qwenFile)).then(() => true, () => false))) {
    assert.ok(!modelsRequired, `${qwenFile} is missing (CI or PARALLAX_REQUIRE_MODELS=1): run ../shared/models/fetch.sh`);
    return t.skip(`no ${qwenFile}`);
  }
  const { page, errors } = await openPage(browser, `${base}?model=/models/${qwenFile}`, { viewport: VIEWPORT });
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  await page.fill('#tokens', '3838, 374, 220, 17, 10, 17, 30');
  // The layout is under test, not the hash (the inspect test checks it streams).
  await page.uncheck('#hash');
  // The answer comes first: when #answer and then #report first hold a verdict, what each held
  // and where the summary card stood on the screen then.
  await page.evaluate(() => {
    const seen = (self.__seen = {});
    const look = () => {
      const at = performance.now();
      const answer = document.querySelector('#answer .px-verdicts');
      if (answer && !seen.answer) {
        seen.answer = { at, html: document.getElementById('answer').innerHTML, top: answer.getBoundingClientRect().top };
      }
      const report = document.querySelector('#report .px-verdicts');
      if (report && !seen.report) {
        seen.report = { at, html: document.getElementById('report').innerHTML, top: report.getBoundingClientRect().top,
          answerLeft: document.getElementById('answer').innerHTML };
      }
    };
    new MutationObserver(look).observe(document.querySelector('main'), { childList: true, subtree: true });
  });
  await page.click('#run');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 240000 });
  const seen = await page.evaluate(() => self.__seen);
  assert.ok(seen.answer, 'the answer was never shown before the report');
  assert.ok(seen.answer.at < seen.report.at, 'the answer came after the report');
  console.log(`healthy 0.5B: the answer (${seen.answer.html.length} bytes) shown ${(seen.report.at - seen.answer.at).toFixed(0)} ms before the report (${seen.report.html.length} bytes)`);
  const opening = seen.answer.html.replace(/<\/div>\s*$/, '');
  assert.ok(opening.length < seen.answer.html.length && seen.report.html.startsWith(opening),
    'the report does not open with the answer it replaces');
  assert.equal(seen.report.answerLeft, '', 'the answer stayed beside the report');
  assert.ok(seen.answer.top >= 0 && seen.answer.top < VIEWPORT.height, `the answer's card at y = ${seen.answer.top}`);
  assert.ok(Math.abs(seen.report.top - seen.answer.top) <= 1,
    `the summary card moved from y = ${seen.answer.top} to ${seen.report.top} when the report replaced the answer`);
  const boxes = await firstScreenBoxes(page);
  console.log(`healthy 0.5B at 1366×800, scrolled to y = ${boxes.scrollY}: verdict ${boxes.verdict.top}–${boxes.verdict.bottom}, ` +
    `first divergence ${boxes.divergence.top}–${boxes.divergence.bottom}, first chart ${boxes.chart.top}–${boxes.chart.bottom}`);
  await page.screenshot({ path: join(screenshots, 'first-screen-qwen05.png') });
  assertOnFirstScreen(boxes, 'healthy 0.5B');
  assert.match(await page.textContent('#report .px-summary-card h3'), /Verdict: PASS/);
  assert.match(await page.textContent('#report .px-first-divergence'), /No divergence/);
  assert.match(await page.textContent('#run-summary-text'), /^qwen2\.5-coder-0\.5b-instruct-q4_k_m\.gguf · 7 token ids 3838, 374, 220, 17, 10, 17, 30 · q8 vs f32 · /);

  const marks = await failingMarks(page);
  // Something was drawn (24 layers, two series; a cell per layer; the heat grids), and none of it fails.
  assert.equal(marks.points.length, 2 * 24);
  assert.equal(marks.spark.length, 24);
  assert.ok(marks.heatCells > 0, 'the heatmaps have cells');
  assert.deepEqual(marks.points.filter((p) => p.failing), [], 'a distance-chart point drawn as failing');
  assert.deepEqual(marks.spark.filter((c) => c.failing), [], 'a sparkline cell drawn as failing');
  assert.equal(marks.heat, 0, 'a heatmap cell drawn as failing');
  assert.equal(marks.ratio, 0, 'a σ-ratio point drawn as failing');
  assert.deepEqual(errors, []);
});

test('the σ-ratio chart shows the key sites first (the fault\'s among them), and all, none or one site on request', async () => {
  const { page, errors } = await openPage(browser, base, { viewport: VIEWPORT });
  await page.click('#demo-fault');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  const chart = '#report .px-chart:has(.px-ratio)';
  const shown = () => page.$$eval(`${chart} .px-series`, (gs) => gs
    .filter((g) => getComputedStyle(g).display !== 'none')
    .map((g) => [...g.classList].find((c) => c.startsWith('s-')).slice(2)));
  const all = await page.$$eval(`${chart} .px-series`, (gs) => gs.length);
  const key = await shown();
  assert.ok(key.includes('resid_attn') && key.includes('resid_ffn'), `the residual streams: ${key}`);
  assert.ok(key.includes('ffn_gate'), `the faulty site, out of band, is a key site: ${key}`);
  assert.ok(key.length < all, `key sites are a few of the ${all}: ${key}`);
  // The legend is a colour key until "ticked" is chosen.
  assert.equal(await page.isVisible(`${chart} .px-legend input`), false);
  await page.selectOption(`${chart} .px-show-sel`, 'all');
  assert.equal((await shown()).length, all);
  await page.selectOption(`${chart} .px-show-sel`, 'none');
  assert.deepEqual(await shown(), []);
  await page.selectOption(`${chart} .px-show-sel`, 'only-ffn_down');
  assert.deepEqual(await shown(), ['ffn_down']);
  await page.selectOption(`${chart} .px-show-sel`, 'ticked');
  await page.uncheck(`${chart} .px-legend input[data-site="q"]`);
  assert.equal((await shown()).length, all - 1);
  assert.ok(!(await shown()).includes('q'));
  // Series differ by shape as well as colour: neighbours in the site order take other marks.
  const shapes = await page.$$eval(`${chart} .px-series`, (gs) => gs.map((g) => g.querySelector('.px-pt')?.tagName ?? ''));
  assert.ok(new Set(shapes.filter(Boolean)).size >= 3, `marks: ${shapes}`);
  assert.deepEqual(errors, []);
});
