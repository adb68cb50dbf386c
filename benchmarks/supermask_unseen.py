#!/usr/bin/env python3
"""Issue 10 acceptance check: a clip no test has seen, ``nfc encode --representation supermask``
with default settings, then ``nfc decode`` to a lossless file: the decoded PSNR must equal the
encoder's report, and ``nfc info --json`` must list SEED, MASK and SCAL and no TDAT.

The clip: Big Buck Bunny frames 100:124 downscaled to 160x90 (the tests use carphone frames and
synthetic clips).  Everything goes through the ``nfc`` command line.

    python benchmarks/supermask_unseen.py [--out /tmp/unseen]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from nfcodec.video_io import read_video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "video" / "bigbuckbunny.mp4"


def nfc(*args: str) -> str:
    exe = str(Path(sys.executable).parent / "nfc")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/nfc-unseen"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src, nfc_file, dec = args.out / "src.mkv", args.out / "clip.nfc", args.out / "decoded.mkv"
    frames = read_video(CLIP, frames="100:124", resize=(160, 90))
    from nfcodec.video_io import write_video

    write_video(src, enumerate(frames.frames), width=160, height=90, fps=frames.fps, overwrite=True)
    report = json.loads(nfc("encode", str(src), "-o", str(nfc_file), "--representation", "supermask", "--json",
                            "--force"))
    nfc("decode", str(nfc_file), "-o", str(dec), "--force", "-q")
    got = read_video(dec).frames.astype(np.float64)
    mse = float(np.mean((got - frames.frames) ** 2))
    decoded_psnr = 10 * math.log10(255**2 / mse)
    info = json.loads(nfc("info", str(nfc_file), "--json"))
    chunks = [c["ctype"] for c in info["chunks"]]
    print(json.dumps({"bytes": report["bytes"], "bpp": round(report["bpp"], 4), "reported_psnr": report["psnr"],
                      "decoded_psnr": decoded_psnr, "equal": abs(decoded_psnr - report["psnr"]) < 1e-9,
                      "chunks": chunks, "rate_control": report["rate_control"],
                      "levels": info["payload"]["levels"], "scales": info["payload"]["scales"],
                      "encode_seconds": round(report["seconds"], 1)}, indent=1))
    assert {"SEED", "MASK", "SCAL"} <= set(chunks) and "TDAT" not in chunks
    assert abs(decoded_psnr - report["psnr"]) < 1e-9


if __name__ == "__main__":
    main()
