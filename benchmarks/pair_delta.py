#!/usr/bin/env python3
"""Per file and setting, the PSNR / bpp of two codecs run at the same settings (e.g. nfc-pruned
against nfc-dense at the same ``--bpp`` target), from an ``nfc eval`` results.csv.

    python benchmarks/pair_delta.py benchmarks/results/kodak12-rd/results.csv nfc-dense nfc-pruned
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from nfcodec.evaluate import read_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("a", help="reference codec")
    ap.add_argument("b", help="codec compared with it")
    args = ap.parse_args()
    rows = {(r.file, r.codec, r.setting): r for r in read_rows(args.csv)}
    settings = sorted({s for (_, c, s) in rows if c == args.b} & {s for (_, c, s) in rows if c == args.a})
    files = sorted({f for (f, c, _) in rows if c == args.b})
    print(f"| image | " + " | ".join(f"{s}: {args.a} / {args.b} (dB)" for s in settings) + " |")
    print("|---|" + "---:|" * len(settings))
    deltas: dict[str, list[float]] = {s: [] for s in settings}
    for f in files:
        cells = []
        for s in settings:
            a, b = rows.get((f, args.a, s)), rows.get((f, args.b, s))
            if a is None or b is None:
                cells.append("")
                continue
            deltas[s].append(b.psnr - a.psnr)
            cells.append(f"{a.psnr:.2f} / {b.psnr:.2f} ({b.psnr - a.psnr:+.2f})")
        print(f"| {os.path.basename(f)} | " + " | ".join(cells) + " |")
    print("| **mean delta** | " + " | ".join(
        f"**{np.mean(d):+.2f}** ({sum(x >= 0 for x in d)} of {len(d)} >= 0)" if d else "" for d in deltas.values())
        + " |")


if __name__ == "__main__":
    main()
