#!/usr/bin/env python3
"""Pruned representation: bytes of each mask coder, and bits per surviving weight.

Encodes one image with a preset (``fast`` by default) as ``representation="pruned"`` at several
sparsities, with global and layer-wise magnitude pruning, plus the dense file for reference.
For every file it reports the PSNR (of the decoder's output), the file size, the MASK chunk
split by coder, what each coder alone would cost for the same masks (sum over the masks of its
record: the coder's body; ``-`` where it cannot code one of them), and the TDAT chunk in bits
per coded weight.  Encoding is deterministic for a given machine and thread count.

    OMP_NUM_THREADS=1 python benchmarks/masks.py ../shared/data/kodak/kodim01.png --scale 2
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from PIL import Image

import nfcodec
from nfcodec.bitstream import read_container
from nfcodec.bitstream.masks import MASK_CODERS, decode_masks, mask_coder_sizes, mask_report
from nfcodec.decoder import open_stream


def measure(data: bytes) -> dict:
    """Chunk sizes, per-coder mask costs and coded weights of an encoded file."""
    chunks = {c.ctype: c.data for c in read_container(data).chunks}
    shapes = [tuple(p.shape) for p in open_stream(data).model.parameters()]
    out = {"tdat_bytes": len(chunks[b"TDAT"]), "mask_bytes": len(chunks.get(b"MASK", b"")),
           "weights": sum(int(np.prod(s)) for s in shapes)}
    coded = out["weights"]
    if b"MASK" in chunks:
        masks = decode_masks(chunks[b"MASK"])
        per_coder = {name: 0 for name in MASK_CODERS}
        for m in masks:
            shape = shapes[m.index]
            sizes = mask_coder_sizes(m.flat.reshape(shape[0], -1) if len(shape) >= 2 else m.flat)
            for name, size in sizes.items():
                per_coder[name] = None if per_coder[name] is None or size is None else per_coder[name] + size
            coded -= m.flat.size - int(np.count_nonzero(m.flat))
        out["per_coder"] = per_coder
        out["chosen"] = [(r["index"], r["coder"], r["bytes"]) for r in mask_report(chunks[b"MASK"])]
        out["masked_weights"] = sum(m.flat.size for m in masks)
        out["kept_in_masked"] = sum(int(np.count_nonzero(m.flat)) for m in masks)
    out["coded_weights"] = coded
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--scale", type=int, default=1, help="downscale the image by this factor (speed)")
    ap.add_argument("--sparsities", default="0.3,0.5,0.7,0.9")
    ap.add_argument("--scopes", default="global,layer")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's fit steps")
    ap.add_argument("--dense-widths", default="", help="extra dense files at these widths (rate-distortion reference)")
    ap.add_argument("--jsonl", default=None, help="also write one JSON row per file here")
    args = ap.parse_args()

    img = Image.open(args.image).convert("RGB")
    if args.scale > 1:
        img = img.resize((img.width // args.scale, img.height // args.scale), Image.BICUBIC)
    image = np.asarray(img)
    runs = [("dense", "-", 0.0, None)] + [("pruned", scope, float(s), None) for scope in args.scopes.split(",")
                                          for s in args.sparsities.split(",") if s]
    runs += [("dense", f"width {w}", 0.0, int(w)) for w in args.dense_widths.split(",") if w]
    names = list(MASK_CODERS)
    print(f"{args.image} at {image.shape[1]}x{image.shape[0]}, preset {args.preset}"
          + (f", {args.steps} steps" if args.steps else ""))
    print("| representation | scope | sparsity | PSNR (dB) | file bytes | bpp | MASK bytes | "
          + " | ".join(f"{n} only" for n in names) + " | coders chosen | TDAT bytes | coded weights | bits/coded weight |")
    print("|" + "---|" * (11 + len(names)))
    rows = []
    for rep, scope, sparsity, width in runs:
        t0 = time.perf_counter()
        knobs = dict(representation=rep, steps=args.steps, width=width)
        if rep == "pruned":
            knobs.update(sparsity=sparsity, prune_scope=scope)
        r = nfcodec.encode(image, preset=args.preset, **knobs)
        m = measure(r.data)
        row = dict(representation=rep, scope=scope, sparsity=sparsity, psnr=r.psnr, bytes=len(r.data), bpp=r.bpp,
                   seconds=time.perf_counter() - t0, **m)
        rows.append(row)
        per = m.get("per_coder", {})
        chosen = ", ".join(sorted({c for _, c, _ in m.get("chosen", [])})) or "-"
        cells = [("-" if per.get(n) is None else str(per[n])) for n in names]
        print(f"| {rep} | {scope} | {sparsity:g} | {r.psnr:.2f} | {len(r.data)} | {r.bpp:.4f} | {m['mask_bytes']} | "
              + " | ".join(cells) + f" | {chosen} | {m['tdat_bytes']} | {m['coded_weights']} | "
              f"{8 * m['tdat_bytes'] / m['coded_weights']:.2f} |", flush=True)
    if args.jsonl:
        with open(args.jsonl, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
