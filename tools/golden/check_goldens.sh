#!/usr/bin/env bash
# Reruns every golden generator that can run offline on this machine into a temporary folder and
# diffs what it writes against the committed golden. A difference means the committed file no
# longer equals what its generator produces (an edited generator, a hand-edited golden, or a new
# version of the independent library), and the script exits 1.
#
# When to run it: after editing any generator under tools/golden, tools/reference or
# crates/gguf/tests/data, after regenerating a golden, and when bumping gguf-py, numpy, scipy or
# llama-cpp-python. It is not part of `./dev test` (it needs Python packages the Rust tests do
# not).
#
# Needs: python3 with numpy, scipy and gguf 0.19 (`pip install 'gguf==0.19.*' numpy scipy`).
# The llama.cpp generators run only when `python3 -c 'import llama_cpp'` works; the ones that
# read the real models only when they are in $PARALLAX_MODELS (default ~/.cache/parallax/models).
# Everything that cannot run is named in a SKIPPED line, never silently left out.
#
# Not byte-reproducible, so compared elsewhere: tools/reference/numpy_forward.py (its BLAS sums
# differ by ~1e-6 between builds; tests/engine.rs holds the Rust side to its golden).
#
# Usage: tools/golden/check_goldens.sh   (from anywhere; PYTHON=... picks the interpreter,
# PARALLAX_SHARED=... the shared folder when it is not ../shared beside the repository)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${PYTHON:-python3}"
models="${PARALLAX_MODELS:-$HOME/.cache/parallax/models}"
qwen="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
gemma="gemma-3-270m-q4_k_m.gguf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0

skip() { echo "SKIPPED  $1: $2"; }

# same NAME COMMITTED FRESH: compares two files byte for byte.
same() {
  if cmp -s "$2" "$3"; then
    echo "same     $1"
  else
    echo "DIFFERS  $1: $2 (diff against a fresh run below)"
    diff <(head -c 200000 "$2") <(head -c 200000 "$3") | head -20
    failed=1
  fi
}

# run NAME COMMAND...: runs a generator, quietly unless it fails.
run() {
  local name="$1"
  shift
  if ! "$@" >"$tmp/$name.log" 2>&1; then
    echo "FAILED   $name: $*"
    tail -20 "$tmp/$name.log"
    failed=1
    return 1
  fi
}

have_models() { [[ -f "$models/$qwen" && -f "$models/$gemma" ]]; }

if ! "$py" -c 'import numpy, scipy, gguf' 2>/dev/null; then
  echo "error: $py lacks numpy, scipy or gguf: pip install 'gguf==0.19.*' numpy scipy" >&2
  exit 2
fi

# --- gguf-py, numpy and scipy: always offline
run quant_golden "$py" "$root/tools/golden/gen_quant_golden.py" "$tmp/quant_golden.json" &&
  same quant_golden "$root/crates/quant/tests/golden/quant_golden.json" "$tmp/quant_golden.json"

run metrics_golden "$py" "$root/tools/golden/gen_metrics_golden.py" "$tmp/metrics.json" &&
  same metrics_golden "$root/crates/metrics/tests/golden/metrics_independent.json" "$tmp/metrics.json"

mkdir -p "$tmp/gguf" &&
  run gguf_golden bash -c "cd '$tmp/gguf' && '$py' '$root/crates/gguf/tests/data/make_golden.py'" &&
  same gguf_golden "$root/crates/gguf/tests/data/golden.gguf" "$tmp/gguf/golden.gguf"

fixtures="${PARALLAX_SHARED:-$root/../shared}/fixtures/apr"
if [[ -f "$fixtures/tiny-qwen2.gguf" ]]; then
  run apr_golden bash -c "'$py' '$root/tools/golden/apr_golden.py' '$fixtures' > '$tmp/apr.json'" &&
    same apr_golden "$root/crates/apr/tests/data/tiny-qwen2.golden.json" "$tmp/apr.json"
else
  skip apr_golden "$fixtures/tiny-qwen2.gguf is missing (../shared beside the repository)"
fi

# The llama/qwen3 rewrites of the 0.5B that the llama.cpp goldens below also cover: made into
# the model cache (or kept, when this generator made them) by gguf-py.
rewrites=(qwen2.5-0.5b-as-llama qwen2.5-0.5b-as-llama-nobias qwen2.5-0.5b-as-qwen3 qwen2.5-0.5b-deep44)
if have_models; then
  run arch_rewrites "$py" "$root/tools/golden/make_arch_rewrites.py" --if-stale --models-dir "$models"
fi

if have_models; then
  run model_rows bash -c "'$py' '$root/tools/golden/gen_model_rows.py' '$models' > '$tmp/rows.json'" &&
    same model_rows "$root/tests/golden/real-model-rows.json" "$tmp/rows.json"
else
  skip model_rows "the shared models are not in $models (../shared/models/fetch.sh)"
fi

# --- llama.cpp (llama-cpp-python): the committed goldens record the version they were made with
if ! "$py" -c 'import llama_cpp' 2>/dev/null; then
  for g in quant_ggml token_ids llamacpp_logits llamacpp_sites llamacpp_variants; do
    skip "$g" "llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)"
  done
else
  run quant_ggml "$py" "$root/tools/golden/quant_ggml_ctypes.py" "$tmp/quant_ggml.json" &&
    same quant_ggml "$root/crates/quant/tests/golden/quant_ggml.json" "$tmp/quant_ggml.json"
  if have_models; then
    run token_ids "$py" "$root/tools/golden/gen_token_ids.py" --models "$models" --out "$tmp/ids.json" &&
      same token_ids "$root/crates/tokenizer/tests/golden/token_ids.json" "$tmp/ids.json"
    mkdir -p "$tmp/ref"
    ref="$root/tests/golden/reference"
    if run llamacpp_logits "$py" "$root/tools/reference/llamacpp_logits.py" --models-dir "$models" --out-dir "$tmp/ref"; then
      for m in "${qwen%.gguf}" "${gemma%.gguf}" "${rewrites[@]}"; do
        same "llamacpp_logits $m" "$ref/llamacpp-$m.last-logits.f32" "$tmp/ref/llamacpp-$m.last-logits.f32"
      done
      # The variants read the fresh default-setting logits from the same folder.
      if run llamacpp_variants "$py" "$root/tools/reference/llamacpp_variants.py" --models-dir "$models" --out-dir "$tmp/ref"; then
        for f in "$tmp/ref"/llamacpp-variants-*; do
          same "llamacpp_variants $(basename "$f")" "$ref/$(basename "$f")" "$f"
        done
      fi
    fi
    if run llamacpp_sites "$py" "$root/tools/reference/llamacpp_site_stats.py" --models-dir "$models" --out-dir "$tmp/ref"; then
      for m in "${qwen%.gguf}" "${gemma%.gguf}" "${rewrites[@]}"; do
        same "llamacpp_sites $m" "$ref/llamacpp-sites-$m.json" "$tmp/ref/llamacpp-sites-$m.json"
      done
    fi
  else
    for g in token_ids llamacpp_logits llamacpp_sites llamacpp_variants; do
      skip "$g" "the shared models are not in $models (../shared/models/fetch.sh)"
    done
  fi
fi

# Never rerun here: the F32 base and eight rungs of the ladder (~4.5 GB, made by llama.cpp's
# quantizer), ~1 h of llama.cpp on 2 cores, and timings that differ on every run.
skip ladder_kld "rerun by ./dev ladder-kld (tools/golden/ladder_kld.py --out elsewhere; compare all but timing)"

exit "$failed"
