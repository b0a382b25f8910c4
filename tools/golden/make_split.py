#!/usr/bin/env python3
"""Write a GGUF as a split GGUF with gguf-py's own splitter (GGUFWriter's split_max_tensors,
the writer behind convert_hf_to_gguf.py --split-max-tensors): NAME-00001-of-0000N.gguf …, each
shard a GGUF of its own with split.no / split.count / split.tensors.count, the metadata on the
first. Tensor bytes are copied as they are (no requantization).

Parallax's test (crates/cli/tests/cli.rs, `a_model_split_by_gguf_py_runs_as_the_whole_file`) opens the split shared
Qwen2.5-0.5B as one model and expects the whole file's report. Output goes to the model cache,
never the repository; a complete set of shards is not written again.

    python3 tools/golden/make_split.py SRC.gguf OUT_DIR/NAME.gguf --max-tensors 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gguf import GGUFReader, GGUFValueType, GGUFWriter


def field_value(f):
    """A reader field as the writer's add_key_value takes it."""
    kind = f.types[0]
    text = lambda i: bytes(f.parts[i]).decode("utf-8", errors="surrogateescape")  # noqa: E731
    if kind == GGUFValueType.ARRAY:
        sub = f.types[-1]
        if sub == GGUFValueType.STRING:
            return [text(i) for i in f.data], kind, sub
        return [f.parts[i].tolist()[0] for i in f.data], kind, sub
    if kind == GGUFValueType.STRING:
        return text(f.data[0]), kind, None
    return f.parts[f.data[0]].tolist()[0], kind, None


def shard_names(out: Path, n: int) -> list[Path]:
    return [out.with_name(f"{out.stem}-{k:05d}-of-{n:05d}.gguf") for k in range(1, n + 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out", help="OUT_DIR/NAME.gguf: shards are NAME-0000K-of-0000N.gguf beside it")
    ap.add_argument("--max-tensors", type=int, default=100)
    args = ap.parse_args()
    reader = GGUFReader(args.src)
    out = Path(args.out)
    n = -(-len(reader.tensors) // args.max_tensors)
    if n > 1 and all(p.is_file() for p in shard_names(out, n)):
        print("\n".join(str(p) for p in shard_names(out, n)))
        return 0
    arch = field_value(reader.fields["general.architecture"])[0]
    # Written under temporary names, renamed when complete: a partial set never looks whole.
    tmp = out.with_name(out.stem + ".partial.gguf")
    writer = GGUFWriter(str(tmp), arch, split_max_tensors=args.max_tensors)
    for name, f in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value, kind, sub = field_value(f)
        writer.add_key_value(name, value, kind, sub_type=sub)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for written, final in zip(shard_names(tmp, n), shard_names(out, n)):
        written.rename(final)
    print("\n".join(str(p) for p in shard_names(out, n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
