import { join } from 'node:path';
import { models, launchChromium, serveDist } from '../tests/browser/harness.mjs';
const model = join(models, 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf');
const { server, base } = await serveDist();
const browser = await launchChromium();
for (const threads of (process.env.T ?? '1,2').split(',')) {
  const page = await browser.newPage();
  await page.goto(`${base}?threads=${threads}`);
  await page.setInputFiles('#file', model);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  if (process.env.TEXT) await page.click('#builtin-text'); else await page.fill('#tokens', '3838,374,220,17,10,17,30');
  await page.uncheck('#hash');
  const stamps = [];
  page.on('console', (m) => stamps.push(m.text()));
  const t0 = performance.now();
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 600000 });
  console.log(threads, ((performance.now() - t0) / 1000).toFixed(2));
  await page.close();
}
await browser.close(); server.close();
