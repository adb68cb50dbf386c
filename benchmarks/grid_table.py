"""Tables of the latent grid against the classical codecs from an `nfc eval` results.csv (issue 13).

    python benchmarks/grid_table.py benchmarks/results/grid/kodak/results.csv

For every nfc-grid row: bpp, PSNR, encode and decode seconds, and the PSNR each classical codec
reaches at the same bpp (linear in log bpp between its two nearest settings; '-' outside its
range), then the mean PSNR difference grid - codec over the rows where both exist.
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict


def _at(points: list[tuple[float, float]], bpp: float) -> float | None:
    pts = sorted(points)
    for (b0, p0), (b1, p1) in zip(pts, pts[1:]):
        if b0 <= bpp <= b1:
            t = (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return p0 + t * (p1 - p0)
    return None


def main(path: str) -> None:
    rows = list(csv.DictReader(open(path)))
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        curves[(r["file"], r["codec"])].append((float(r["bpp"]), float(r["psnr"])))
    others = sorted({r["codec"] for r in rows} - {"nfc-grid"})
    print("| image | target | bpp | PSNR (dB) | encode (s) | decode (s) | " + " | ".join(f"{c} at that bpp" for c in others) + " |")
    print("|" + "---|" * (6 + len(others)))
    diffs: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["codec"] != "nfc-grid":
            continue
        bpp, psnr = float(r["bpp"]), float(r["psnr"])
        cells = []
        for c in others:
            v = _at(curves[(r["file"], c)], bpp)
            cells.append("-" if v is None else f"{v:.2f}")
            if v is not None:
                diffs[c].append(psnr - v)
        name = r["file"].rsplit("/", 1)[-1]
        print(f"| {name} | {r['setting']} | {bpp:.4f} | {psnr:.2f} | {float(r['encode_s']):.0f} | "
              f"{float(r['decode_s']):.3f} | " + " | ".join(cells) + " |")
    print()
    for c in others:
        d = diffs[c]
        if d:
            print(f"- grid - {c}: mean {sum(d) / len(d):+.2f} dB over {len(d)} points")


if __name__ == "__main__":
    main(sys.argv[1])
