#!/usr/bin/env python3
"""Issue 12, video: a NeRV clip fitted from a meta-learned prior against the same NeRV from scratch.

On the evaluation clip (carphone, never trained on: the default video prior learns from Big Buck
Bunny only) cut to the prior's geometry (its first F frames at H x W), for each k of ``--steps``:

* ``prior``: the prior's values, its K Meta-SGD steps with the learned step sizes, then k Adam steps;
* ``scratch``: the same network (the prior's record) from the codec's random initialisation
  (``Nerv.init_weights_``, seed 0), then the same k Adam steps (same optimizer and schedule: the
  video preset's lr, warm-up and cosine decay over k steps, ``--batch-frames`` frames per step);

and reports the float PSNR of the network after the fit (whole clip, before quantization) and the
bytes and decoded PSNR of the file both ways (``nfcodec.prior_encoder.code_fitted``: the same
quantization, RD step search and closed-loop decode; the prior's file codes residuals and a PRIR
chunk, the scratch file the weights).  k = 0 is the initialisation alone (after the K steps for the
prior).  One JSON line per (k, init) goes to ``OUT/video_priors.jsonl``; ``--summary`` prints the
markdown table of docs/benchmarks.md.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/video_priors.py --prior default --steps 0,50,100,200,400
    python benchmarks/video_priors.py --summary
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "priors"


def _float_psnr(model, frames) -> float:
    import numpy as np
    import torch

    from nfcodec.meta.nerv import clip_targets, encoding, forward

    y = clip_targets(frames)
    with torch.no_grad():
        params = [p.detach()[None] for p in model.parameters()]
        out = forward(params, model.record, encoding(model.record, y.shape[1]), y.shape[-2], y.shape[-1])
        mse = float((out.clamp(-1, 1) - y).square().mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def run(args: argparse.Namespace) -> list[dict]:
    import numpy as np
    import torch

    import nfcodec
    from nfcodec.config import get_preset
    from nfcodec.models.nerv import Nerv
    from nfcodec.prior_encoder import check_prior, code_fitted, fit_from, start_model
    from nfcodec.tile_encoder import resolve_prior

    torch.set_num_threads(args.threads)
    prior, paths = resolve_prior(args.prior, 1)
    f, h, w = prior.size
    video = nfcodec.read_video(args.clip, frames=f"0:{f}")
    if video.frames.shape[1:3] != (h, w):
        video = nfcodec.read_video(args.clip, frames=f"0:{f}", resize=(w, h))
    frames = video.frames
    check_prior(prior, frames, 1, "nerv")
    base = get_preset(args.preset, video=True)
    rows = []
    for k in args.steps:
        for init in ("prior", "scratch"):
            cfg = base.replace(epochs=0, steps=max(1, k), batch_frames=args.batch_frames, device="cpu",
                               **({"lr": args.lr} if args.lr else {}))
            t0 = time.perf_counter()
            if init == "prior":
                model, adapted, t_adapt = start_model(prior, frames, cfg)
            else:
                model = Nerv(prior.record).init_weights_(torch.Generator().manual_seed(cfg.fit.seed))
                adapted, t_adapt = 0, 0.0
            torch.manual_seed(cfg.fit.seed)
            fit = fit_from(model, frames, cfg, prior if init == "prior" else None) if k else None
            t_fit = time.perf_counter() - t0
            fpsnr = _float_psnr(model, frames)
            r = code_fitted(model, frames, 1, video.fps, cfg, prior if init == "prior" else None, paths=paths,
                            fit=fit, preset=args.preset, adapt_steps=adapted)
            row = {"clip": Path(args.clip).stem, "frames": f, "size": f"{w}x{h}", "init": init, "steps": k,
                   "adapt_steps": adapted, "lr": cfg.fit.lr, "float_psnr": round(fpsnr, 3),
                   "file_psnr": round(r.psnr, 3), "bytes": len(r.data), "bpp": round(r.bpp, 4),
                   "fit_seconds": round(t_fit, 2), "adapt_seconds": round(t_adapt, 2),
                   "prior": prior.name, "prior_hash": prior.hexdigest[:16]}
            rows.append(row)
            if not args.dry:
                OUT.mkdir(parents=True, exist_ok=True)
                with (OUT / "video_priors.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        by[(r["prior_hash"], r["lr"], r["steps"], r["init"])] = r
    lines = ["| Adam steps k | prior: float PSNR | scratch: float PSNR | prior file: bytes / PSNR | "
             "scratch file: bytes / PSNR |", "|---|---|---|---|---|"]
    for (h, lr, k, init), r in sorted(by.items()):
        if init != "prior" or (h, lr, k, "scratch") not in by:
            continue
        s = by[(h, lr, k, "scratch")]
        lines.append(f"| {k} | {r['float_psnr']:.2f} | {s['float_psnr']:.2f} | {r['bytes']} / {r['file_psnr']:.2f} | "
                     f"{s['bytes']} / {s['file_psnr']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="default", help="prior name or path (default: the packaged video prior)")
    ap.add_argument("--clip", default=str(DATA / "video" / "carphone_pristine.mp4"))
    ap.add_argument("--steps", default="0,50,100,200,400", help="Adam step counts k")
    ap.add_argument("--preset", default="default", help="the video preset whose optimizer settings are used")
    ap.add_argument("--lr", type=float, default=0.0, help="override the preset's Adam learning rate")
    ap.add_argument("--batch-frames", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry", action="store_true", help="print only, do not append to the results file")
    ap.add_argument("--summary", action="store_true", help="print the markdown table of the results file")
    args = ap.parse_args()
    if args.summary:
        path = OUT / "video_priors.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
        print(summary(rows))
        return
    args.steps = [int(v) for v in args.steps.split(",") if v.strip()]
    print(summary(run(args)))


if __name__ == "__main__":
    main()
