"""A WASI runner on wasmtime (the `wasmtime` package from PyPI) for `cargo test --target
wasm32-wasip1`: the quant kernels built with relaxed SIMD are tested here — in a runtime that
ships relaxed SIMD, with its own code generator — rather than under node 20, which runs it only
behind `--experimental-wasm-relaxed-simd` and there computes `i32x4.relaxed_dot_i8x16_i7x16_add_s`
wrongly (it doubles the dot and drops the accumulator; Chromium 156 and wasmtime compute it
right, and so does node's `i16x8.relaxed_dot_i8x16_i7x16_s`). The kernels use both; the page
loads its relaxed build only where a probe of both answers right (parallax_web's
RELAXED_SIMD_PROBE), which node 20 fails.
Usage: python3 tools/wasi-run.py MODULE.wasm [ARGS...]; exits with the module's status."""
import os
import sys

import wasmtime


def main() -> int:
    module_path, *args = sys.argv[1:]
    config = wasmtime.Config()
    config.wasm_simd = True
    # The host's own lowering (x86: `pmaddubsw`), as a browser's: a kernel that fed the dot a
    # weight byte outside [0, 127] would get the host's answer, not the scalar code's.
    config.wasm_relaxed_simd = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [module_path, *args]
    wasi.env = list(os.environ.items())
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir("/", "/")
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module.from_file(engine, module_path)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
