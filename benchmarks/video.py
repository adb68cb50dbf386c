#!/usr/bin/env python3
"""Video benchmark: NeRV at three sizes vs x264 and x265 (medium preset, through PyAV) at matching bpp.

For each NeRV size: encode the clip (timed; the time includes nfcodec's closed-loop decode),
decode the ``.nfc`` bytes frame by frame (timed: decode seconds and frames per second), and
measure bpp (8 x file bytes / (frames x width x height)), PSNR both ways (mean of per-frame PSNR
and PSNR of the mean MSE, RGB 8-bit) and MS-SSIM (pytorch_msssim, RGB, mean over frames) on the
decoded frames.  x264 and x265 encode the same RGB frames as yuv420p (BT.601 limited range, the
swscale default; the colour round trip alone costs them ~50 dB) over a CRF sweep; their bytes are
the sum of the coded packet sizes (no container), and for each NeRV point the CRF whose bpp is
closest is reported.  On CPU the clip is downscaled (``--resize``, default 320x180) and trained
for few epochs; say so when quoting the numbers.  With ``--resize none`` on a GPU it runs the full
720p clip.

    python benchmarks/video.py ../shared/data/video/bigbuckbunny.mp4 --resize 320x180 --out /tmp/video-bench
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import nfcodec
from nfcodec.video_io import read_video

# name -> (NeRV knobs); epochs come from --epochs (one per size).
SIZES = {
    "nerv-S": dict(c1=8, c2=32, min_channels=12, mlp_hidden=64),
    "nerv-M": dict(c1=16, c2=48, min_channels=16, mlp_hidden=96),
    "nerv-L": dict(c1=16, c2=64, min_channels=16, mlp_hidden=128),
}
MSSSIM_WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def frame_psnrs(a: np.ndarray, b: np.ndarray) -> tuple[float, float, list[float]]:
    """(mean of per-frame PSNR, PSNR of the mean MSE, per-frame MSEs) of two (T, H, W, 3) uint8 clips."""
    mses = [float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)) for x, y in zip(a, b)]
    p = [math.inf if m == 0 else 10 * math.log10(255.0**2 / m) for m in mses]
    pooled = float(np.mean(mses))
    return float(np.mean(p)), (math.inf if pooled == 0 else 10 * math.log10(255.0**2 / pooled)), mses


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Mean MS-SSIM over frames (RGB, data range 255) and the number of scales used.

    The standard 5 scales need a smaller side > 160 px; smaller frames use fewer scales with the
    first weights renormalised.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim

    side = min(a.shape[1:3])
    scales = max(1, min(5, int(math.floor(math.log2(side / 10))) + 1 if side > 10 else 1))
    while scales > 1 and side <= 10 * 2 ** (scales - 1):
        scales -= 1
    w = MSSSIM_WEIGHTS[:scales]
    w = [x / sum(w) for x in w]
    vals = []
    for i in range(0, len(a), 8):
        x = torch.from_numpy(a[i:i + 8]).permute(0, 3, 1, 2).float()
        y = torch.from_numpy(b[i:i + 8]).permute(0, 3, 1, 2).float()
        vals.append(_ms_ssim(x, y, data_range=255, size_average=False, weights=w))
    return float(torch.cat(vals).mean()), scales


def classic(frames: np.ndarray, fps: Fraction, codec: str, crf: int) -> dict:
    """Encode with x264/x265 medium at ``crf`` (yuv420p), decode, measure."""
    import av

    t, h, w = frames.shape[:3]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.mp4")
        t0 = time.perf_counter()
        with av.open(path, "w") as out:
            st = out.add_stream(codec, rate=fps or 25)
            st.width, st.height, st.pix_fmt = w, h, "yuv420p"
            st.options = {"crf": str(crf), "preset": "medium",
                          **({"x265-params": "log-level=error"} if codec == "libx265" else {})}
            for i, f in enumerate(frames):
                fr = av.VideoFrame.from_ndarray(f, format="rgb24")
                fr.pts = i
                out.mux(st.encode(fr))
            out.mux(st.encode())
        enc_s = time.perf_counter() - t0
        with av.open(path) as inp:
            nbytes = sum(p.size for p in inp.demux(video=0))
        t0 = time.perf_counter()
        dec = read_video(path).frames
        dec_s = time.perf_counter() - t0
    mean_p, pooled, _ = frame_psnrs(dec, frames)
    return {"codec": codec, "setting": f"crf {crf}", "bytes": nbytes, "bpp": 8 * nbytes / (t * h * w),
            "psnr_mean_frames": mean_p, "psnr_pooled": pooled, "encode_s": enc_s, "decode_s": dec_s,
            "decode_fps": t / dec_s, "_dec": dec}


def run_nerv(frames: np.ndarray, fps: Fraction, name: str, epochs: int, args: argparse.Namespace) -> dict:
    knobs = dict(SIZES[name], epochs=epochs, batch_frames=args.batch_frames, lr=args.lr, bits=args.bits,
                 warmup_steps=args.warmup, device=args.device)
    t0 = time.perf_counter()
    r = nfcodec.encode(frames, fps=fps, preset="default", **knobs)
    enc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dec = np.stack([f for _, f in nfcodec.decode_frames(r.data)])
    dec_s = time.perf_counter() - t0
    assert np.array_equal(dec, r.reconstruction)
    mean_p, pooled, _ = frame_psnrs(dec, frames)
    from nfcodec.decoder import open_stream

    n_params = sum(p.numel() for p in open_stream(r.data).model.parameters())
    return {"codec": name, "setting": f"{epochs} epochs, c1={knobs['c1']} c2={knobs['c2']} hidden={knobs['mlp_hidden']}",
            "bytes": r.nbytes, "bpp": r.bpp, "psnr_mean_frames": mean_p, "psnr_pooled": pooled,
            "encode_s": enc_s, "fit_s": r.fit.seconds, "decode_s": dec_s, "decode_fps": len(frames) / dec_s,
            "device": r.fit.device, "reported_psnr": r.psnr, "blocks": r.info.arch.blocks, "_dec": dec,
            "params": n_params}


def table(rows: list[dict]) -> str:
    head = ("| codec | setting | bytes | bpp | PSNR mean of frames (dB) | PSNR of mean MSE (dB) | MS-SSIM | "
            "encode s | decode s | decode fps |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['codec']} | {r['setting']} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr_mean_frames']:.2f} | "
                     f"{r['psnr_pooled']:.2f} | {r['ms_ssim']:.4f} | {r['encode_s']:.1f} | {r['decode_s']:.2f} | "
                     f"{r['decode_fps']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--resize", default="320x180", help="WxH, or 'none' for the original size (GPU)")
    ap.add_argument("--frames", default=None, help="A:B[:STEP] (default: all)")
    ap.add_argument("--epochs", default="60,50,40", help="epochs for nerv-S,M,L")
    ap.add_argument("--batch-frames", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--crfs", default="12,15,18,21,24,27,30,33,36,39,42,45,48,51")
    ap.add_argument("--out", required=True, help="output folder (JSON lines + Markdown)")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resize = None if args.resize == "none" else tuple(int(v) for v in args.resize.split("x"))
    video = read_video(args.video, frames=args.frames, resize=resize)
    frames, fps = video.frames, video.fps
    t, h, w = frames.shape[:3]
    print(f"{args.video}: {t} frames of {w}x{h} at {fps} fps; torch threads {torch.get_num_threads()}", flush=True)
    rows = []
    for name, epochs in zip(SIZES, (int(e) for e in args.epochs.split(","))):
        row = run_nerv(frames, fps, name, epochs, args)
        row["ms_ssim"], row["ms_ssim_scales"] = ms_ssim(row["_dec"], frames)
        rows.append(row)
        print({k: v for k, v in row.items() if not k.startswith("_")}, flush=True)
    sweeps = {c: [classic(frames, fps, c, int(q)) for q in args.crfs.split(",")] for c in ("libx264", "libx265")}
    for codec, sweep in sweeps.items():
        for nerv in list(rows[:len(SIZES)]):
            best = min(sweep, key=lambda r: abs(r["bpp"] - nerv["bpp"]))
            best = dict(best, codec=f"{codec} (vs {nerv['codec']})")
            best["ms_ssim"], best["ms_ssim_scales"] = ms_ssim(best["_dec"], frames)
            rows.append(best)
    sweep_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for s in sweeps.values() for r in s]
    meta = {"video": args.video, "frames": t, "width": w, "height": h, "fps": str(fps), "args": vars(args),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.processor() or platform.platform()}",
            "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0], "torch": torch.__version__}
    with open(out / "video.jsonl", "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, default=str) + "\n")
        for r in sweep_rows:
            f.write(json.dumps({"sweep": r}) + "\n")
    md = table(rows)
    (out / "video.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
