#!/usr/bin/env python3
"""Video latent grid: what storing a level as differences along time (ARCH.tdelta) buys.

Encodes a clip with ``--arch grid-video`` (or reads an existing ``.nfc``), then codes every
level's latent volume both ways, as planes and as plane 0 plus the differences of consecutive
planes, with every entropy model offered but the context network (``arm`` needs one fitted to
the levels), and prints the bytes per level and the levels the encoder marked.

    python benchmarks/grid_video_tdelta.py ../shared/data/video/carphone_pristine.mp4 --frames 0:30 \
        --preset fast --bpp 0.2 [--out c.nfc]
    python benchmarks/grid_video_tdelta.py c.nfc
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import nfcodec
from nfcodec.archs.grid_video import delta_planes, stored_latents
from nfcodec.bitstream import decode_tensors, read_container
from nfcodec.grid_arm import arm_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="a clip to encode, or an .nfc file of arch grid-video")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--bpp", type=float, default=0.2)
    ap.add_argument("--out", default=None, help="keep the encoded file here")
    args = ap.parse_args()
    row: dict = {}
    if args.source.endswith(".nfc"):
        data = open(args.source, "rb").read()
    else:
        t0 = time.perf_counter()
        r = nfcodec.encode(args.source, arch="grid-video", preset=args.preset, bpp=args.bpp, frames=args.frames)
        data = r.data
        row.update(encode_s=round(time.perf_counter() - t0, 1), bpp=round(r.bpp, 4), psnr=round(r.psnr, 2))
        if args.out:
            open(args.out, "wb").write(data)
    info = nfcodec.probe(data)
    rec = info.arch
    ts = decode_tensors(next(c.data for c in read_container(data).chunks if c.ctype == b"TDAT"))
    row.update(source=args.source, frames=args.frames, bytes=len(data), tdelta=rec.tdelta, levels=[])
    for l in range(rec.levels):
        q = stored_latents(rec, l, np.asarray(ts[l].symbols, np.int64).reshape(rec.latent_sizes[l])).astype(np.int32)
        if q.shape[0] < 2:
            continue
        row["levels"].append({"level": l, "shape": list(q.shape), "planes_bytes": arm_bytes([q], None),
                              "differences_bytes": arm_bytes([delta_planes(q)], None),
                              "stored_as": "differences" if (rec.tdelta >> l) & 1 else "planes"})
    print(json.dumps(row))


if __name__ == "__main__":
    main()
