#!/usr/bin/env python3
"""End to end: `parallax run` (both paths) beside llama.cpp evaluating the same tokens, one run.

For each thread count N (default 1 and 2), interleaved round by round (the order rotates):
  - parallax: `parallax run -m MODEL --tokens T --paths f32,q8 --threads N -q --no-hash`, a fresh
    process each time; its wall time covers reading the file, the header, every weight (parallax
    streams weights layer by layer inside the run), both forward passes, the probes, the judging
    and the report. Peak RSS from wait4().
  - parallax, one path only (`--paths q8`, `--paths f32`): what a single forward pass costs.
  - parallax reading the file with `pread` (`--no-mmap`, 7-token prompt only): by default it maps
    each tensor's pages (populated on its read-ahead thread) instead of copying them.
  - llama.cpp (llama-cpp-python, a fresh process each time, n_threads = n_threads_batch = N,
    logits for all positions, one batch), twice: load with use_mmap=False (the weights read into
    its buffers) and with use_mmap=True (its default: the file mapped and its pages populated at
    load), so each is timed with its weights in memory before the first eval; first eval of the
    tokens, and a warm eval
    (reset + eval again, median of 3) timed inside the process. Extra buffer types are off
    (`use_extra_bufts=False`, as tools/reference/llamacpp_logits.py does: llama.cpp's AMX path
    segfaults here, and off it runs its plain vec_dot kernels).
Processes are pinned: N=1 on CPU 1, N=2 on CPUs 0-1. Medians of --repeats rounds (default 5).

Two prompts (--prompts, default both): `contract`, the 7 tokens below; `text`, the built-in
evaluation text (crates/engine/src/kld_text.txt, 304 tokens on this model; parallax
`--builtin-text`, llama.cpp tokenizing the same file, which gives the same ids), where the
matmuls are matrix × matrix and attention grows with the square of the length. Both sides compute
the logits of every position (parallax `--logits all`, llama.cpp `logits_all`).

Ratios printed (goal: parallax both paths ≤ 1.5× llama.cpp), by wall time and by CPU time (user +
sys of the process; the fairer one when other load shares the machine, equal to wall time for
one thread on an idle machine):
  parallax / llama.cpp eval         -- parallax's whole run against llama.cpp's first eval alone
  parallax / llama.cpp load + eval  -- both including reading the weights from the page cache

Usage: python3 bench/e2e_vs_llamacpp.py --parallax target/release/parallax [--threads 1,2] [--repeats 5]
Needs: pip install llama-cpp-python==0.3.36 (builds from source, ~15 min), the shared 0.5B model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
# "What is 2+2?" as the contract tokenizes it (parallax tokenize and llama.cpp agree).
TOKENS = [3838, 374, 220, 17, 10, 17, 30]
TEXT = Path(__file__).resolve().parent.parent / "crates" / "engine" / "src" / "kld_text.txt"


def llama_child(model: str, threads: int, prompt: str, mmap: bool) -> None:
    """Runs inside a fresh interpreter: times llama.cpp's load and evals, prints one JSON line."""
    t_start = time.perf_counter()
    import llama_cpp
    import llama_cpp.llama as llama_mod

    # The golden generator's switch to llama.cpp's plain CPU kernels (no AMX / repacking).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "reference"))
    from llamacpp_logits import plain_cpu_kernels

    plain_cpu_kernels(llama_mod)
    t_import = time.perf_counter()
    c_import = time.process_time()
    ctx = 64 if prompt == "contract" else 512
    llm = llama_mod.Llama(model_path=model, n_ctx=ctx, n_batch=ctx, n_threads=threads, n_threads_batch=threads,
                          logits_all=True, use_mmap=mmap, verbose=False)
    tokens = TOKENS if prompt == "contract" else llm.tokenize(TEXT.read_bytes(), add_bos=False, special=False)
    if llm.model_params.use_extra_bufts:
        raise SystemExit("could not turn off use_extra_bufts")
    t_load = time.perf_counter()
    c_load = time.process_time()
    llm.reset()
    llm.eval(tokens)
    first_top = int(llm.scores[len(tokens) - 1].argmax())
    t_eval = time.perf_counter()
    c_eval = time.process_time()
    warm = []
    for _ in range(3):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        warm.append(time.perf_counter() - t0)
    print(json.dumps({
        "import_s": t_import - t_start,
        "load_s": t_load - t_import,
        "eval_s": t_eval - t_load,
        "warm_eval_s": statistics.median(warm),
        "load_cpu_s": c_load - c_import,
        "eval_cpu_s": c_eval - c_load,
        "top1_last": first_top,
        "n_tokens": len(tokens),
        "version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
    }))


def cpus_for(threads: int) -> set[int]:
    avail = sorted(os.sched_getaffinity(0))
    # One thread on the second CPU (as ./dev bench pins), more on the first N.
    return {avail[1] if len(avail) > 1 else avail[0]} if threads == 1 else set(avail[:threads])


def timed(cmd: list[str], cpus: set[int], env: dict | None = None) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS (bytes), stdout and CPU seconds (user + sys) of a child pinned to `cpus`."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    # parallax exits 1 when a contract fails; that is a verdict, not a crash.
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited with {code}:\n{err.decode(errors='replace')[-2000:]}")
    return wall, ru.ru_maxrss * 1024, out.decode(errors="replace"), ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallax", help="release build of the parallax CLI (required)")
    ap.add_argument("--models-dir", default=os.environ.get("PARALLAX_MODELS",
                                                          str(Path.home() / ".cache/parallax/models")))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts", default="contract,text", help="comma-separated: contract (7 tokens), text (304)")
    ap.add_argument("--no-single-path", action="store_true", help="skip the one-path parallax runs")
    ap.add_argument("--llama-child", nargs=4, metavar=("MODEL", "THREADS", "PROMPT", "MMAP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.llama_child:
        llama_child(args.llama_child[0], int(args.llama_child[1]), args.llama_child[2], args.llama_child[3] == "1")
        return
    if not args.parallax:
        ap.error("--parallax BIN is required")

    model = str(Path(args.models_dir) / MODEL)
    if not Path(model).exists():
        raise SystemExit(f"model {model} not found (run ../shared/models/fetch.sh)")
    try:
        subprocess.run([sys.executable, "-c", "import llama_cpp"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        raise SystemExit("llama_cpp is not importable: pip install llama-cpp-python==0.3.36 (builds from source, ~15 min)")
    size = Path(model).stat().st_size
    for prompt in args.prompts.split(","):
        ll = run_prompt(args, model, size, prompt)
    print(f"\nllama.cpp {ll[0]['version']}: {ll[0]['system_info'].strip()}")
    print("parallax reads every weight inside its run (streamed per layer); llama.cpp's load is timed apart.")


def run_prompt(args, model: str, size: int, prompt: str) -> list[dict]:
    """Every thread count for one prompt; prints the tables and returns llama.cpp's records."""
    what = f"tokens {TOKENS}" if prompt == "contract" else f"the built-in text ({TEXT.name})"
    print(f"\n# end to end: {MODEL} ({size / 1e6:.0f} MB), {what}, median of {args.repeats} interleaved rounds")
    prompt_args = ["--tokens", ",".join(map(str, TOKENS))] if prompt == "contract" else ["--builtin-text"]
    results = {}
    for n in [int(t) for t in args.threads.split(",")]:
        cpus = cpus_for(n)
        env = dict(os.environ, RAYON_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n))
        runners = {
            "parallax f32+q8": lambda: timed([args.parallax, "run", "-m", model, *prompt_args, "--paths", "f32,q8",
                                              "--threads", str(n), "-q", "--no-hash"], cpus, env),
            "llama.cpp": lambda: timed([sys.executable, __file__, "--llama-child", model, str(n), prompt, "0"],
                                       cpus, env),
            "llama.cpp mmap": lambda: timed([sys.executable, __file__, "--llama-child", model, str(n), prompt, "1"],
                                            cpus, env),
        }
        if prompt == "contract":
            runners["parallax f32+q8 --no-mmap"] = lambda: timed(
                [args.parallax, "run", "-m", model, *prompt_args, "--paths", "f32,q8", "--threads", str(n), "-q",
                 "--no-hash", "--no-mmap"], cpus, env)
        if not args.no_single_path:
            for path in ("q8", "f32"):
                runners[f"parallax {path}"] = (lambda path=path: timed(
                    [args.parallax, "run", "-m", model, *prompt_args, "--paths", path,
                     "--threads", str(n), "-q", "--no-hash"], cpus, env))
        # One untimed pass of each: page cache warm for everyone, lazy one-time costs paid.
        for f in runners.values():
            f()
        samples: dict[str, list] = {k: [] for k in runners}
        names = list(runners)
        for r in range(args.repeats):
            for i in range(len(names)):
                name = names[(r + i) % len(names)]
                samples[name].append(runners[name]())
        med = lambda xs: statistics.median(xs)
        px = {k: (med([s[0] for s in v]), max(s[1] for s in v), med([s[3] for s in v]))
              for k, v in samples.items() if k.startswith("parallax")}
        ll = [json.loads(s[2].strip().splitlines()[-1]) for s in samples["llama.cpp"]]
        ll_wall = med([s[0] for s in samples["llama.cpp"]])
        ll_rss = max(s[1] for s in samples["llama.cpp"])
        load, ev, warm, load_cpu, ev_cpu = (med([x[k] for x in ll]) for k in
                                            ("load_s", "eval_s", "warm_eval_s", "load_cpu_s", "eval_cpu_s"))
        llm = [json.loads(s[2].strip().splitlines()[-1]) for s in samples["llama.cpp mmap"]]
        m_load, m_ev, m_load_cpu, m_ev_cpu = (med([x[k] for x in llm]) for k in
                                              ("load_s", "eval_s", "load_cpu_s", "eval_cpu_s"))
        both = px["parallax f32+q8"][0]
        results[n] = dict(parallax=both, load=load, eval=ev, warm=warm)
        print(f"\n## {n} thread{'s' if n > 1 else ''} (CPUs {sorted(cpus)})")
        print("| run | median wall s | median CPU s | peak RSS MB |")
        print("|---|---|---|---|")
        for k, (t, rss, cpu) in px.items():
            print(f"| {k} (whole process) | {t:.3f} | {cpu:.3f} | {rss / 1e6:.0f} |")
        print(f"| llama.cpp load (use_mmap=False) | {load:.3f} | {load_cpu:.3f} | |")
        print(f"| llama.cpp first eval, {ll[0]['n_tokens']} tokens | {ev:.3f} | {ev_cpu:.3f} | |")
        print(f"| llama.cpp load (use_mmap=True, its default) / first eval | {m_load:.3f} / {m_ev:.3f} | "
              f"{m_load_cpu:.3f} / {m_ev_cpu:.3f} | |")
        print(f"| llama.cpp warm eval | {warm:.3f} | | |")
        print(f"| llama.cpp process (python start + import + load + evals) | {ll_wall:.3f} | | {ll_rss / 1e6:.0f} |")
        both_cpu = px["parallax f32+q8"][2]
        print(f"parallax (f32+q8) / llama.cpp eval:        {both / ev:.2f}× wall, {both_cpu / ev_cpu:.2f}× CPU time   (goal ≤ 1.5×)")
        print(f"parallax (f32+q8) / llama.cpp load + eval: {both / (load + ev):.2f}× wall, {both_cpu / (load_cpu + ev_cpu):.2f}× CPU time"
              f"   (llama.cpp with use_mmap=True: {both / (m_load + m_ev):.2f}× wall, "
              f"{both_cpu / (m_load_cpu + m_ev_cpu):.2f}× CPU time)")
        if "parallax q8" in px:
            print(f"parallax q8 only / llama.cpp eval:         {px['parallax q8'][0] / ev:.2f}× wall, {px['parallax q8'][2] / ev_cpu:.2f}× CPU time")
    return ll


if __name__ == "__main__":
    main()
