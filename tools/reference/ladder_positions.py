#!/usr/bin/env python3
"""How far llama.cpp's own settings move each position's KL divergence, beside Parallax.

For each rung given (default Q5_K_M and Q6_K, the two where `bench/ladder_kld.py`'s bars are
tightest), on the golden's built-in-text tokens:
  - llama.cpp (llama-cpp-python, through tools/golden/ladder_kld.py's child process: the same
    settings, threads and kernels as the golden) evaluates the F32 base and the rung under each
    of its five settings, `logits_all`;
  - `parallax run -m <F32 base> --against <rung> --paths q8 --tokens …` gives Parallax's
    per-position KL (`per_token.logits["q8@2"]`) and top-1 tokens.
Then, against llama.cpp's default (both files under `default`), for each other setting `s`
(both files under `s`, and the base under `default` with the rung under `s`) and for Parallax:
the KLD mean, median and p99 and their relative change; the per-position change (RMS of the
differences over the RMS of llama.cpp's KLD, and the median of |difference| / KLD); the same-top-1
count; and at how many positions the rung's top-1 token differs from llama.cpp's default.

What it shows: llama.cpp's own settings move a position's KLD by 14–37 % (median) on these
quantized rungs, while the F32 base under the same settings differs from itself by a KL of about
1e-6 nats (the golden's `base.self_spread`). The likely reason: on a quantized file every matmul
quantizes its activations (the F32 base's take f32 ones), so a last-bit difference in an
activation (another summation order, an f32 instead of an f16 KV cache) can move a value across
a rounding boundary, a whole quantization step, and 24 layers compound it. Summary statistics of
few positions (the median of 7 contract tokens, the p99 of 304) inherit that noise; the top-1
token changes at a handful of near-tied positions.

Writes bench/results/ladder_positions.json. Needs llama-cpp-python 0.3.36, the ladder (made
by tools/golden/make_ladder.py) and a release `parallax`. About 10 minutes on 2 cores (the F32
base one token at a time is most of it); `--cache DIR` keeps llama.cpp's logits (about 185 MB
per file and setting) to rerun the statistics without them.

Usage: python3 tools/reference/ladder_positions.py --parallax target/release/parallax [--rungs Q5_K_M,Q6_K]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
sys.path.insert(0, str(ROOT / "tools/reference"))
import ladder_kld  # noqa: E402
import make_ladder  # noqa: E402

GOLDEN = ROOT / "tests/golden/reference/ladder_kld.json"


def rel(a: float, b: float) -> float:
    return (a - b) / b if b else float("nan")


def summary(k: np.ndarray, ref: np.ndarray, top1: np.ndarray, top1_default: np.ndarray,
            agree: np.ndarray) -> dict:
    d = k - ref
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
    stats = {"mean": float(k.mean()), "median": float(np.median(k)), "p99": float(np.percentile(k, 99))}
    refs = {"mean": float(ref.mean()), "median": float(np.median(ref)), "p99": float(np.percentile(ref, 99))}
    return {
        **stats,
        **{f"{s}_rel_change": rel(stats[s], refs[s]) for s in stats},
        "per_position_rel_rms_change": rms(d) / rms(ref),
        "per_position_median_abs_rel_change": float(np.median(np.abs(d) / ref)),
        "same_top1": int(agree.sum()),
        "rung_top1_differs_from_default_at": int((top1 != top1_default).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallax", required=True)
    ap.add_argument("--rungs", default="Q5_K_M,Q6_K")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--models-dir", default=str(make_ladder.models_dir()))
    ap.add_argument("--cache", help="keep llama.cpp's logits here (<file>/text.<setting>.npy)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/ladder_positions.json"))
    args = ap.parse_args()

    golden = json.loads(GOLDEN.read_text())
    tokens = golden["sequences"]["text"]["tokens"]
    models = Path(args.models_dir)
    rungs = args.rungs.split(",")
    settings = list(ladder_kld.SETTINGS)
    reference = ladder_kld.REFERENCE_SETTING
    with tempfile.TemporaryDirectory(prefix="ladder-positions-") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"text": tokens}))
        for name in [golden["base"], *rungs]:
            if all((cache / name / f"text.{s}.npy").exists() for s in settings):
                continue
            print(f"llama.cpp: {name} under {len(settings)} settings", file=sys.stderr, flush=True)
            ladder_kld.evaluate(make_ladder.ladder_path(models, name), spec, cache / name)

        def logits(name: str, setting: str) -> np.ndarray:
            return np.load(cache / name / f"text.{setting}.npy", mmap_mode="r")

        base_default = logits(golden["base"], reference)
        base_top1 = np.argmax(base_default, axis=1)
        result = {"golden": str(GOLDEN.relative_to(ROOT)), "sequence": "text", "n": len(tokens),
                  "reference": f"{reference}~{reference}", "rungs": {}}
        for rung in rungs:
            ref_pp = ladder_kld.per_position(base_default, logits(rung, reference), tokens)
            ref, top1_default = ref_pp["kld"], np.argmax(logits(rung, reference), axis=1)
            rows = {}
            for s in settings:
                if s == reference:
                    continue
                for b in (reference, s):
                    pp = ladder_kld.per_position(logits(golden["base"], b), logits(rung, s), tokens)
                    top1 = np.argmax(logits(rung, s), axis=1)
                    agree = top1 == np.argmax(logits(golden["base"], b), axis=1)
                    rows[f"llama.cpp {b}~{s}"] = summary(pp["kld"], ref, top1, top1_default, agree)
            report = Path(tmp) / f"{rung}.json"
            cmd = [args.parallax, "run", "-m", str(make_ladder.ladder_path(models, golden["base"])),
                   "--against", str(make_ladder.ladder_path(models, rung)), "--paths", "q8",
                   "--tokens", ",".join(map(str, tokens)), "--no-hash", "-q", "--threads", args.threads,
                   "--json", str(report)]
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if p.returncode not in (0, 1):
                sys.exit(f"{' '.join(cmd)} exited with {p.returncode}:\n{p.stderr[-2000:]}")
            per = json.loads(report.read_text())["per_token"]["logits"]["q8@2"]
            kld = np.array([q["kl"] for q in per])
            top1 = np.array([q["top1"] for q in per])
            reference_top1 = np.array([q["reference_top1"] for q in per])
            agree = top1 == reference_top1
            if not np.array_equal(reference_top1, base_top1):
                print(f"{rung}: Parallax's base top-1 differs from llama.cpp's at "
                      f"{int((reference_top1 != base_top1).sum())} positions", file=sys.stderr)
            rows["parallax"] = summary(kld, ref, top1, top1_default, agree)
            result["rungs"][rung] = {"llamacpp_default": {"mean": float(ref.mean()),
                                                          "median": float(np.median(ref)),
                                                          "p99": float(np.percentile(ref, 99)),
                                                          "same_top1": int((top1_default == base_top1).sum())},
                                     "against_default": rows}
            print(f"== {rung} (llama.cpp default: KLD mean {ref.mean():.5f}, same top-1 "
                  f"{int((top1_default == base_top1).sum())} of {len(tokens)})")
            for name, r in rows.items():
                print(f"  {name:42s} mean {100 * r['mean_rel_change']:+5.1f} %  median "
                      f"{100 * r['median_rel_change']:+5.1f} %  p99 {100 * r['p99_rel_change']:+5.1f} %  "
                      f"per position: RMS {r['per_position_rel_rms_change']:.3f}, median "
                      f"{r['per_position_median_abs_rel_change']:.3f}  same top-1 {r['same_top1']}, "
                      f"top-1 moved at {r['rung_top1_differs_from_default_at']}")
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
