#!/usr/bin/env python3
"""Parallax's KL divergence of each ladder rung against the F32 base, beside llama.cpp's own.

The golden (tests/golden/reference/ladder_kld.json, made by tools/golden/ladder_kld.py with
llama-cpp-python, `logits_all` for both files on the same tokens, KL summed in float64) holds,
for each rung of the quantization ladder and each token sequence (the contract tokens, the
built-in text), llama.cpp's KLD summary and how far it moves under llama.cpp's own settings.
This runs

    parallax run -m <F32 base> --against <rung> --paths q8 --tokens <the golden's> --json …

for every rung and sequence, reads `logits.compare["q8@2"].positions`, and holds it to the
issue's acceptance:
  - KLD mean, median and p99 within 5 % of llama.cpp's, or within llama.cpp's spread across its
    own settings where that is wider (the golden's `tolerance_rel`, from the KLD mean);
  - same top-1 within one position of llama.cpp's count;
  - the ladder ordered by KLD mean as llama.cpp orders it.
It also times each Parallax run (both files' forward passes on the `q8` path, plus the weights
diff every two-file run makes) beside llama.cpp's evaluation of the same two files (from the
golden's timing: eval, and eval plus load).

Exit status 1 when a point fails. Writes bench/results/ladder_kld.json.

Usage: python3 bench/ladder_kld.py --parallax target/release/parallax [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests/golden/reference/ladder_kld.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallax", required=True)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--out", default=str(ROOT / "bench/results/ladder_kld.json"))
    args = ap.parse_args()
    golden = json.loads(GOLDEN.read_text())
    models = Path(os.environ.get("PARALLAX_MODELS", Path.home() / ".cache/parallax/models"))
    base = models / golden["files"][golden["base"]]["file"]
    failures: list[str] = []
    rows = []
    for seq_name, seq in golden["sequences"].items():
        tokens = ",".join(str(t) for t in seq["tokens"])
        measured = {}
        for rung in golden["rungs"]:
            want = seq["rungs"][rung]
            path = models / golden["files"][rung]["file"]
            if not path.is_file():
                sys.exit(f"{path} is missing: python3 tools/golden/make_ladder.py --types {rung}")
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "r.json"
                cmd = [args.parallax, "run", "-m", str(base), "--against", str(path), "--paths", "q8",
                       "--tokens", tokens, "--no-hash", "-q", "--threads", args.threads, "--json", str(out)]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                seconds = time.perf_counter() - t0
                if p.returncode not in (0, 1):
                    sys.exit(f"{' '.join(cmd)} exited with {p.returncode}:\n{p.stderr[-2000:]}")
                report = json.loads(out.read_text())
            got = report["logits"]["compare"]["q8@2"]["positions"]
            tol = want["settings_spread"]["tolerance_rel"]
            row = {"sequence": seq_name, "rung": rung, "n": got["n"], "tolerance_rel": tol,
                   "parallax_seconds": round(seconds, 3),
                   "llamacpp_eval_seconds": golden["timing"]["rungs"][rung][seq_name]["eval_s"],
                   "llamacpp_with_load_seconds": golden["timing"]["rungs"][rung][seq_name]["with_load_s"]}
            for stat in ("mean", "median", "p99"):
                ours, theirs = got["kld"][stat], want["kld"][stat]
                rel = abs(ours - theirs) / theirs if theirs else (0.0 if ours == 0 else float("inf"))
                row[f"kld_{stat}"] = {"parallax": ours, "llamacpp": theirs, "rel_diff": rel}
                if rel > tol:
                    failures.append(f"{rung} {seq_name}: KLD {stat} {ours:.6g} vs llama.cpp {theirs:.6g} "
                                    f"({100 * rel:.1f} % > {100 * tol:.1f} %)")
            ours, theirs = got["same_top1_count"], want["same_top1"]["count"]
            row["same_top1"] = {"parallax": ours, "llamacpp": theirs, "n": got["n"]}
            if abs(ours - theirs) > 1:
                failures.append(f"{rung} {seq_name}: same top-1 {ours} vs llama.cpp {theirs} of {got['n']}")
            measured[rung] = got["kld"]["mean"]
            rows.append(row)
            print(f"{seq_name:8s} {rung:7s} KLD mean {got['kld']['mean']:.6f} (llama.cpp {want['kld']['mean']:.6f}, "
                  f"{100 * row['kld_mean']['rel_diff']:.2f} %) median {100 * row['kld_median']['rel_diff']:.2f} % "
                  f"p99 {100 * row['kld_p99']['rel_diff']:.2f} % (tolerance {100 * tol:.1f} %); same top-1 "
                  f"{ours}/{got['n']} (llama.cpp {theirs}); {seconds:.1f} s vs llama.cpp "
                  f"{row['llamacpp_eval_seconds']:.1f} s eval, {row['llamacpp_with_load_seconds']:.1f} s with load",
                  flush=True)
        order = sorted(measured, key=lambda k: (measured[k], k))
        if order != seq["order_by_kld_mean"]:
            failures.append(f"{seq_name}: Parallax orders the ladder {order}, llama.cpp {seq['order_by_kld_mean']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"golden": str(GOLDEN.relative_to(ROOT)), "threads": args.threads,
                               "rows": rows, "failures": failures}, indent=1) + "\n")
    print(f"wrote {out}")
    if failures:
        print("\n".join(["FAILED:"] + failures), file=sys.stderr)
        sys.exit(1)
    print("every rung within llama.cpp's tolerance; same ordering")


if __name__ == "__main__":
    main()
