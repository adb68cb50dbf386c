#!/usr/bin/env python3
"""Calibration of the default video size rule (``nfcodec.ratecontrol.clip_bpp``) against x264.

For clips of several sizes (frames x width x height), x264 at its default CRF 23 (preset medium,
yuv420p, through PyAV: ``nfcodec.baselines``) is run and its bpp and PSNR printed beside the
rule's target for the default preset.

    python benchmarks/clip_rule.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nfcodec.baselines import get_baseline
from nfcodec.ratecontrol import clip_bpp
from nfcodec.video_io import read_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
CLIPS = [("carphone_pristine.mp4", "0:10", None), ("carphone_pristine.mp4", "0:30", None),
         ("carphone_pristine.mp4", "0:120", None), ("bigbuckbunny.mp4", "0:30", (320, 180)),
         ("bigbuckbunny.mp4", "0:132", (320, 180)), ("bigbuckbunny.mp4", "0:10", (640, 360)),
         ("bigbuckbunny.mp4", "0:30", None)]


def main() -> None:
    x264 = get_baseline("x264")
    print("| clip | frames | size | pixels | x264 CRF 23 bpp | x264 PSNR | rule (default preset) |")
    print("|---|---|---|---|---|---|---|")
    for name, frames, size in CLIPS:
        v = read_video(DATA / name, frames=frames, resize=size)
        t, h, w = v.frames.shape[:3]
        data = x264.encode(v, 23)
        mse = np.mean((x264.decode(data).astype(np.float64) - v.frames) ** 2)
        px = t * h * w
        print(f"| {name} | {frames} | {w}x{h} | {px} | {8 * len(data) / px:.4f} | "
              f"{10 * np.log10(255**2 / mse):.2f} | {clip_bpp(px, 'default'):.4f} |")


if __name__ == "__main__":
    main()
