#!/usr/bin/env python3
"""Issue 12 benchmark: Meta-SparseINR priors vs dense-narrow and random pruning at equal parameter count.

As in Lee et al. (2021), on the CPU at small scale: every prior is meta-learned with MAML (K inner
SGD steps, fixed alpha) on the same tasks for the same number of meta-steps, then fine-tuned on each
held-out tile with Adam (lr 1e-3, full batch) for 100 steps; the table gives the mean per-tile PSNR
after 0 ... 100 Adam steps.

* **Meta-SparseINR**: dense SIREN (width W) meta-learned for S steps, then R rounds of global
  magnitude pruning (20% of the surviving weight-matrix entries per round, biases kept), each
  followed by ``S / 5`` meta-steps with the mask fixed; masked entries stay exact zeros when fine-tuned.
* **Random pruning**: the same schedule, entries pruned uniformly at random.
* **Dense-narrow**: a dense SIREN whose width gives the same (or slightly more) parameters as the
  sparse one, meta-learned for the same total number of steps.
* **Dense (width W)**: the unpruned prior (twice the parameters at R = 3), for reference.
* **Scratch**: the dense-narrow SIREN from a random init (no meta-learning).

Parameters count non-zero weights plus all biases.  Training tasks: crops of
/work/shared/data/images/*.png and every 4th frame of bigbuckbunny.mp4; held-out: tiles of Kodak
kodim01-04.  Defaults (32x32 tiles, W = 32, depth 3, R = 3, S = 1000) take ~5 minutes on a 2-core CPU;
at W = 32 the sparse prior has ~1.2k parameters for a tile of 3072 values (a 2.5x smaller
representation: wider networks just memorise 32x32 tiles in 100 steps).

    OMP_NUM_THREADS=1 python benchmarks/sparse_prior.py [--rounds 3] [--steps 1000] [--out benchmarks/results/priors]

Writes OUT/sparse_prior.json and OUT/sparse_prior.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gradncp import TRAIN, held_out  # noqa: E402

ADAM_STEPS = (0, 1, 2, 5, 10, 25, 50, 100)


def siren_params(width: int, depth: int) -> int:
    """Parameters of a 2 -> width^depth -> 3 SIREN (weights + biases)."""
    return 2 * width + width + (depth - 1) * (width * width + width) + 3 * width + 3


def narrow_width(target: int, depth: int) -> int:
    """The smallest width whose dense SIREN has at least ``target`` parameters."""
    w = 1
    while siren_params(w, depth) < target:
        w += 1
    return w


def nonzero_params(tensors, masks) -> int:
    if masks is None:
        return sum(t.size for t in tensors)
    return sum(int(m.sum()) if i % 2 == 0 else t.size for i, (t, m) in enumerate(zip(tensors, masks)))


def finetune(tensors, masks, y, steps, lr: float, device: str) -> dict[int, float]:
    """Adam on every held-out tile at once (per-tile Adam: the tiles' parameters are independent)."""
    import torch

    from nfcodec.meta import learn
    from nfcodec.models.tiled import grid_coords

    y = y.to(device)
    side = int(round(y.shape[1] ** 0.5))
    x = grid_coords(side, side).to(device).unsqueeze(0)
    params = [torch.as_tensor(t, dtype=torch.float32, device=device).unsqueeze(0).expand(y.shape[0], *t.shape)
              .clone().requires_grad_(True) for t in tensors]
    ms = None if masks is None else [torch.as_tensor(m, device=device) for m in masks]
    opt = torch.optim.Adam(params, lr=lr)
    out = {}
    for k in range(max(steps) + 1):
        loss = learn.task_mse(params, x, y, 30.0, 30.0)
        if k in steps:
            out[k] = float(learn.psnr(loss.detach()).mean())
        if k == max(steps):
            break
        opt.zero_grad()
        loss.sum().backward()
        if ms is not None:
            for p, m in zip(params, ms):
                p.grad.mul_(m)
        opt.step()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000, help="dense meta-steps before pruning (S)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--inner-steps", type=int, default=2)
    ap.add_argument("--inner-lr", type=float, default=3e-2)
    ap.add_argument("--meta-lr", type=float, default=1e-3)
    ap.add_argument("--meta-batch", type=int, default=4)
    ap.add_argument("--adam-lr", type=float, default=1e-3)
    ap.add_argument("--tiles", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "priors"))
    args = ap.parse_args()

    import torch

    from nfcodec.meta.data import TaskSource
    from nfcodec.meta.train import MetaConfig, meta_train
    from nfcodec.models.tiled import siren_init, siren_shapes

    t_all = time.perf_counter()
    y = held_out(args.size, args.tiles)
    src = TaskSource(TRAIN, (args.size, args.size))
    retrain = max(1, args.steps // 5)
    total = args.steps + args.rounds * retrain
    base = dict(depth=args.depth, size=(args.size, args.size), inner_steps=args.inner_steps, inner_lr=args.inner_lr,
                meta_lr=args.meta_lr, meta_batch=args.meta_batch, meta_sgd=False, device=args.device, seed=args.seed,
                context_keep=1.0, bootstrap_steps=0)      # MAML, as in the paper
    kept = 0                               # parameters of the Meta-SparseINR prior (set below)
    runs: dict[str, dict] = {}

    def record(name, tensors, masks, result=None, width=args.width, sec=0.0):
        psnr = finetune(tensors, masks, y, ADAM_STEPS, args.adam_lr, args.device)
        runs[name] = {"width": width, "params": nonzero_params(tensors, masks), "psnr": psnr, "train_seconds": sec,
                      "meta_steps": 0 if result is None else result.steps,
                      "sparsity": 0.0 if result is None else result.sparsity}
        print(f"{name:26s} params {runs[name]['params']:6d}  " +
              "  ".join(f"{k}:{v:.2f}" for k, v in psnr.items()), flush=True)

    for name, method in (("Meta-SparseINR", "magnitude"), ("Random pruning", "random")):
        cfg = MetaConfig(width=args.width, steps=args.steps, sparse_rounds=args.rounds, prune_method=method,
                         retrain_steps=retrain, **base)
        t0 = time.perf_counter()
        r = meta_train(src, cfg)
        record(name, r.tensors, r.masks, r, sec=time.perf_counter() - t0)
        kept = kept or runs[name]["params"]
    width_n = narrow_width(kept, args.depth)
    cfg = MetaConfig(width=width_n, steps=total, **base)
    t0 = time.perf_counter()
    r = meta_train(src, cfg)
    record(f"Dense-narrow (width {width_n})", r.tensors, None, r, width=width_n, sec=time.perf_counter() - t0)
    cfg = MetaConfig(width=args.width, steps=total, **base)
    t0 = time.perf_counter()
    r = meta_train(src, cfg)
    record(f"Dense (width {args.width})", r.tensors, None, r, sec=time.perf_counter() - t0)
    rand = [t[0].numpy() for t in siren_init(1, siren_shapes(2, 3, width_n, args.depth), 30.0,
                                             torch.Generator().manual_seed(args.seed))]
    record(f"Scratch (width {width_n})", rand, None, None, width=width_n)
    seconds = time.perf_counter() - t_all

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sparse_prior.json").write_text(json.dumps({"args": vars(args), "runs": runs, "seconds": seconds},
                                                      indent=1))
    sparsity = 1 - 0.8 ** args.rounds
    lines = [f"# Meta-SparseINR vs dense-narrow vs random pruning ({args.size}x{args.size} tiles, depth {args.depth})",
             "",
             f"Machine: {platform.machine()} CPU VM, {os.cpu_count()} cores, no GPU, OMP_NUM_THREADS=1, torch "
             f"{torch.__version__}; {seconds:.0f} s in all.", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/sparse_prior.py " + " ".join(sys.argv[1:]) + "`", "",
             f"MAML (K = {args.inner_steps}, alpha = {args.inner_lr}, Adam {args.meta_lr}, meta-batch "
             f"{args.meta_batch}); sparse priors: {args.steps} dense meta-steps + {args.rounds} rounds x "
             f"({math.floor(100 * 0.2)}% pruning + {retrain} meta-steps) = {total} steps, target weight sparsity "
             f"{sparsity:.3f}; dense priors: {total} meta-steps.  Fine-tuning: Adam lr {args.adam_lr} on each of "
             f"{args.tiles} held-out Kodak tiles (kodim01-04); mean per-tile PSNR (dB) after k Adam steps.", "",
             "| prior | width | parameters | weight sparsity | " + " | ".join(f"k={k}" for k in ADAM_STEPS) + " |",
             "|---|---|---|---|" + "---|" * len(ADAM_STEPS)]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['width']} | {r['params']} | {r['sparsity']:.3f} | " +
                     " | ".join(f"{r['psnr'][k]:.2f}" for k in ADAM_STEPS) + " |")
    lines.append("")
    (out / "sparse_prior.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
