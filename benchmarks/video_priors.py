#!/usr/bin/env python3
"""Issue 12, video: a NeRV clip fitted from a meta-learned prior against the same NeRV from scratch.

On the evaluation clip (carphone, never trained on: the default video prior learns from Big Buck
Bunny only) cut to the prior's geometry (its first F frames at H x W), for each k of ``--steps``
and each fit seed of ``--seeds``:

* ``prior``: the prior's values, its K Meta-SGD steps with the learned step sizes, then k Adam steps;
* ``scratch``: the same network (the prior's record) from the codec's random initialisation
  (``Nerv.init_weights_`` with the fit seed), then the same k Adam steps (same optimizer and
  schedule: the video preset's lr, warm-up and cosine decay over k steps, ``--batch-frames``
  frames per step, the seed's batch order);

and reports the float PSNR of the network after the fit (whole clip, before quantization) and the
bytes and decoded PSNR of the file both ways (``nfcodec.prior_encoder.code_fitted``: the same
quantization, RD step search and closed-loop decode; the prior's file codes residuals and a PRIR
chunk, the scratch file the weights).  k = 0 is the initialisation alone (after the K steps for the
prior).  One JSON line per (k, init, seed) goes to ``OUT/video_priors.jsonl``; the table gives the
means over seeds.

``--rd K``: both fits at K Adam steps (each seed), each coded at the bit depths of ``--bits`` (the
starting steps of the RD step search, as ``--bits`` does in ``nfc encode``): RD points, and the
BD-rate of prior vs scratch per seed (``nfcodec.bdrate``, Akima, on each curve's Pareto points);
rows go to ``OUT/video_priors_rd.jsonl``.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/video_priors.py --steps 0,50,100,200,400,600 --seeds 0,1,2
    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/video_priors.py --rd 600 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "priors"


def _float_psnr(model, frames) -> float:
    import torch

    from nfcodec.meta.nerv import clip_targets, encoding, forward

    y = clip_targets(frames)
    with torch.no_grad():
        params = [p.detach()[None] for p in model.parameters()]
        out = forward(params, model.record, encoding(model.record, y.shape[1]), y.shape[-2], y.shape[-1])
        mse = float((out.clamp(-1, 1) - y).square().mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def _setup(args: argparse.Namespace):
    import torch

    import nfcodec
    from nfcodec.prior_encoder import check_prior
    from nfcodec.tile_encoder import resolve_prior

    torch.set_num_threads(args.threads)
    prior, paths = resolve_prior(args.prior, 1)
    f, h, w = prior.size
    video = nfcodec.read_video(args.clip, frames=f"0:{f}")
    if video.frames.shape[1:3] != (h, w):
        video = nfcodec.read_video(args.clip, frames=f"0:{f}", resize=(w, h))
    check_prior(prior, video.frames, 1, "nerv")
    return prior, paths, video


def _config(args: argparse.Namespace, steps: int, seed: int):
    from nfcodec.config import get_preset

    return get_preset(args.preset, video=True).replace(epochs=0, steps=max(1, steps), batch_frames=args.batch_frames,
                                                       device="cpu", seed=seed, **({"lr": args.lr} if args.lr else {}))


def _fit(init: str, prior, frames, cfg, k: int):
    """``(model, fit or None, adapt steps, seconds)`` of one init fitted for ``k`` Adam steps."""
    import torch

    from nfcodec.models.nerv import Nerv
    from nfcodec.prior_encoder import fit_from, start_model

    t0 = time.perf_counter()
    if init == "prior":
        model, adapted, _ = start_model(prior, frames, cfg)
    else:
        model, adapted = Nerv(prior.record).init_weights_(torch.Generator().manual_seed(cfg.fit.seed)), 0
    torch.manual_seed(cfg.fit.seed)
    fit = fit_from(model, frames, cfg, prior if init == "prior" else None) if k else None
    return model, fit, adapted, time.perf_counter() - t0


def _append(name: str, row: dict, dry: bool) -> None:
    if not dry:
        OUT.mkdir(parents=True, exist_ok=True)
        with (OUT / name).open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run(args: argparse.Namespace) -> list[dict]:
    from nfcodec.prior_encoder import code_fitted

    prior, paths, video = _setup(args)
    frames = video.frames
    f, h, w = prior.size
    rows = []
    for k in args.steps:
        for seed in args.seeds:
            for init in ("prior", "scratch"):
                cfg = _config(args, k, seed)
                model, fit, adapted, seconds = _fit(init, prior, frames, cfg, k)
                r = code_fitted(model, frames, 1, video.fps, cfg, prior if init == "prior" else None, paths=paths,
                                fit=fit, preset=args.preset, adapt_steps=adapted)
                row = {"clip": Path(args.clip).stem, "frames": f, "size": f"{w}x{h}", "init": init, "steps": k,
                       "seed": seed, "adapt_steps": adapted, "lr": cfg.fit.lr,
                       "float_psnr": round(_float_psnr(model, frames), 3), "file_psnr": round(r.psnr, 3),
                       "bytes": len(r.data), "bpp": round(r.bpp, 4), "fit_seconds": round(seconds, 2),
                       "prior": prior.name, "prior_hash": prior.hexdigest[:16]}
                rows.append(row)
                _append("video_priors.jsonl", row, args.dry)
    return rows


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both rate and PSNR, by rate (a monotone curve)."""
    out: list[tuple[float, float]] = []
    for r, q in sorted(points):
        if out and q <= out[-1][1]:
            continue
        while out and abs(out[-1][0] - r) < 1e-12:
            out.pop()
        out.append((r, q))
    return out


def rd(args: argparse.Namespace) -> str:
    """RD points of both fits at ``args.rd`` Adam steps per seed and the BD-rate of prior vs scratch."""
    from nfcodec.bdrate import bd_quality, bd_rate
    from nfcodec.prior_encoder import code_fitted

    prior, paths, video = _setup(args)
    frames = video.frames
    f, h, w = prior.size
    lines = [f"RD at {args.rd} Adam steps ({Path(args.clip).stem}, {f} frames of {w}x{h}, prior {prior.name}):", "",
             "| seed | bits | prior: bytes / PSNR | scratch: bytes / PSNR |", "|---|---|---|---|"]
    bds = []
    for seed in args.seeds:
        cfg = _config(args, args.rd, seed)
        fitted = {init: _fit(init, prior, frames, cfg, args.rd) for init in ("prior", "scratch")}
        curves: dict[str, list[tuple[float, float]]] = {"prior": [], "scratch": []}
        for bits in args.bits:
            cells = {}
            for init, (model, fit, adapted, _) in fitted.items():
                r = code_fitted(model, frames, 1, video.fps, cfg.replace(bits=bits),
                                prior if init == "prior" else None, paths=paths, fit=fit, preset=args.preset,
                                adapt_steps=adapted)
                row = {"clip": Path(args.clip).stem, "init": init, "steps": args.rd, "seed": seed, "bits": bits,
                       "lr": cfg.fit.lr, "bytes": len(r.data), "bpp": round(r.bpp, 4), "file_psnr": round(r.psnr, 3),
                       "prior_hash": prior.hexdigest[:16]}
                _append("video_priors_rd.jsonl", row, args.dry)
                curves[init].append((r.bpp, r.psnr))
                cells[init] = f"{len(r.data)} / {r.psnr:.2f}"
            lines.append(f"| {seed} | {bits} | {cells['prior']} | {cells['scratch']} |")
        a, t = _pareto(curves["scratch"]), _pareto(curves["prior"])
        try:
            bdr = bd_rate([x for x, _ in a], [y for _, y in a], [x for x, _ in t], [y for _, y in t]).value
            bdq = bd_quality([x for x, _ in a], [y for _, y in a], [x for x, _ in t], [y for _, y in t]).value
        except Exception as e:         # too few Pareto points or no overlap
            bdr = bdq = float("nan")
            print(f"seed {seed}: no BD ({e})", flush=True)
        bds.append((seed, bdr, bdq))
    lines.append("")
    for seed, bdr, bdq in bds:
        lines.append(f"seed {seed}: BD-rate of prior vs scratch {bdr:+.1f}%, BD-PSNR {bdq:+.2f} dB")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Markdown table: means over seeds per (k, init)."""
    import numpy as np

    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["steps"], r["init"]), []).append(r)
    lines = ["| Adam steps k | prior: float PSNR | scratch: float PSNR | prior file: bytes / PSNR | "
             "scratch file: bytes / PSNR | seeds where the prior's file has the higher PSNR / fewer bytes |",
             "|---|---|---|---|---|---|"]
    for k in sorted({k for k, _ in groups}):
        if (k, "prior") not in groups or (k, "scratch") not in groups:
            continue
        p, s = groups[(k, "prior")], groups[(k, "scratch")]

        def m(rs, key):
            return float(np.mean([r[key] for r in rs]))

        pairs = {r["seed"]: [r] for r in p}
        for r in s:
            pairs.setdefault(r["seed"], []).append(r)
        pairs = {seed: v for seed, v in pairs.items() if len(v) == 2}
        better = sum(a["file_psnr"] > b["file_psnr"] for a, b in pairs.values())
        smaller = sum(a["bytes"] < b["bytes"] for a, b in pairs.values())
        lines.append(f"| {k} | {m(p, 'float_psnr'):.2f} | {m(s, 'float_psnr'):.2f} | "
                     f"{m(p, 'bytes'):.0f} / {m(p, 'file_psnr'):.2f} | {m(s, 'bytes'):.0f} / {m(s, 'file_psnr'):.2f} | "
                     f"{better} / {smaller} of {len(pairs)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="default", help="prior name or path (default: the packaged video prior)")
    ap.add_argument("--clip", default=str(DATA / "video" / "carphone_pristine.mp4"))
    ap.add_argument("--steps", default="0,50,100,200,400", help="Adam step counts k")
    ap.add_argument("--seeds", default="0", help="fit seeds (scratch init, batch order); tables show means")
    ap.add_argument("--preset", default="default", help="the video preset whose optimizer settings are used")
    ap.add_argument("--lr", type=float, default=0.0, help="override the preset's Adam learning rate")
    ap.add_argument("--batch-frames", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rd", type=int, default=0, help="RD points and BD-rate at this many Adam steps")
    ap.add_argument("--bits", default="5,6,7,8,10", help="--rd: bit depths (starting steps of the RD search)")
    ap.add_argument("--dry", action="store_true", help="print only, do not append to the results files")
    ap.add_argument("--summary", action="store_true", help="print the table of OUT/video_priors.jsonl")
    args = ap.parse_args()
    if args.summary:
        path = OUT / "video_priors.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
        print(summary(rows))
        return
    args.steps = [int(v) for v in args.steps.split(",") if v.strip()]
    args.seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    args.bits = [int(v) for v in args.bits.split(",") if v.strip()]
    if args.rd:
        print(rd(args))
        return
    print(summary(run(args)))


if __name__ == "__main__":
    main()
