#!/usr/bin/env python3
"""llama.cpp's own KL-divergence figures for the weight-type ladder (a golden for issue 13).

For each rung of the ladder (tools/golden/make_ladder.py: the shared Qwen2.5-Coder-0.5B
dequantized to an all-F32 GGUF by gguf-py, then quantized by llama.cpp's own quantizer), llama.cpp
(llama-cpp-python) evaluates the F32 base and the rung on the same token ids and this tool
measures, at every prompt position t = 0 .. n-1 (the logits at t predict token t+1):

  kld          KL(P_base ‖ P_rung) in nats; softmax in float64 from llama.cpp's float32 logits
               (log-softmax through logsumexp), the sum over the vocabulary in float64
  kld_reverse  KL(P_rung ‖ P_base), the same way
  same_top1    whether the two argmaxes are the same id (numpy argmax of the float32 logits:
               the first on ties)
  dp           Δp = p_rung(top_base) − p_base(top_base), top_base the base's argmax
  logp_next    log p(token[t+1]) under each file, t < n-1 (perplexity)

Summaries per rung (llama-perplexity's --kl-divergence definitions): kld and kld_reverse
{mean, stderr, median, p90, p99, max} with stderr = sqrt((mean(k²) − mean(k)²)/(n−1)) and the
percentiles numpy's default linear interpolation (np.percentile(k, q); median = p50);
same_top1 {count, n, share}; dp_rms = sqrt(mean(Δp²)); ppl of each file = exp(−mean logp_next)
and ppl_ratio = rung / base; kld_by_base_p_top1: the kld bucketed by the base's top-token
probability, edges BUCKET_EDGES, bucket i holding p in [edge_i, edge_i+1), the last one closed
([0.95, 1.0]): n and mean (null when empty) per bucket. Per position the golden also keeps each
rung's kld and argmax, and the base's argmax, top-token probability and logp_next.

Two token sequences:
  contract  the contract tokens of "What is 2+2?" (apr-vs-gguf-forward-parity-v1; the CLI's and
            the page's default prompt), [3838, 374, 220, 17, 10, 17, 30], n_ctx 64 as every
            other llama.cpp golden
  text      crates/engine/src/kld_text.txt, the product's built-in KLD text, verbatim (its
            trailing newline included), tokenized by llama.cpp as the Rust tokenizer does for
            qwen2: tokenize(text, add_bos=True, special=False) (Qwen2.5's add_bos_token is
            false, so no BOS); n_ctx 512, one batch
Both tokenizations are recorded; the contract one must equal the contract tokens (checked).

llama.cpp's settings: those of tools/reference/llamacpp_variants.py (CPU backend,
use_extra_bufts = false, 2 threads, logits_all): `default` (all tokens in one batch, f16 K/V
cache) is the golden's; `one_by_one` (n_batch = n_ubatch = 1), `kv_f32`, `flash_attn` and
`kv_f32_one_by_one` measure how far llama.cpp's own figures move when only its settings change:
per rung `settings_spread.kld_mean["<base setting>~<rung setting>"]` for all 25 pairs,
`max_rel_diff` = max over the pairs of |kld_mean − kld_mean(default~default)| / that (and
`max_rel_diff_base_default` over the pairs whose base is `default`), `tolerance_rel` =
max(0.05, max_rel_diff): a test that holds another implementation's KLD mean to llama.cpp's can
use it as its relative tolerance. The same for the kld median and p99 (`by_stat`) and the range
of the same-top-1 count over the pairs (`same_top1`), from every pair's figures (`pairs`): the
median and p99 of a few positions move far more under llama.cpp's own settings than the mean
does. `self_spread[setting]`: the same summaries between one file
under `default` and under that setting (llama.cpp against itself).

Each file is evaluated in a fresh process (as bench/ladder_vs_llamacpp.py does), once per
setting and sequence. Timing (`timing`, the one part that is not reproducible; seconds rounded to
1 ms): per file, setting and sequence the load (Llama(...)) and the evaluation (reset + eval);
per rung, both files' default-setting logits with and without the loads. The files' sha256 is
taken before, so they load from a warm page cache.

Everything else is deterministic for a given llama-cpp-python build and CPU (the matmuls run
llama.cpp's plain ggml-cpu kernels, chosen by the CPU features in `system_info`): keys sorted,
floats at full precision (Python's shortest repr of the float64) except the timings.

    python3 tools/golden/ladder_kld.py                   # every rung -> tests/golden/reference/ladder_kld.json
    python3 tools/golden/ladder_kld.py --types Q8_0,Q4_0 --out /tmp/k.json
    ./dev ladder-kld                                     # installs what it needs, makes the rungs, runs this

Not part of tools/golden/check_goldens.sh: it needs the ladder's files (the F32 base alone is
2 GB; ~1 min to dequantize and 10 s – 2 min per rung to quantize on 2 cores), its timings
differ on every run, and it takes ~1 h on 2 busy cores (most of it the one-token-per-batch
settings: 304 decodes per file and setting). To check the committed file, rerun it with `--out`
elsewhere and compare everything but `timing`.

Needs: gguf==0.19.0, numpy, llama-cpp-python==0.3.36, and the F32 base and the rungs in the model
cache (python3 tools/golden/make_ladder.py --types Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K,IQ4_XS;
the F32 base is always made); the source model too, when there (it tokenizes, and each file's
tensors are compared with its own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools" / "golden"))
sys.path.insert(0, str(ROOT / "tools" / "reference"))
import make_ladder  # noqa: E402
from common import CONTRACT_TOKENS, QWEN, sha256_file  # noqa: E402
from llamacpp_variants import SETTINGS  # noqa: E402

RUNGS = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS"]
BASE = "F32"
REFERENCE_SETTING = "default"
BUCKET_EDGES = [0.0, 0.5, 0.8, 0.95, 1.0]
N_THREADS = 2
CONTRACT_PROMPT = "What is 2+2?"
TEXT_FILE = "crates/engine/src/kld_text.txt"
# n_ctx per sequence: the contract's is every llama.cpp golden's (64); the text's holds it whole,
# and llama-cpp-python's n_batch (512, capped at n_ctx) evaluates it in one batch.
N_CTX = {"contract": 64, "text": 512}
CHUNK = 32  # positions per float64 block (32 × 151936 × 8 B = 39 MB)


# ---------------------------------------------------------------- llama.cpp, in a child process

def child(model: str, spec_path: str, out_dir: str) -> None:
    """Evaluates `model` on every sequence under every setting; writes <seq>.<setting>.npy
    (float32 logits, n × n_vocab) and timing.json into out_dir."""
    import llamacpp_logits as golden
    import llama_cpp.llama as llama_mod

    golden.plain_cpu_kernels(llama_mod)
    spec = json.loads(Path(spec_path).read_text())
    timing: dict = {}
    for setting, extra in SETTINGS.items():
        for seq, tokens in spec.items():
            t0 = time.perf_counter()
            llm = llama_mod.Llama(model_path=model, n_ctx=N_CTX[seq], n_threads=N_THREADS,
                                  n_threads_batch=N_THREADS, logits_all=True, verbose=False, **extra)
            t1 = time.perf_counter()
            if llm.model_params.use_extra_bufts:
                raise SystemExit("could not turn off use_extra_bufts")
            llm.reset()
            llm.eval(tokens)
            t2 = time.perf_counter()
            logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float32).copy()
            if logits.shape[0] != len(tokens) or not np.all(np.isfinite(logits)):
                raise SystemExit(f"{model}: bad logits ({logits.shape}) with {setting}")
            np.save(Path(out_dir) / f"{seq}.{setting}.npy", logits)
            timing.setdefault(setting, {})[seq] = {"load_s": t1 - t0, "eval_s": t2 - t1}
            del llm
    (Path(out_dir) / "timing.json").write_text(json.dumps(timing))


def evaluate(path: Path, spec_path: Path, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([sys.executable, __file__, "--child", str(path), str(spec_path), str(out_dir)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"llama.cpp failed on {path.name}:\n{p.stderr[-3000:]}")
    return json.loads((out_dir / "timing.json").read_text())


# ---------------------------------------------------------------- the statistics

def log_softmax(x: np.ndarray) -> np.ndarray:
    """float64 log-softmax of float32 rows, through logsumexp."""
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


def per_position(base: np.ndarray, rung: np.ndarray, tokens: list[int], reverse: bool = True) -> dict:
    """Per-position figures between two (n × n_vocab) float32 logit arrays."""
    n = base.shape[0]
    out = {k: np.empty(n) for k in ("kld", "kld_reverse", "dp", "p_top1", "logp_next_base", "logp_next_rung")}
    out["top1_base"] = np.argmax(base, axis=1)
    out["top1_rung"] = np.argmax(rung, axis=1)
    nxt = np.array(tokens[1:] + [-1])
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        lb, lr = log_softmax(base[s:e]), log_softmax(rung[s:e])
        pb = np.exp(lb)
        d = lb - lr
        out["kld"][s:e] = (pb * d).sum(axis=1)
        out["kld_reverse"][s:e] = (np.exp(lr) * -d).sum(axis=1) if reverse else np.nan
        rows = np.arange(e - s)
        top = out["top1_base"][s:e]
        out["p_top1"][s:e] = pb[rows, top]
        out["dp"][s:e] = np.exp(lr[rows, top]) - pb[rows, top]
        idx = nxt[s:e]
        ok = idx >= 0
        out["logp_next_base"][s:e] = np.where(ok, lb[rows, np.where(ok, idx, 0)], np.nan)
        out["logp_next_rung"][s:e] = np.where(ok, lr[rows, np.where(ok, idx, 0)], np.nan)
    return out


def dist_summary(k: np.ndarray) -> dict:
    n = k.size
    mean = float(k.mean())
    var = float((k * k).mean()) - mean * mean
    return {
        "mean": mean,
        "stderr": float(np.sqrt(var / (n - 1))) if n > 1 and var > 0 else 0.0,
        "median": float(np.percentile(k, 50)),
        "p90": float(np.percentile(k, 90)),
        "p99": float(np.percentile(k, 99)),
        "max": float(k.max()),
        "min": float(k.min()),
        "n": int(n),
    }


def buckets(k: np.ndarray, p: np.ndarray) -> list[dict]:
    out = []
    for i in range(len(BUCKET_EDGES) - 1):
        lo, hi = BUCKET_EDGES[i], BUCKET_EDGES[i + 1]
        last = i == len(BUCKET_EDGES) - 2
        m = (p >= lo) & ((p <= hi) if last else (p < hi))
        out.append({"lo": lo, "hi": hi, "closed_hi": last, "n": int(m.sum()),
                    "mean": float(k[m].mean()) if m.any() else None})
    return out


def ppl(logp: np.ndarray) -> float:
    v = logp[:-1]
    return float(np.exp(-v.mean()))


def summaries(pp: dict) -> dict:
    same = pp["top1_base"] == pp["top1_rung"]
    pb, pr = ppl(pp["logp_next_base"]), ppl(pp["logp_next_rung"])
    return {
        "kld": dist_summary(pp["kld"]),
        "kld_reverse": dist_summary(pp["kld_reverse"]),
        "same_top1": {"count": int(same.sum()), "n": int(same.size), "share": float(same.mean())},
        "dp_rms": float(np.sqrt((pp["dp"] ** 2).mean())),
        "ppl": {"base": pb, "rung": pr, "ratio": pr / pb},
        "kld_by_base_p_top1": buckets(pp["kld"], pp["p_top1"]),
    }


SPREAD_STATS = ("mean", "median", "p99")


def pair_stats(base: np.ndarray, rung: np.ndarray) -> dict:
    """The statistics a test holds to llama.cpp's, between two (n × n_vocab) logit arrays: the
    kld's mean, median and p99 (per_position's kld, computed the same way: the same floats) and
    the same-top-1 count."""
    k = np.empty(base.shape[0])
    for s in range(0, base.shape[0], CHUNK):
        e = min(base.shape[0], s + CHUNK)
        lb, lr = log_softmax(base[s:e]), log_softmax(rung[s:e])
        k[s:e] = (np.exp(lb) * (lb - lr)).sum(axis=1)
    d = dist_summary(k)
    same = int((np.argmax(base, axis=1) == np.argmax(rung, axis=1)).sum())
    return {**{st: d[st] for st in SPREAD_STATS}, "same_top1": same}


# ---------------------------------------------------------------- output

def dump(x, indent: int = 0) -> str:
    """JSON with sorted keys, one key per line, lists of scalars on one line."""
    pad = " " * indent
    if isinstance(x, dict):
        if not x:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {dump(x[k], indent + 1)}' for k in sorted(x)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(x, list):
        if all(not isinstance(v, (dict, list)) for v in x):
            return "[" + ", ".join(json.dumps(v) for v in x) + "]"
        return "[\n" + ",\n".join(f"{pad} {dump(v, indent + 1)}" for v in x) + "\n" + pad + "]"
    if isinstance(x, float) and not np.isfinite(x):
        raise ValueError("non-finite float in the golden")
    return json.dumps(x)


def rounded_ms(x):
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, dict):
        return {k: rounded_ms(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded_ms(v) for v in x]
    return x


def identical_to_source(src: Path, path: Path) -> dict:
    """How many of the file's tensors are byte for byte the source's (same name, type and bytes):
    the base is the source dequantized, so a rung that picks the source's type for a tensor gets
    the source's exact bytes back (a round trip, not a new quantization)."""
    import gguf

    a = {t.name: t for t in gguf.GGUFReader(str(src), "r").tensors}
    tensors = gguf.GGUFReader(str(path), "r").tensors
    same = same_q = n_q = 0
    for t in tensors:
        quantized = t.tensor_type != gguf.GGMLQuantizationType.F32
        n_q += quantized
        s = a.get(t.name)
        if s is not None and s.tensor_type == t.tensor_type and \
                np.array_equal(np.asarray(s.data).view(np.uint8), np.asarray(t.data).view(np.uint8)):
            same += 1
            same_q += quantized
    return {"count": same, "n": len(tensors), "quantized_count": same_q, "quantized_n": n_q}


def tokenize(vocab_file: Path, text: str) -> list[int]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(vocab_file), vocab_only=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    del llm
    return [int(i) for i in ids]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default=str(make_ladder.models_dir()))
    ap.add_argument("--types", help="comma-separated rungs (default: " + ",".join(RUNGS) + ")")
    ap.add_argument("--out", default=str(ROOT / "tests/golden/reference/ladder_kld.json"))
    args = ap.parse_args()

    import llama_cpp

    d = Path(args.models_dir)
    rungs = args.types.split(",") if args.types else RUNGS
    paths = {name: make_ladder.ladder_path(d, name) for name in [BASE, *rungs]}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing in {d}: {', '.join(missing)} "
                         f"(python3 tools/golden/make_ladder.py --types {','.join(rungs)})")
    src = d / QWEN
    vocab_file = src if src.exists() else paths[BASE]

    text_path = ROOT / TEXT_FILE
    text = text_path.read_text(encoding="utf-8")
    contract = tokenize(vocab_file, CONTRACT_PROMPT)
    if contract != CONTRACT_TOKENS[QWEN]:
        raise SystemExit(f"llama.cpp tokenizes {CONTRACT_PROMPT!r} as {contract}, "
                         f"the contract tokens are {CONTRACT_TOKENS[QWEN]}")
    text_tokens = tokenize(vocab_file, text)
    if text_tokens and text_tokens[0] == 151643:
        raise SystemExit("llama.cpp added a BOS to Qwen2.5's text (add_bos_token is false)")
    tokens = {"contract": contract, "text": text_tokens}
    if len(text_tokens) > N_CTX["text"]:
        raise SystemExit(f"the text is {len(text_tokens)} tokens, more than n_ctx {N_CTX['text']}")

    files = {}
    for name, p in paths.items():
        t0 = time.perf_counter()
        files[name] = {"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p),
                       "tensor_types": make_ladder.histogram(p)["types"],
                       "tensors_identical_to_source": identical_to_source(src, p) if src.exists() else None}
        print(f"{name}: {files[name]['bytes']} bytes, sha256 {files[name]['sha256'][:16]}… "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    seqs: dict = {
        "contract": {"prompt": CONTRACT_PROMPT, "source": "the contract apr-vs-gguf-forward-parity-v1 "
                     "(tools/reference/common.py CONTRACT_TOKENS); the CLI's and the page's default prompt"},
        "text": {"file": TEXT_FILE, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                 "n_chars": len(text), "n_bytes": len(text.encode("utf-8")),
                 "source": "the built-in KLD text, the file's whole contents verbatim"},
    }
    for seq, t in tokens.items():
        seqs[seq].update({"tokens": t, "n_tokens": len(t), "n_positions": len(t), "n_next": len(t) - 1,
                          "n_ctx": N_CTX[seq],
                          "tokenize": "llama-cpp-python Llama(vocab_only=True).tokenize(text.encode(), "
                                      "add_bos=True, special=False)"})
        seqs[seq]["rungs"] = {}

    timing: dict = {"files": {}, "rungs": {}}
    with tempfile.TemporaryDirectory(prefix="ladder-kld-") as tmp:
        tmp = Path(tmp)
        spec = tmp / "tokens.json"
        spec.write_text(json.dumps(tokens))
        t_all = time.perf_counter()
        timing["loadavg_start"] = list(os.getloadavg())
        print(f"{BASE}: llama.cpp, {len(SETTINGS)} settings × {len(tokens)} sequences", file=sys.stderr)
        timing["files"][BASE] = evaluate(paths[BASE], spec, tmp / BASE)

        def load(name, seq, setting):
            return np.load(tmp / name / f"{seq}.{setting}.npy", mmap_mode="r")

        for seq, t in tokens.items():
            b = load(BASE, seq, REFERENCE_SETTING)
            pp = per_position(b, b, t, reverse=False)
            seqs[seq]["base"] = {
                "ppl": ppl(pp["logp_next_base"]),
                "per_position": {"top1": [int(i) for i in pp["top1_base"]],
                                 "p_top1": [float(v) for v in pp["p_top1"]],
                                 "logp_next": [float(v) for v in pp["logp_next_base"][:-1]]},
                "self_spread": {s: summaries(per_position(b, load(BASE, seq, s), t))
                                for s in SETTINGS if s != REFERENCE_SETTING},
            }
        for name in rungs:
            t0 = time.perf_counter()
            timing["files"][name] = evaluate(paths[name], spec, tmp / name)
            for seq, t in tokens.items():
                b = load(BASE, seq, REFERENCE_SETTING)
                r = load(name, seq, REFERENCE_SETTING)
                pp = per_position(b, r, t)
                row = summaries(pp)
                row["per_position"] = {"kld": [float(v) for v in pp["kld"]],
                                       "top1": [int(i) for i in pp["top1_rung"]]}
                row["self_spread"] = {s: summaries(per_position(r, load(name, seq, s), t))
                                      for s in SETTINGS if s != REFERENCE_SETTING}
                stats = {f"{sb}~{sr}": pair_stats(load(BASE, seq, sb), load(name, seq, sr))
                         for sb in SETTINGS for sr in SETTINGS}
                ref_pair = f"{REFERENCE_SETTING}~{REFERENCE_SETTING}"
                for st in SPREAD_STATS:
                    if stats[ref_pair][st] != row["kld"][st]:
                        # the same sums in the same order: must be the same float
                        raise SystemExit(f"{name}/{seq}: kld {st} {stats[ref_pair][st]} != {row['kld'][st]}")
                if stats[ref_pair]["same_top1"] != row["same_top1"]["count"]:
                    raise SystemExit(f"{name}/{seq}: same_top1 {stats[ref_pair]['same_top1']} "
                                     f"!= {row['same_top1']['count']}")
                pairs = {k: v["mean"] for k, v in stats.items()}
                ref = pairs[ref_pair]
                rel = {k: abs(v - ref) / ref for k, v in pairs.items()}
                mrd = max(rel.values())
                by_stat = {}
                for st in SPREAD_STATS:
                    r0 = stats[ref_pair][st]
                    rel_st = {k: abs(v[st] - r0) / r0 for k, v in stats.items()}
                    worst = max(rel_st, key=lambda k: (rel_st[k], k))
                    by_stat[st] = {"max_rel_diff": rel_st[worst], "max_rel_diff_pair": worst,
                                   "tolerance_rel": max(0.05, rel_st[worst])}
                counts = {k: v["same_top1"] for k, v in stats.items()}
                row["settings_spread"] = {
                    "kld_mean": pairs,
                    "max_rel_diff": mrd,
                    "max_rel_diff_pair": max(rel, key=lambda k: (rel[k], k)),
                    "max_rel_diff_base_default": max(v for k, v in rel.items()
                                                     if k.startswith(REFERENCE_SETTING + "~")),
                    "tolerance_rel": max(0.05, mrd),
                    "pairs": stats,
                    "by_stat": by_stat,
                    "same_top1": {"min": min(counts.values()), "max": max(counts.values()),
                                  "default": counts[ref_pair]},
                }
                seqs[seq]["rungs"][name] = row
                print(f"  {name:7s} {seq:8s} n={len(t):3d} kld mean {row['kld']['mean']:.6f} "
                      f"median {row['kld']['median']:.6f} p99 {row['kld']['p99']:.6f} "
                      f"same_top1 {row['same_top1']['count']}/{row['same_top1']['n']} "
                      f"ppl ratio {row['ppl']['ratio']:.4f} settings ±{100 * mrd:.2f}%",
                      file=sys.stderr, flush=True)
            tb, tr = timing["files"][BASE][REFERENCE_SETTING], timing["files"][name][REFERENCE_SETTING]
            timing["rungs"][name] = {
                seq: {"eval_s": tb[seq]["eval_s"] + tr[seq]["eval_s"],
                      "with_load_s": tb[seq]["eval_s"] + tr[seq]["eval_s"] + tb[seq]["load_s"] + tr[seq]["load_s"]}
                for seq in tokens}
            for f in (tmp / name).glob("*.npy"):
                f.unlink()
            print(f"  {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        timing["total_s"] = time.perf_counter() - t_all
        timing["loadavg_end"] = list(os.getloadavg())
        timing["cpu_count"] = os.cpu_count()

    for seq in seqs.values():
        seq["order_by_kld_mean"] = sorted(seq["rungs"], key=lambda k: (seq["rungs"][k]["kld"]["mean"], k))

    info = llama_cpp.llama_print_system_info()
    out = {
        "tool": "tools/golden/ladder_kld.py",
        "what": "llama.cpp's KL divergence of each ladder rung against the ladder's F32 base, per prompt "
                "position, and how far those figures move under llama.cpp's own settings",
        "llama_cpp_python_version": llama_cpp.__version__,
        "gguf_version": metadata.version("gguf"),
        "numpy_version": np.__version__,
        "system_info": info.decode() if isinstance(info, bytes) else str(info),
        "source": {"file": QWEN, "sha256": sha256_file(src) if src.exists() else None,
                   "note": "the ladder's F32 base is this file dequantized by gguf-py "
                   "(tools/golden/make_ladder.py); every rung is llama.cpp's quantizer on that base. A rung "
                   "tensor of the source's own type requantizes to the source's exact bytes "
                   "(files.*.tensors_identical_to_source), so a rung near the source's own mix (Q4_K_M) is "
                   "mostly a round trip and its KLD low for that reason"},
        "base": BASE,
        "rungs": rungs,
        "files": files,
        "common": {"backend": "CPU", "use_extra_bufts": False, "n_threads": N_THREADS,
                   "n_threads_batch": N_THREADS, "logits_all": True,
                   "process": "a fresh process per file; one Llama per setting and sequence"},
        "settings": SETTINGS,
        "reference_setting": REFERENCE_SETTING,
        "bucket_edges": BUCKET_EDGES,
        "definitions": {
            "kld": "KL(P_base || P_rung) in nats at each position t = 0..n-1 (logits at t predict token t+1); "
                   "log-softmax in float64 from the float32 logits via logsumexp, vocabulary sum in float64",
            "kld_reverse": "KL(P_rung || P_base), the same way",
            "summary": "mean; stderr = sqrt((mean(k^2) - mean(k)^2)/(n-1)); median, p90, p99 = np.percentile(k, q) "
                       "(linear interpolation); max; min; n",
            "same_top1": "positions where np.argmax of the float32 logits agree (count, n, share = count/n)",
            "dp_rms": "sqrt(mean(dp^2)), dp = p_rung(top_base) - p_base(top_base), top_base = the base's argmax",
            "ppl": "exp(-mean log p(token[t+1])) over t = 0..n-2, each file; ratio = rung / base",
            "kld_by_base_p_top1": "kld by the base's top-token probability p: bucket [lo, hi), the last [lo, hi]; "
                                  "n and mean (null when empty)",
            "self_spread": "the summaries between one file under the reference setting (as 'base') and under "
                           "another setting (as 'rung'): llama.cpp against itself",
            "settings_spread": "kld_mean for every '<base setting>~<rung setting>' pair; max_rel_diff = max "
                               "|kld_mean - kld_mean(default~default)| / kld_mean(default~default); "
                               "tolerance_rel = max(0.05, max_rel_diff); pairs: the kld mean, median, "
                               "p99 and the same_top1 count of every pair; by_stat[mean|median|p99]: "
                               "max_rel_diff, its pair and tolerance_rel = max(0.05, max_rel_diff) for "
                               "that statistic; same_top1: min and max count over the pairs, and "
                               "default~default's",
            "order_by_kld_mean": "the rungs by kld mean, ascending",
            "timing": "seconds (rounded to 1 ms; not reproducible): per file, setting and sequence load_s "
                      "(Llama(...)) and eval_s (reset + eval); per rung both files' default-setting eval_s, and "
                      "with_load_s adding both loads; the machine's load average (1, 5, 15 min) at the start and "
                      "the end",
            "tensors_identical_to_source": "tensors byte-identical (name, type, bytes) to the source file's: "
                                           "count of n, and of the file's non-F32 tensors quantized_count of "
                                           "quantized_n (the 121 F32 norms and biases are the same in every file)",
        },
        "sequences": seqs,
        "timing": rounded_ms(timing),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dump(out) + "\n")
    print(f"wrote {args.out} ({timing['total_s']:.0f} s)", file=sys.stderr)
    for seq, v in seqs.items():
        print(f"{seq}: {' < '.join(v['order_by_kld_mean'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
