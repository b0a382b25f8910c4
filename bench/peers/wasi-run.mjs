// Runs a wasm32-wasip1 program under node's WASI and exits with the program's status.
//
// Why not tools/wasi-run.mjs: node 20 sometimes crashes (SIGSEGV) while tearing itself down after
// a program that grew its memory to a few hundred MB has already returned (seen with the
// kernels-vs-candle bench, ~300 MB). The program therefore runs in a child node process that
// writes its status to a pipe (fd 3) as soon as it returns, and the
// bench itself ends with the stderr line `finished: status N`; a crash after that report does not change the
// result and is noted on stderr.
//
//   node bench/peers/wasi-run.mjs PROGRAM.wasm [ARGS...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import process from 'node:process';

if (process.argv[2] === '--wasi-child') {
  const [file, ...args] = process.argv.slice(3);
  const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env, preopens: { '/': '/' }, returnOnExit: true });
  const mod = await WebAssembly.compile(await readFile(file));
  const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
  const status = wasi.start(inst);
  // Synchronously, before node can crash on its way out: the parent reads this line.
  writeSync(3, `${status}\n`);
  process.exit(status);
} else {
  const child = spawn(process.execPath, ['--no-warnings', fileURLToPath(import.meta.url), '--wasi-child', ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'pipe', 'pipe'],
  });
  let report = '';
  let errTail = '';
  child.stdio[3].on('data', (d) => { report += d; });
  child.stderr.on('data', (d) => { process.stderr.write(d); errTail = (errTail + d).slice(-400); });
  child.on('close', (code, signal) => {
    // The status from fd 3, else the program's own last stderr line `finished: status N`
    // (node can crash after the program's main returned but before wasi.start() does).
    const said = errTail.match(/finished: status (\d+)\s*$/);
    const status = report.trim() !== '' ? Number(report.trim()) : said ? Number(said[1]) : null;
    if (status === null) {
      console.error(`wasi-run: the program did not finish (node exited with ${signal ?? code})`);
      process.exit(code ?? 70);
    }
    if (signal) console.error(`wasi-run: node crashed (${signal}) while exiting after the program finished with status ${status}; ignored`);
    process.exit(status);
  });
}
