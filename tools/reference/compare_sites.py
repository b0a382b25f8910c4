#!/usr/bin/env python3
"""Parallax's per-site statistics against llama.cpp's, layer by layer.

Reads a Parallax report (`parallax run --json`, schema parallax.report/1, scope all) and the
golden written by llamacpp_site_stats.py, and prints per layer and per Parallax path (q8, f32):

  * the worst relative difference of the all-token sample std over the layer's sites
    (|std_parallax − std_llama| / std_llama) and the site where it occurs;
  * the worst relative difference of the last token's std (from the report's per-token stats);
  * for the golden's row layers (0 and 1): the cosine and max |difference| of the last token's
    rows, when the Parallax rows are given with `--rows DIR` (raw little-endian f32 files
    `L<layer>-<site>-<path>.f32`, all tokens × width, as a debugging build dumps them; the report
    itself carries statistics only). Without `--rows`, the row columns are left out.

`--sites` prints every site of the listed layers instead of the worst one.

Usage:
  python3 tools/reference/compare_sites.py REPORT.json tests/golden/reference/llamacpp-sites-M.json \
      [--rows DIR] [--sites 0,1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


def row_from_hex(h: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(h), dtype="<f4")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report")
    ap.add_argument("golden")
    ap.add_argument("--rows", help="folder of Parallax row dumps L<i>-<site>-<path>.f32")
    ap.add_argument("--sites", default="", help="comma-separated layers to print site by site")
    args = ap.parse_args()
    rep = json.loads(Path(args.report).read_text())
    gold = json.loads(Path(args.golden).read_text())
    if rep["prompt"]["tokens"] != gold["tokens"]:
        raise SystemExit(f"token mismatch: report {rep['prompt']['tokens']} vs golden {gold['tokens']}")
    if rep.get("scope", "all") != "all":
        raise SystemExit("the report must use --scope all")
    paths = rep["paths"]
    verbose = {int(x) for x in args.sites.split(",") if x}
    rows_dir = Path(args.rows) if args.rows else None

    def row_cmp(il: int, site: str, path: str, g: dict):
        if rows_dir is None or "last_row_f32le_hex" not in g:
            return None
        f = rows_dir / f"L{il}-{site}-{path}.f32"
        if not f.exists():
            return None
        ours = np.fromfile(f, dtype="<f4")[-g["width"]:]
        theirs = row_from_hex(g["last_row_f32le_hex"])
        return cosine(ours, theirs), float(np.abs(ours - theirs).max())

    print(f"{gold['model_file']}: Parallax paths {paths} vs llama.cpp {gold['llama_cpp_python_version']} "
          f"(skipped sites: {', '.join(gold.get('skipped_sites', {})) or 'none'})")
    hdr = "layer " + " | ".join(f"{p}: worst std rel (site)          last-tok std rel  row 1-cos_min  row maxabs"
                                 for p in paths)
    print(hdr)
    for g_layer, r_layer, t_layer in zip(gold["layers"], rep["layers"], rep["per_token"]["layers"]):
        il = g_layer["index"]
        cells = []
        for p in paths:
            worst, worst_site, worst_last = 0.0, "", 0.0
            cos_min, maxabs = None, None
            for site, g in g_layer["sites"].items():
                r = r_layer["sites"][site][p]
                d = rel(r["std"], g["all"]["std"])
                dl = rel(t_layer[site][p][-1]["std"], g["last"]["std"])
                if d > worst:
                    worst, worst_site = d, site
                worst_last = max(worst_last, dl)
                rc = row_cmp(il, site, p, g)
                if rc:
                    cos_min = rc[0] if cos_min is None else min(cos_min, rc[0])
                    maxabs = rc[1] if maxabs is None else max(maxabs, rc[1])
                if il in verbose:
                    extra = f" row 1-cos {1 - rc[0]:.2e} maxabs {rc[1]:.3g}" if rc else ""
                    print(f"   L{il} {p:>3} {site:<15} std {r['std']:.7g} vs {g['all']['std']:.7g} "
                          f"rel {d:.2e}  last-tok rel {dl:.2e}  mean {r['mean']:.6g} vs {g['all']['mean']:.6g}{extra}")
            row = f"{1 - cos_min:10.2e}  {maxabs:10.3g}" if cos_min is not None else f"{'-':>10}  {'-':>10}"
            cells.append(f"{p}: {worst:9.2e} ({worst_site:<14})        {worst_last:9.2e}   {row}")
        print(f"L{il:<4} " + " | ".join(cells))
    # After the last layer.
    for p in paths:
        d = rel(rep["final_norm"][p]["std"], gold["final_norm"]["all"]["std"])
        print(f"final_norm {p}: std rel {d:.2e}")


if __name__ == "__main__":
    main()
