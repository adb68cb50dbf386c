#!/usr/bin/env python3
"""Issue 12 benchmark: GradNCP vs Learnit (plain MAML) priors for SIREN tiles, on the CPU.

Two parts (``--part memory|psnr|both``):

* **memory / time per meta-step** with and without GradNCP's context pruning (each setting in its
  own subprocess): seconds per meta-step, the bytes the autograd graph keeps for the meta-gradient
  (``torch.autograd.graph.saved_tensors_hooks``, unique storages), the peak RSS growth over the
  meta-steps (``resource.getrusage``; on a GPU ``torch.cuda.max_memory_allocated`` instead).
* **PSNR after k test-time steps** (k = 0, 1, 2, 4, ... 64) on held-out tiles of Kodak kodim01-04
  (never trained on) for: a random SIREN init, Learnit with K = 4 (memory-matched to GradNCP, as in
  the paper) and K = 16, GradNCP (K = 16, gamma = 0.25) without and with the bootstrap correction
  (L = 5, lambda = 100); GradNCP priors are evaluated with Eq. 4 re-scaled full-tile steps and,
  for the full method, also with pruned-context steps as in training.

Training tasks: random crops of /work/shared/data/images/*.png and every 4th frame of
/work/shared/data/video/bigbuckbunny.mp4 (rescaled 0.5-1, flipped, rotated).  The defaults are
small so that the whole run takes ~10 minutes on a 2-core CPU (32x32 tiles, SIREN 64x3,
meta-batch 4, 500 meta-steps per method); the paper's runs are 150k steps on an A100.

    OMP_NUM_THREADS=1 python benchmarks/gradncp.py [--steps 500] [--out benchmarks/results/priors]

Writes OUT/NAME.json and OUT/NAME.md (``--name``, default gradncp).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
TRAIN = [str(DATA / "images"), str(DATA / "video" / "bigbuckbunny.mp4")]
KODAK = [DATA / "kodak" / f"kodim0{i}.png" for i in range(1, 5)]
KS = (0, 1, 2, 4, 8, 16, 32, 64)

# name -> MetaConfig overrides.  Learnit and the paper's GradNCP code use a fixed alpha (meta_sgd off);
# alpha = 1e-2 as in the paper, plus Learnit at its best alpha in a 200-step sweep (3e-2; GradNCP
# diverges at 3e-2) and GradNCP with Meta-SGD (this trainer's default inner loop).
GRADNCP = dict(inner_steps=16, context_keep=0.25, bootstrap_steps=5, bootstrap_lambda=100.0)
METHODS = {
    "Learnit K=4": dict(inner_steps=4),
    "Learnit K=4, alpha 3e-2": dict(inner_steps=4, inner_lr=3e-2),
    "Learnit K=16": dict(inner_steps=16),
    "GradNCP K=16, no bootstrap": dict(inner_steps=16, context_keep=0.25),
    "GradNCP K=16": GRADNCP,
    "GradNCP K=16 + Meta-SGD": dict(GRADNCP, meta_sgd=True),
}
MEMORY = ("Learnit K=4", "Learnit K=16", "GradNCP K=16, no bootstrap", "GradNCP K=16")


def base_config(args: argparse.Namespace, **kw):
    from nfcodec.meta.train import MetaConfig

    d = dict(width=args.width, depth=args.depth, size=(args.size, args.size), meta_batch=args.meta_batch,
             steps=args.steps, inner_lr=args.inner_lr, meta_lr=args.meta_lr, meta_sgd=False, device=args.device,
             seed=args.seed, context_keep=1.0, bootstrap_steps=0)      # Learnit unless a method says otherwise
    d.update(kw)
    return MetaConfig(**d)


# ---------------------------------------------------------------------------------------------- memory / time


def probe(args: argparse.Namespace, overrides: dict) -> dict:
    """Run in a fresh process: time, graph bytes and peak memory of a few meta-steps."""
    import numpy as np
    import torch

    from nfcodec.meta import learn
    from nfcodec.meta.data import TaskSource
    from nfcodec.models.tiled import grid_coords, siren_init, siren_shapes

    cfg = base_config(args, **overrides)
    from nfcodec.devices import resolve_device

    dev = resolve_device(cfg.device)
    src = TaskSource([str(DATA / "images")], cfg.size)
    rng = np.random.default_rng(0)
    shapes = siren_shapes(2, 3, cfg.width, cfg.depth)
    theta = [t[0].to(dev).requires_grad_(True) for t in siren_init(1, shapes, 30.0, torch.Generator().manual_seed(0))]
    x = grid_coords(*cfg.size).to(dev).unsqueeze(0)
    ys = [src.targets(rng, cfg.meta_batch).to(dev) for _ in range(args.probe_steps + 2)]

    def step(y, hooks=None):
        kw = dict(steps=cfg.inner_steps, w0_first=30.0, w0_hidden=30.0, keep=cfg.context_keep,
                  bootstrap_steps=cfg.bootstrap_steps, bootstrap_lambda=cfg.bootstrap_lambda)
        if hooks is None:
            loss, _ = learn.meta_objective(theta, cfg.inner_lr, x, y, **kw)
        else:
            with torch.autograd.graph.saved_tensors_hooks(*hooks):
                loss, _ = learn.meta_objective(theta, cfg.inner_lr, x, y, **kw)
        torch.autograd.grad(loss, theta)

    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # before any meta-step
    step(ys[0], (pack, lambda t: t))
    graph = sum(seen.values())
    step(ys[1])
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    for y in ys[2:]:
        step(y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / args.probe_steps
    out = {"seconds_per_step": sec, "graph_bytes": graph,
           "peak_rss_growth_bytes": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024,
           "device": str(dev)}
    if dev.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - base
    return out


def memory_part(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in MEMORY:
        over = METHODS[name]
        cmd = [sys.executable, __file__, "--probe", json.dumps(over), *sys.argv[1:]]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append({"method": name, **over, **r})
        print(f"{name:28s} {r['seconds_per_step']:.3f} s/step, graph {r['graph_bytes'] / 2**20:.1f} MiB, "
              f"peak RSS +{r['peak_rss_growth_bytes'] / 2**20:.1f} MiB", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- PSNR vs steps


def held_out(size: int, count: int):
    import numpy as np

    from nfcodec.media import load_image
    from nfcodec.meta.data import tile_grid_crops, to_targets

    tiles = np.concatenate([tile_grid_crops(load_image(p), (size, size)) for p in KODAK])
    pick = np.linspace(0, len(tiles) - 1, count).round().astype(int)
    return to_targets(tiles[pick])


def curve(tensors, lrs, y, ks, *, inner_lr: float, keep: float = 1.0, rescale: bool = False, device="cpu"):
    """PSNR (mean over tiles of the per-tile PSNR) after each k in ``ks`` test-time SGD steps."""
    import torch

    from nfcodec.meta import learn
    from nfcodec.models.tiled import grid_coords

    y = y.to(device)
    x = grid_coords(int(y.shape[1] ** 0.5), int(y.shape[1] ** 0.5)).to(device).unsqueeze(0)
    theta = [torch.as_tensor(t, dtype=torch.float32, device=device) for t in tensors]
    lr = inner_lr if lrs is None else [torch.as_tensor(t, device=device) for t in lrs]
    params = learn.expand(theta, y.shape[0])
    out = {}
    for k in range(max(ks) + 1):
        if k in ks:
            with torch.no_grad():
                out[k] = float(learn.psnr(learn.task_mse(params, x, y, 30.0, 30.0)).mean())
        if k == max(ks):
            break
        with torch.enable_grad():
            params, _ = learn.inner_loop(params, lr, x, y, 1, w0_first=30.0, w0_hidden=30.0, keep=keep,
                                         rescale=rescale, detach=True)
    return out


def psnr_part(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    import torch

    from nfcodec.meta.data import TaskSource
    from nfcodec.meta.train import meta_train
    from nfcodec.models.tiled import siren_init, siren_shapes

    y = held_out(args.size, args.tiles)
    src = TaskSource(TRAIN, (args.size, args.size))
    print(f"data: {src.summary()}; held-out: {y.shape[0]} Kodak tiles", flush=True)
    rows, train_rows = [], []
    cfg0 = base_config(args)
    rand = [t[0] for t in siren_init(1, siren_shapes(2, 3, args.width, args.depth), 30.0,
                                     torch.Generator().manual_seed(args.seed))]
    rows.append({"method": "Random init", "psnr": curve(rand, None, y, KS, inner_lr=args.inner_lr, device=args.device)})
    for name, over in METHODS.items():
        cfg = base_config(args, **over)
        t0 = time.perf_counter()
        r = meta_train(src, cfg)
        sec = time.perf_counter() - t0
        train_rows.append({"method": name, "steps": r.steps, "seconds": sec, "final_train_psnr": r.final_psnr})
        print(f"{name}: {r.steps} meta-steps in {sec:.0f} s, training K-step PSNR {r.final_psnr:.2f} dB", flush=True)
        if cfg.context_keep < 1:
            rows.append({"method": name + " (Eq. 4 full-tile steps)", "psnr": curve(
                r.tensors, r.lrs, y, KS, inner_lr=cfg.inner_lr, keep=cfg.context_keep, rescale=True, device=args.device)})
            if cfg.bootstrap_steps:
                rows.append({"method": name + " (pruned-context steps)", "psnr": curve(
                    r.tensors, r.lrs, y, KS, inner_lr=cfg.inner_lr, keep=cfg.context_keep, device=args.device)})
        else:
            rows.append({"method": name, "psnr": curve(r.tensors, r.lrs, y, KS, inner_lr=cfg.inner_lr,
                                                       device=args.device)})
        print("   ", rows[-1]["psnr"], flush=True)
    return rows, train_rows


# ---------------------------------------------------------------------------------------------- report


def markdown(args, mem, rows, train_rows, seconds) -> str:
    lines = [f"# GradNCP vs Learnit ({args.size}x{args.size} tiles, SIREN {args.width}x{args.depth})", "",
             f"Machine: {platform.machine()} CPU VM, {__import__('os').cpu_count()} cores, no GPU, "
             f"OMP_NUM_THREADS=1, torch {__import__('torch').__version__}; {seconds:.0f} s in all.", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/gradncp.py " + " ".join(sys.argv[1:]) + "`", ""]
    if mem:
        lines += ["## Memory and time per meta-step", "",
                  f"meta-batch {args.meta_batch}, second-order MAML, {args.probe_steps} timed steps; graph = bytes "
                  "of the tensors autograd keeps for the meta-gradient (unique storages); peak RSS = growth "
                  "of the process's peak resident memory over all its meta-steps (data already loaded).", "",
                  "| method | K | gamma | L | s / meta-step | graph MiB | peak RSS growth MiB |",
                  "|---|---|---|---|---|---|---|"]
        for r in mem:
            lines.append(f"| {r['method']} | {r.get('inner_steps')} | {r.get('context_keep', 1.0)} | "
                         f"{r.get('bootstrap_steps', 0)} | {r['seconds_per_step']:.3f} | {r['graph_bytes'] / 2**20:.1f} | "
                         f"{r['peak_rss_growth_bytes'] / 2**20:.1f} |")
        lines.append("")
    if rows:
        lines += ["## PSNR (dB) after k test-time SGD steps on held-out Kodak tiles", "",
                  f"{args.tiles} tiles of kodim01-04 (evenly spaced over the 32x32 grid tiles), mean of "
                  f"per-tile PSNR; every prior meta-trained for {args.steps} steps (meta-batch {args.meta_batch}, "
                  f"alpha = {args.inner_lr}, Adam {args.meta_lr}).", "",
                  "| method | " + " | ".join(f"k={k}" for k in KS) + " |", "|---|" + "---|" * len(KS)]
        for r in rows:
            lines.append(f"| {r['method']} | " + " | ".join(f"{r['psnr'][k]:.2f}" for k in KS) + " |")
        lines += ["", "| training run | meta-steps | seconds | training K-step PSNR |", "|---|---|---|---|"]
        for r in train_rows:
            lines.append(f"| {r['method']} | {r['steps']} | {r['seconds']:.0f} | {r['final_train_psnr']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["memory", "psnr", "both"], default="both")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--meta-batch", type=int, default=4)
    ap.add_argument("--inner-lr", type=float, default=1e-2)
    ap.add_argument("--meta-lr", type=float, default=3e-4)
    ap.add_argument("--tiles", type=int, default=128)
    ap.add_argument("--probe-steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "priors"))
    ap.add_argument("--name", default="gradncp", help="stem of the output files")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        print(json.dumps(probe(args, json.loads(args.probe))))
        return
    t0 = time.perf_counter()
    mem = memory_part(args) if args.part in ("memory", "both") else []
    rows, train_rows = psnr_part(args) if args.part in ("psnr", "both") else ([], [])
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = out / f"{args.name}.json"
    if args.part != "both" and old.exists():        # keep the other part of an earlier run
        prev = json.loads(old.read_text())
        mem = mem or prev.get("memory", [])
        rows, train_rows = (rows, train_rows) if rows else (prev.get("psnr", []), prev.get("training", []))
        rows = [{**r, "psnr": {int(k): v for k, v in r["psnr"].items()}} for r in rows]
    (out / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "memory": mem, "psnr": rows,
                                                  "training": train_rows, "seconds": seconds}, indent=1))
    (out / f"{args.name}.md").write_text(markdown(args, mem, rows, train_rows, seconds))
    print((out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
