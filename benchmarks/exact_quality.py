"""Quality cost of the exact decoding arithmetic (format 2.0) against the float32 renderer.

For each input, encode it (closed loop: the reported PSNR is the exact decoder's), then render
the *same file* two ways:

* exact: ``nfcodec.decode`` (format 2.0 arithmetic, numpy backend);
* float32: the same bytes with the version field set to 1.0, which the decoder renders with the
  format-1.x float32 torch renderer (``sin``, GELU and BLAS of the platform).

The difference is the cost of the arithmetic alone (same weights, same quantization steps).  Rows
go to a JSONL file (resumable: inputs already there are skipped); the summary prints the means.

    python benchmarks/exact_quality.py ../shared/data/kodak/kodim*.png --preset default --out exact-kodak.jsonl
    python benchmarks/exact_quality.py ../shared/data/video/carphone_pristine.mp4 --frames 0:30 --out exact-video.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import nfcodec
from nfcodec.metrics import mse


def as_v1(data: bytes) -> bytes:
    """The same container with version bytes 1.0 (CRCs do not cover the preamble)."""
    return data[:8] + bytes((1, 0)) + data[10:]


def pooled_psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    m = float(np.mean([mse(a, b) for a, b in zip(decoded, source)]))
    return math.inf if m == 0 else 10 * math.log10(255.0**2 / m)


def measure(path: str, preset: str, frames: str | None, knobs: dict) -> dict:
    t0 = time.perf_counter()
    r = nfcodec.encode(path, preset=preset, frames=frames, **knobs)
    enc_s = time.perf_counter() - t0
    if r.is_video:
        from nfcodec.media import parse_size
        from nfcodec.video_io import read_video

        source = read_video(path, frames=frames, resize=parse_size(knobs.get("resize"))).frames
        exact = nfcodec.decode(r.data).frames
        legacy = nfcodec.decode(as_v1(r.data)).frames
    else:
        from nfcodec.media import load_image

        source = load_image(path)[None]
        exact = nfcodec.decode(r.data).image[None]
        legacy = nfcodec.decode(as_v1(r.data)).image[None]
    diff = np.abs(exact.astype(np.int16) - legacy.astype(np.int16))
    row = {"input": Path(path).name, "preset": preset, "frames": int(exact.shape[0]), "bytes": len(r.data),
           "bpp": r.bpp, "psnr_exact": pooled_psnr(exact, source), "psnr_float32": pooled_psnr(legacy, source),
           "reported_psnr": r.psnr, "samples_differing": float(np.mean(diff > 0)), "max_level_diff": int(diff.max()),
           "encode_s": round(enc_s, 1)}
    row["delta_db"] = row["psnr_exact"] - row["psnr_float32"]
    assert abs(row["psnr_exact"] - r.psnr) < 1e-9, "closed loop: the encoder reports the exact decoder's PSNR"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--frames", help="videos: frame range A:B")
    ap.add_argument("--resize", help="videos: WxH")
    ap.add_argument("--out", required=True, help="JSONL file (appended; existing inputs are skipped)")
    args = ap.parse_args()
    out = Path(args.out)
    done = {json.loads(line)["input"] for line in out.read_text().splitlines()} if out.exists() else set()
    knobs = {"resize": args.resize} if args.resize else {}
    for path in args.inputs:
        if Path(path).name in done:
            continue
        row = measure(path, args.preset, args.frames, knobs)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{row['input']}: {row['bpp']:.4f} bpp, exact {row['psnr_exact']:.4f} dB, float32 "
              f"{row['psnr_float32']:.4f} dB, delta {row['delta_db']:+.4f} dB, {100 * row['samples_differing']:.2f}% "
              f"samples differ (max {row['max_level_diff']})", flush=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    deltas = [r["delta_db"] for r in rows]
    print(f"{len(rows)} inputs: mean exact {np.mean([r['psnr_exact'] for r in rows]):.4f} dB, mean float32 "
          f"{np.mean([r['psnr_float32'] for r in rows]):.4f} dB, mean delta {np.mean(deltas):+.4f} dB "
          f"(min {min(deltas):+.4f}, max {max(deltas):+.4f})", file=sys.stderr)


if __name__ == "__main__":
    main()
