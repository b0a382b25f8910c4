// Where a page run's time goes: the 2-path run (f32 + q8, the contract prompt's tokens, no hash)
// of the 0.5B in headless Chromium, by file or by URL from a local Range server, with the
// worker's messages timestamped in the page (Run to the embedding, to the first layer, the layers, the output
// head, the run's end to the answer shown and to the report's message, to the report shown) and the CPU time each
// process spent during the run: the renderer (the page, the run's worker, the pool's and the
// fetch worker's threads), the browser process, Chromium's network service, and this process
// (the Range server, by URL); and the renderer's threads one by one (each of the page's workers
// is a "DedicatedWorker" thread: the two pool threads spend alike, the run's worker and the fetch
// worker less), so what the run's own threads spent is told from what the browser spent
// around them.
//
//   node bench/page_phases.mjs                  by file, 2 threads, 3 runs
//   URL=1 THREADS=1 REPEATS=5 node bench/page_phases.mjs
//   HASH=1 node bench/page_phases.mjs           with the sha256 box as the page opens (on)
//   URL=1 LATENCY_MS=50 node bench/page_phases.mjs   a server 50 ms away
//   TEXT=1 node bench/page_phases.mjs           over the built-in text (304 tokens), not the prompt
//   PATHS=f32 node bench/page_phases.mjs        one path alone
//
// Needs dist/ (trunk build) and /usr/bin/chromium; Linux (/proc) for the CPU times.
import { join } from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { models, launchChromium, serveDist, modelsRoute, timedRun, browserProcesses, recordWorkerMessages, cpuMs } from '../tests/browser/harness.mjs';

const name = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const tokens = '3838,374,220,17,10,17,30';
const byUrl = !['', '0', undefined].includes(process.env.URL);
const threads = Number(process.env.THREADS ?? 2);
const repeats = Number(process.env.REPEATS ?? 3);
const hashed = process.env.HASH === '1';
const overText = process.env.TEXT === '1';
// PATHS=f32 (or q8) runs one path alone, as the page's `?paths=` does.
const paths = process.env.PATHS ?? '';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/// CPU milliseconds (user + system) of each thread of the renderers, by `pid/tid`, with the
/// thread's name: which of the page's threads (its main thread, the run's worker, the pool's,
/// the fetch worker — each a "DedicatedWorker thread", told apart by their amounts) spent the
/// renderer's time.
function cpuByRendererThread(browser) {
  const out = new Map();
  for (const { pid, cmd } of browserProcesses(browser)) {
    if (!/--type=renderer/.test(cmd)) continue;
    let tids = [];
    try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tids) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        out.set(`${pid}/${tid}`, { name, ms: cpuMs(`/proc/${pid}/task/${tid}/stat`) });
      } catch { /* gone */ }
    }
  }
  return out;
}

/// CPU milliseconds (user + system) of each of `browser`'s processes, by pid, with its kind.
function cpuByProcess(browser) {
  const out = new Map();
  for (const { pid, cmd } of browserProcesses(browser)) {
    try {
      const ms = cpuMs(`/proc/${pid}/stat`);
      const kind = /--utility-sub-type=network/.test(cmd) ? 'network service'
        : /--type=renderer/.test(cmd) ? 'renderer'
          : /--type=gpu-process/.test(cmd) ? 'gpu process'
            : /--type=/.test(cmd) ? 'other chromium' : 'browser';
      out.set(pid, { kind, ms });
    } catch { /* gone */ }
  }
  return out;
}

// LATENCY_MS=N delays each model request by N ms before it is answered: a remote server's round
// trip, which the local one does not have (by URL each request pays it once).
const latency = Number(process.env.LATENCY_MS ?? 0);
const { server, base } = await serveDist(async (req, res, pathname) => {
  if (latency > 0 && pathname.startsWith('/models/')) await new Promise((r) => setTimeout(r, latency));
  return modelsRoute(req, res, pathname);
});
const browser = await launchChromium(['--disable-gpu', ...(process.env.JS_FLAGS ? [`--js-flags=${process.env.JS_FLAGS}`] : [])]);
const runs = [];
for (let i = 0; i < repeats; i++) {
  const page = await browser.newPage();
  // Every message of every worker the page starts, stamped as it arrives.
  await recordWorkerMessages(page);
  await page.goto(`${base}?threads=${threads}${paths ? `&paths=${paths}` : ''}${byUrl ? `&model=/models/${name}` : ''}`);
  if (!byUrl) await page.setInputFiles('#file', join(models, name));
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  if (overText) await page.click('#builtin-text');
  else await page.fill('#tokens', tokens);
  if (!hashed) await page.uncheck('#hash');
  const cpu0 = cpuByProcess(browser);
  const threads0 = cpuByRendererThread(browser);
  const self0 = process.cpuUsage();
  const seconds = await timedRun(page);
  const self1 = process.cpuUsage(self0);
  const cpu = { 'this process (server)': (self1.user + self1.system) / 1000 };
  for (const [pid, { kind, ms }] of cpuByProcess(browser)) cpu[kind] = (cpu[kind] ?? 0) + ms - (cpu0.get(pid)?.ms ?? 0);
  // The renderer's threads that spent 50 ms or more, by name, largest first; the rest of the
  // renderer's time is its threads under 50 ms and those that ended before the run did (the
  // fetch worker's, stopped with the run: /proc keeps their time in the process's total only).
  const eachThread = [...cpuByRendererThread(browser)]
    .map(([key, { name, ms }]) => ({ name, ms: ms - (threads0.get(key)?.ms ?? 0) }));
  const threadCpu = eachThread.filter((t) => t.ms >= 50).sort((a, b) => b.ms - a.ms);
  const listed = threadCpu.reduce((sum, t) => sum + t.ms, 0);
  threadCpu.push({ name: 'the rest (ended, or under 50 ms)', ms: (cpu.renderer ?? 0) - listed });
  const { messages, start, end, answer } = await page.evaluate(() => ({ messages: self.__workerMessages, ...self.__parallaxRunStamps }));
  const phases = messages
    .map(({ at, text }) => ({ at, kind: /"kind":"([a-z_]+)"/.exec(text)?.[1], step: /"step":"([a-z_]+)"/.exec(text)?.[1] }))
    .filter((p) => p.kind);
  const first = (pred) => phases.find((p) => p.at >= start && pred(p))?.at;
  const embedding = first((p) => p.step === 'embedding');
  const layer1 = first((p) => p.step === 'layers');
  const head = first((p) => p.step === 'output_head');
  const done = first((p) => p.step === 'done');
  const report = first((p) => p.kind === 'report');
  const layers = phases.filter((p) => p.at >= start && p.step === 'layers').length;
  runs.push({
    seconds,
    'Run to the embedding (the header read)': embedding - start,
    'the embedding to the first layer\'s end': layer1 - embedding,
    'each further layer': (head - layer1) / Math.max(1, layers - 1),
    'the output head': done - head,
    'the run\'s end to the answer shown': answer - done,
    'the run\'s end to the report\'s message': report - done,
    'to the report shown': end - report,
    cpu,
    threadCpu,
  });
  await page.close();
}
await browser.close();
server.close();

console.log(`${name}, ${byUrl ? `by URL from a local Range server${latency ? ` answering ${latency} ms late` : ''}` : 'the file chosen'}, ${threads} thread(s), ${overText ? 'the built-in text' : 'the prompt'}, ${hashed ? 'hashed' : 'no hash'}, median of ${repeats}:`);
console.log(`  run ${median(runs.map((r) => r.seconds)).toFixed(2)} s (runs: ${runs.map((r) => r.seconds.toFixed(2)).join(', ')})`);
for (const k of Object.keys(runs[0]).filter((k) => !['seconds', 'cpu', 'threadCpu'].includes(k))) {
  console.log(`  ${k.padEnd(40)} ${median(runs.map((r) => r[k])).toFixed(0)} ms`);
}
console.log('  CPU time during the run:');
const kinds = new Set(runs.flatMap((r) => Object.keys(r.cpu)));
let total = 0;
for (const k of kinds) {
  const ms = median(runs.map((r) => r.cpu[k] ?? 0));
  total += ms;
  if (ms >= 10) console.log(`    ${k.padEnd(38)} ${(ms / 1000).toFixed(2)} s`);
}
console.log(`    ${'all'.padEnd(38)} ${(total / 1000).toFixed(2)} s`);
console.log('  the renderer\'s threads (50 ms or more), each run:');
for (const r of runs) console.log(`    ${r.threadCpu.map((t) => `${t.name} ${(t.ms / 1000).toFixed(2)}`).join(', ')}`);
