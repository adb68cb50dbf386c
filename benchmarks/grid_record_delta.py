"""Each nfc-grid row of a (possibly partial) Kodak record at equal rate against an earlier record
(issue 13, fifteenth session).

    python benchmarks/grid_record_delta.py benchmarks/results/grid/kodak-r15/results.csv \
        benchmarks/results/grid/kodak-r12/results.csv

For every ``bpp=`` nfc-grid row of the new record: its PSNR minus the old record's nfc-grid curve of
the same image at the new row's bpp (grid_ab_bd.record_psnr_at: linear in log bpp, the end segments
extended), its bits against the old row at the same setting, and the encode times of both.  Then the
means per setting, the new rows' PSNR against each anchor's curve (WebP / AVIF / JPEG of the new
record) at the same bpp, and the BD-rates of both records' curves against the new record's WebP / AVIF / JPEG
rows on the images the new record has at every one of its rates.  A record stopped part-way (nfc eval appends each row as it is measured) is
compared on the rows it has.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np

from grid_ab_bd import Row, bd_percent, grid_curve, read_record, record_psnr_at

ANCHORS = ("webp", "avif", "jpeg")


def _grid_rows(record: dict[tuple[str, str], list[Row]]) -> dict[tuple[str, str], Row]:
    """A record's ``bpp=`` nfc-grid rows by (image, setting); a repeated row: the last wins."""
    return {(image, p.setting): p for (image, codec), rows in record.items() if codec == "nfc-grid"
            for p in rows if p.setting.startswith("bpp=")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", help="results.csv of the new record")
    ap.add_argument("old", help="results.csv of the record to compare with")
    ap.add_argument("--fill-old", action="store_true",
                    help="also a provisional BD-rate of the new record with the rows it lacks taken from the old one")
    args = ap.parse_args()
    new_record, old_record = read_record(args.new), read_record(args.old)
    new, old = _grid_rows(new_record), _grid_rows(old_record)
    per_setting = collections.defaultdict(list)
    for (image, setting), r in sorted(new.items(), key=lambda kv: (float(kv[0][1][4:]), kv[0][0])):
        curve = grid_curve(old_record.get((image, "nfc-grid"), []))
        if len(curve) < 2 or (image, setting) not in old:
            continue
        o = old[(image, setting)]
        d = r.psnr - record_psnr_at(curve, r.bpp)
        bits = r.bpp / o.bpp - 1
        per_setting[setting].append((d, r.psnr - o.psnr, bits, r.encode_s, o.encode_s))
        print(f"{image} {setting}: {r.psnr:.3f} dB at {r.bpp:.4f} bpp (old {o.psnr:.3f} at {o.bpp:.4f}); "
              f"equal rate {d:+.3f} dB, bits {100 * bits:+.2f}%; encode {r.encode_s:.0f} s (old {o.encode_s:.0f})")
    if not per_setting:
        raise SystemExit("error: no nfc-grid row of the new record has an old curve to compare with")
    every = []
    for setting, v in sorted(per_setting.items(), key=lambda kv: float(kv[0][4:])):
        a = np.array(v)
        every.extend(a[:, 0])
        print(f"{setting}: {len(a)} images, equal rate {a[:, 0].mean():+.3f} dB (min {a[:, 0].min():+.3f}, "
              f"max {a[:, 0].max():+.3f}), PSNR {a[:, 1].mean():+.3f} dB at {100 * a[:, 2].mean():+.2f}% bits, "
              f"encode mean {a[:, 3].mean():.0f} s (old {a[:, 4].mean():.0f} s)")
    print(f"all {len(every)} rows: equal rate {np.mean(every):+.3f} dB")
    settings = {setting for _, setting in new}
    full = sorted({image for image, _ in new if all((image, s) in new and (image, s) in old for s in settings)
                   and all(new_record.get((image, a)) for a in ANCHORS)})
    anchors = {key: sorted(p[:2] for p in rows) for key, rows in new_record.items() if key[1] in ANCHORS}
    for a in ANCHORS:
        gaps = [r.psnr - record_psnr_at(anchors[(image, a)], r.bpp)
                for (image, _), r in new.items() if len(anchors.get((image, a), [])) >= 2]
        if gaps:
            print(f"new rows against {a} at the same bpp (its curve, linear in log bpp): mean {np.mean(gaps):+.2f} dB "
                  f"over {len(gaps)} rows (min {min(gaps):+.2f}, max {max(gaps):+.2f})")
    if len(settings) >= 4:  # a BD-rate needs the four rates of a full record
        for name, record in (("new", new_record), ("old", old_record)):
            bd = {a: [bd_percent(anchors[(image, a)], grid_curve(record[(image, "nfc-grid")]))
                      for image in full] for a in ANCHORS}
            print(f"BD-rate of the {name} record's curves, the {len(full)} images with every rate, against the "
                  "new record's anchors (akima, as nfc eval): " + ", ".join(
                      f"{a} {np.nanmean(v):+.1f}% ({' '.join(f'{x:+.1f}' for x in v)})" for a, v in bd.items()))

    if args.fill_old:
        _provisional(new, old, anchors)


def _provisional(new: dict[tuple[str, str], Row], old: dict[tuple[str, str], Row],
                 anchors: dict[tuple[str, str], list]) -> None:
    """The BD-rates of the new record completed by the old record's rows at the settings it has not
    measured (files the new encoder would code the same way, or not: provisional) and of the old."""
    settings = {s for _, s in old}
    images = sorted({i for i, _ in old if all((i, s) in old for s in settings)
                     and all(len(anchors.get((i, a), [])) >= 2 for a in ANCHORS)})
    filled = {i: [new.get((i, s), old[(i, s)]) for s in settings] for i in images}
    taken = sum((i, s) in new for i in images for s in settings)
    for name, rows in ((f"new, {taken} of {len(images) * len(settings)} rows, + old", filled),
                       ("old", {i: [old[(i, s)] for s in settings] for i in images})):
        bd = {a: [bd_percent(anchors[(i, a)], grid_curve(rows[i])) for i in images] for a in ANCHORS}
        print(f"provisional BD-rate ({name}), {len(images)} images: "
              + ", ".join(f"{a} {np.nanmean(v):+.1f}%" for a, v in bd.items()))


if __name__ == "__main__":
    main()
