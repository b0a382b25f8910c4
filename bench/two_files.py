#!/usr/bin/env python3
"""A run over two files against the two one-file runs it replaces, measured in one go.

`parallax run -m A --against B` steps both files through the layers in lockstep (one layer of
each in memory) and first compares their weights tensor by tensor. Its baseline is what a user
would otherwise do: `parallax run -m A` and `parallax run -m B`, one after the other. Wall time
is the median of --repeat runs of each; peak RSS comes from wait4() (ru_maxrss) of each child:
resident pages of the process only (the page cache holding the files is not counted).

Pairs (in the model cache, $PARALLAX_MODELS or ~/.cache/parallax/models):
  - the shared 0.5B Q4_K_M against gguf-py's F32 rewrite of it (identical weights; `./dev`
    makes it),
  - the 0.5B Q4_K_M against the ladder's Q8_0 (llama.cpp's quantizer; `./dev ladder` makes
    it), when present.

The two-file run also reads every file once more for its weights diff (`weights`): on the
0.5B against its 2.4 GB F32 rewrite that pass is most of the extra time.

Usage: python3 bench/two_files.py --parallax target/release/parallax [--threads 1] [--repeat 3]
Writes bench/results/two_files.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from child import models_dir, run

TOKENS = "3838,374,220,17,10,17,30"
BASE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
OTHERS = ["qwen2.5-0.5b-ladder-F32.gguf", "qwen2.5-0.5b-ladder-Q8_0.gguf"]


def measure(cmd: list[str], repeat: int) -> dict:
    runs = [run(cmd) for _ in range(repeat)]
    return {
        "seconds": statistics.median(r[0] for r in runs),
        "seconds_all": [round(r[0], 3) for r in runs],
        "peak_rss_bytes": max(r[1] for r in runs),
        # CPU seconds (user + system): what a busy machine's wall time hides.
        "cpu_seconds": statistics.median(r[2] for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallax", required=True)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "two_files.json"))
    args = ap.parse_args()
    models = models_dir()
    base = models / BASE
    if not base.is_file():
        sys.exit(f"{base} is missing: run ../shared/models/fetch.sh (or ./dev test)")
    common = ["--tokens", TOKENS, "--no-hash", "-q", "--threads", args.threads]
    results = []
    for name in OTHERS:
        other = models / name
        if not other.is_file():
            print(f"skipping {name}: not in {models}", file=sys.stderr)
            continue
        one_a = measure([args.parallax, "run", "-m", str(base), *common], args.repeat)
        one_b = measure([args.parallax, "run", "-m", str(other), *common], args.repeat)
        two = measure([args.parallax, "run", "-m", str(base), "--against", str(other), *common], args.repeat)
        two_only = measure(
            [args.parallax, "run", "-m", str(base), "--against", str(other), "--paths", "q8", *common],
            args.repeat,
        )
        row = {
            "a": BASE,
            "b": name,
            "bytes_a": base.stat().st_size,
            "bytes_b": other.stat().st_size,
            "one_file_a": one_a,
            "one_file_b": one_b,
            "two_files": two,
            "two_files_q8_only": two_only,
            "time_ratio_vs_two_runs": two["seconds"] / (one_a["seconds"] + one_b["seconds"]),
            "cpu_ratio_vs_two_runs": two["cpu_seconds"] / (one_a["cpu_seconds"] + one_b["cpu_seconds"]),
            "rss_ratio_vs_larger_file": two["peak_rss_bytes"]
            / max(one_a["peak_rss_bytes"], one_b["peak_rss_bytes"]),
        }
        results.append(row)
        print(
            f"{BASE} against {name}: two-file run {two['seconds']:.2f} s "
            f"(q8 only {two_only['seconds']:.2f} s) vs one-file runs {one_a['seconds']:.2f} + "
            f"{one_b['seconds']:.2f} s = ×{row['time_ratio_vs_two_runs']:.2f} (CPU "
            f"{two['cpu_seconds']:.2f} s vs {one_a['cpu_seconds']:.2f} + {one_b['cpu_seconds']:.2f} s = "
            f"×{row['cpu_ratio_vs_two_runs']:.2f}); peak RSS "
            f"{two['peak_rss_bytes'] >> 20} MiB = ×{row['rss_ratio_vs_larger_file']:.2f} the larger "
            f"file's one-file run"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"], capture_output=True, text=True).stdout
    out.write_text(json.dumps({"threads": args.threads, "tokens": TOKENS, "cpu": cpu.strip(), "pairs": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
