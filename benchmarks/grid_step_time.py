"""Seconds per training step of the latent grid on a 768x512 image (issue 13): the per-pixel RGB
layer against a k x k head, whole-image steps, same loop as ``nfcodec.grid_encoder.fit_grid``.

    python benchmarks/grid_step_time.py [--steps 30] [--hidden 16,16] [--kernels 1,3]

Run it alone on the machine (2 cores): another torch process slows it several times.  The first
5 steps of each configuration are a warm-up and not timed; the configurations alternate, step
block by step block, so that a drift of the machine hits both.
"""
from __future__ import annotations

import argparse
import time

import torch

from nfcodec.models.grid import GridField


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", default="16,16")
    ap.add_argument("--kernels", default="1,3")
    ap.add_argument("--size", default="768x512")
    args = ap.parse_args()
    W, H = (int(v) for v in args.size.split("x"))
    hidden = tuple(int(v) for v in args.hidden.split(","))
    torch.manual_seed(0)
    target = torch.rand(H * W, 3) * 2 - 1
    runs = {}
    for k in (int(v) for v in args.kernels.split(",")):
        model = GridField(H, W, 7, hidden, k)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        runs[k] = (model, opt, [])

    def step(model, opt) -> None:
        out, bits = model("noise")
        loss = torch.mean((out - target) ** 2) + 0.003 * bits / target.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for model, opt, _ in runs.values():
        for _ in range(5):
            step(model, opt)
    for _ in range(args.steps // 5):
        for model, opt, times in runs.values():
            t0 = time.perf_counter()
            for _ in range(5):
                step(model, opt)
            times.append((time.perf_counter() - t0) / 5)
    print(f"{W}x{H}, hidden {hidden}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for k, (_, _, times) in runs.items():
        times.sort()
        print(f"head {k}x{k}: {times[len(times) // 2]:.3f} s per step (median of {len(times)} blocks of 5; "
              f"min {times[0]:.3f}, max {times[-1]:.3f})")


if __name__ == "__main__":
    main()
