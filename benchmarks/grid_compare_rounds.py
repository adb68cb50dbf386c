"""Per-rate table of a Kodak nfc-grid record against the eighth round's record and the tenth round's
grid_ab.py rows (issue 13, twelfth round), with each file's gap to WebP at its bpp.

    python benchmarks/grid_compare_rounds.py benchmarks/results/grid/kodak-r12/results.csv

Columns: the eighth round's Kodak record (benchmarks/results/grid/kodak-r8-all), the tenth round's
default-preset files at grid_lr 0.1 (benchmarks/results/grid/ab.jsonl, knobs "grid_lr=0.1"), the given
record, its difference to the tenth round and to WebP (the eighth round's WebP rows of the image,
interpolated in log bpp).  Then the mean differences per rate, and BD-rates (akima) of the given
record against WebP and AVIF and against the eighth round's grid rows, per image.
"""
from __future__ import annotations

import argparse
import collections
import json
import os

import numpy as np

from grid_ab_bd import bd_percent, read_record

R = os.path.join(os.path.dirname(__file__), "results", "grid")


def _bd(anchor: list, test: list) -> float:
    """grid_ab_bd's BD-rate (NaN for a curve that does not rise) of read_record rows."""
    return bd_percent([p[:2] for p in sorted(anchor)], [p[:2] for p in sorted(test)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="the new record's nfc eval results.csv")
    args = ap.parse_args()
    new, r8 = read_record(args.csv), read_record(os.path.join(R, "kodak-r8-all", "results.csv"))
    tenth = {}
    for line in open(os.path.join(R, "ab.jsonl")):
        row = json.loads(line)
        if row.get("knobs") == "grid_lr=0.1":
            tenth[(row["image"], row["target"])] = (row["bpp"], row["psnr"])
    images = sorted({k[0] for k in new if k[1] == "nfc-grid"})
    print("| image | target | eighth round | tenth round (lr 0.1) | this record | - tenth | - WebP |")
    print("|---|---|---|---|---|---:|---:|")
    diff, gap = collections.defaultdict(list), collections.defaultdict(list)
    for im in images:
        webp = sorted(r8[(im, "webp")])
        for b, p, setting, _ in sorted(new[(im, "nfc-grid")]):
            t = float(setting.split("=")[1])
            b8, p8 = next((x[:2] for x in r8[(im, "nfc-grid")] if x[2] == setting), (float("nan"),) * 2)
            b10, p10 = tenth.get((im, t), (float("nan"), float("nan")))
            w = np.interp(np.log(b), np.log([x[0] for x in webp]), [x[1] for x in webp])
            diff[t].append(p - p10)
            gap[t].append(p - w)
            print(f"| {im[:-4]} | {t} | {p8:.2f} dB at {b8:.3f} | {p10:.2f} at {b10:.3f} | {p:.2f} at {b:.3f} | "
                  f"{p - p10:+.2f} | {p - w:+.2f} |")
    for t in sorted(diff):
        print(f"{t} bpp: mean - tenth {np.nanmean(diff[t]):+.2f} dB, mean - WebP {np.mean(gap[t]):+.2f} dB")
    for im in images:
        g = new[(im, "nfc-grid")]
        print(f"{im}: vs webp {_bd(new[(im, 'webp')], g):+.1f}%, vs avif {_bd(new[(im, 'avif')], g):+.1f}%; "
              f"eighth round vs webp {_bd(r8[(im, 'webp')], r8[(im, 'nfc-grid')]):+.1f}%; "
              f"this record vs the eighth round's grid {_bd(r8[(im, 'nfc-grid')], g):+.1f}%")


if __name__ == "__main__":
    main()
