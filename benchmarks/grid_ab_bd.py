"""BD-rates of a grid_ab.py "B" configuration next to the Kodak record it was paired with (issue 13).

    python benchmarks/grid_ab_bd.py --csv benchmarks/results/grid/kodak-r8-all/results.csv \
        --knobs grid_lr=0.1 --targets 0.25 0.5 1.0

For every image that has a B row (``benchmarks/results/grid/ab.jsonl``, the given ``knobs``) at each
of the ``targets``, the A curve is the record's nfc-grid rows at the same ``bpp=`` settings and the
anchors are the record's JPEG / WebP / AVIF rows of that image.  Printed per image and as the mean
over images (akima, as ``nfc eval``): BD-rate of A and of B against each anchor, and of B against A.
Only rates both curves measured enter, so the figures cover ``targets``, not the record's four rates.
A curve whose quality does not rise with its rate has no BD-rate (nan) and the means skip it, as
``nfc eval``'s do.

Also printed: B's PSNR at equal rate, i.e. minus the record's nfc-grid curve of the image (all its
``bpp=`` rows, PSNR linear in log bpp between them, the end segments extended) at B's own bpp, per
target and as the mean over every B row found; this needs no full set of targets.  ``--b-set`` picks
B rows run with grid_ab.py's ``--b-set`` (the same items, in order); without it, rows with none.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from nfcodec.bdrate import bd_rate
from nfcodec.errors import ConfigError

AB = os.path.join(os.path.dirname(__file__), "results", "grid", "ab.jsonl")


class Row(NamedTuple):
    """One row of an nfc eval results.csv, as the grid benchmarks read it."""
    bpp: float
    psnr: float
    setting: str
    encode_s: float


def read_record(path: str) -> dict[tuple[str, str], list[Row]]:
    """An nfc eval results.csv as {(image file name, codec): [Row, ...]}, rows in file order."""
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in csv.DictReader(open(path)):
        out[(os.path.basename(r["file"]), r["codec"])].append(
            Row(float(r["bpp"]), float(r["psnr"]), r["setting"], float(r["encode_s"])))
    return out


def grid_curve(rows: list[Row]) -> list[tuple[float, float]]:
    """The (bpp, psnr) points of a record's ``bpp=`` rows (one image's nfc-grid rows), by rate."""
    return sorted(p[:2] for p in rows if p.setting.startswith("bpp="))


def bd_percent(anchor: list, test: list) -> float:
    """BD-rate in percent; NaN for a curve whose quality does not rise with rate (as nfc eval skips it)."""
    try:
        return bd_rate(*zip(*anchor), *zip(*test)).value
    except ConfigError:
        return float("nan")


def record_psnr_at(curve: list[tuple[float, float]], bpp: float) -> float:
    """The PSNR of a record curve [(bpp, psnr)] at ``bpp``: linear in log bpp, the end segments extended."""
    x = np.log([r for r, _ in curve])
    y = np.array([q for _, q in curve])
    i = int(np.clip(np.searchsorted(x, np.log(bpp)) - 1, 0, len(x) - 2))
    return float(y[i] + (y[i + 1] - y[i]) * (np.log(bpp) - x[i]) / (x[i + 1] - x[i]))


def equal_rate(record: dict, b: dict, targets: list[float]) -> None:
    """Print B's PSNR minus the record's nfc-grid curve at B's bpp, per target and over all B rows."""
    by_target = defaultdict(list)
    for image, rows in sorted(b.items()):
        curve = grid_curve(record[(image, "nfc-grid")])
        if len(curve) < 2:
            continue
        for target, (bpp, psnr) in sorted(rows.items()):
            by_target[target].append(psnr - record_psnr_at(curve, bpp))
    if not by_target:
        return
    every = [d for t in by_target.values() for d in t]
    print("equal rate, B minus the record's curve: " + ", ".join(
        f"{t:g} bpp {np.mean(v):+.3f} dB ({len(v)} images: {' '.join(f'{d:+.2f}' for d in v)})"
        for t, v in sorted(by_target.items())) + f"; all {len(every)} rows {np.mean(every):+.3f} dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True, help="the nfc eval results.csv of the A rows and the anchors")
    ap.add_argument("--knobs", required=True, help="the B rows' knobs, as grid_ab.py recorded them")
    ap.add_argument("--targets", type=float, nargs="+", required=True)
    ap.add_argument("--anchors", nargs="+", default=["jpeg", "webp", "avif"])
    ap.add_argument("--b-set", action="append", default=[], metavar="MODULE.NAME=VALUE",
                    help="only B rows with this grid_ab.py --b-set (repeat it, in the same order)")
    args = ap.parse_args()
    record = read_record(args.csv)
    b: dict[str, dict[float, tuple[float, float]]] = defaultdict(dict)
    for line in open(AB):
        row = json.loads(line)
        if (row.get("config") == "B" and row.get("knobs") == args.knobs and row["target"] in args.targets
                and row.get("b_set", []) == args.b_set):
            b[row["image"]][row["target"]] = (row["bpp"], row["psnr"])   # the last row of a pair wins
    equal_rate(record, b, args.targets)
    table = defaultdict(list)
    for image in sorted(b):
        if len(b[image]) < len(args.targets):
            continue
        a = sorted(p[:2] for p in record[(image, "nfc-grid")]
                   if p.setting.startswith("bpp=") and float(p.setting[4:]) in args.targets)
        if len(a) < len(args.targets):
            continue
        bb = sorted(b[image].values())
        cells = []
        for anchor in args.anchors:
            pts = sorted(p[:2] for p in record[(image, anchor)])
            for name, curve in (("A", a), ("B", bb)):
                v = bd_percent(pts, curve)
                table[f"{name} vs {anchor}"].append(v)
                cells.append(f"{name} vs {anchor} {v:+.1f}%")
        v = bd_percent(a, bb)
        table["B vs A"].append(v)
        print(f"{image}: " + ", ".join(cells) + f", B vs A {v:+.1f}%")
    if not table:
        raise SystemExit("no image has B rows at every target and A rows in the record")
    n = len(table["B vs A"])
    print(f"mean over {n} images (targets {' '.join(f'{t:g}' for t in args.targets)}): "
          + ", ".join(f"{k} {np.nanmean(v):+.1f}% ({np.count_nonzero(~np.isnan(v))} files)" for k, v in table.items()))


if __name__ == "__main__":
    main()
