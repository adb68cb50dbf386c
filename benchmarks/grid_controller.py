"""The lambda controller of the grid fit with and without its anti-windup hold (issue 13).

    python benchmarks/grid_controller.py [--rule none --rule hold=0.01 --rule horizon=10] [--case N] [--trace T.json]

Two cases (run alone on the machine, about 8 minutes on 2 cores):
  1. kodim09 at --bpp 1.5, default preset: the case where the controller winds up (lambda driven
     11x below its start while the rate still climbs by itself), the rate overshoots and the file
     is coarsened to fit;
  2. a 256x256 crop of kodim09 at --bpp 0.5 and 1.0, fast preset: a small image far from the
     starting lambda, which the hold keeps from reaching its target.
For each: the shipped controller (hold None) and the anti-windup hold 0.01 (this script's wrapper
of ``nfcodec.grid_encoder._control``), the coded bpp, PSNR, the starting,
lowest and final lambda, the controller's last rate estimate (rounded latents, bpp) and the latent
scale delta the budget search needed.  Rows go to benchmarks/results/grid/controller.jsonl.
"""
from __future__ import annotations

import argparse
import json
import math
import os

import torch

import nfcodec
import nfcodec.grid_encoder as ge
from nfcodec.media import load_image

OUT = os.path.join(os.path.dirname(__file__), "results", "grid", "controller.jsonl")
K9 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "kodak", "kodim09.png")


def _wrap(trace: list, hold: float | None, horizon: int | None = None, up: float | None = None) -> None:
    """Wrap the shipped controller: record (estimated bpp, log lambda) at every control step and,
    with ``hold``, the anti-windup variant: keep lambda instead of lowering it while the rate
    estimate still approaches the target by more than ``hold`` (log ratio) per control step; with
    ``horizon`` the predictive variant: keep it while the rate's growth over the last control step,
    extrapolated (in log) over ``horizon`` more control steps, would reach the target by itself; with ``up`` (a ratio) the far gain also while the rate is over
    the target by more than ``up`` (instead of 1.2), so that an overshoot is pulled back sooner."""
    def control(model, flat, log_lam, target_bpp, target_psnr):
        new = _CONTROL(model, flat, log_lam, target_bpp, target_psnr)
        with torch.no_grad():
            bpp = model("hard")[1].item() / flat.shape[0]
        miss = math.log(max(bpp, 1e-4) / target_bpp)
        if hold is not None and trace and miss < 0 and miss - trace[-1][2] > hold:
            new = log_lam
        if up is not None and math.log(up) < miss <= ge.CONTROL_FAR:
            new = min(max(log_lam + ge.CONTROL_GAIN_FAR * miss, math.log(1e-6)), math.log(10.0))
        if horizon is not None and trace and miss < 0 and miss + horizon * (miss - trace[-1][2]) > 0:
            new = log_lam
        trace.append((bpp, log_lam, miss))
        return new
    ge._control = control


_CONTROL = ge._control


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rule", action="append", default=None,
                    help="controller variants to run: none, hold=0.01, horizon=10, up=1.05, horizon=10+up=1.05 (repeatable; default: none and hold=0.01)")
    ap.add_argument("--case", type=int, action="append", default=None, help="run only these cases (0, 1, 2)")
    ap.add_argument("--trace", help="also write every control step (bpp, log lambda) to this JSON file")
    args = ap.parse_args()
    rules = args.rule or ["none", "hold=0.01"]
    full = load_image(K9)
    crop = full[:256, 256:512]
    cases = [("kodim09", full, "default", 1.5), ("kodim09 crop 256", crop, "fast", 0.5), ("kodim09 crop 256", crop, "fast", 1.0)]
    traces = {}
    for i, (name, image, preset, bpp) in enumerate(cases):
        if args.case and i not in args.case:
            continue
        for rule in rules:
            opts = dict(part.partition("=")[::2] for part in rule.split("+"))
            hold = float(opts["hold"]) if "hold" in opts else None
            horizon = int(opts["horizon"]) if "horizon" in opts else None
            up = float(opts["up"]) if "up" in opts else None
            trace: list = []
            _wrap(trace, hold, horizon, up)
            r = nfcodec.encode(image, arch="grid", preset=preset, bpp=bpp)
            row = {"image": name, "preset": preset, "target": bpp, "hold": hold, "bpp": r.bpp,
                   "psnr": r.psnr, "lambda_start": math.exp(trace[0][1]), "lambda_min": math.exp(min(t[1] for t in trace)),
                   "lambda": r.rate_control["lambda"], "last_estimate_bpp": trace[-1][0],
                   "delta": r.rate_control["delta"]}
            if rule != "none":
                row["rule"] = rule
            traces[f"{name} {bpp} {rule}"] = [(round(t[0], 4), round(t[1], 4)) for t in trace]
            print(json.dumps(row), flush=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")
    ge._control = _CONTROL
    if args.trace:
        with open(args.trace, "w") as f:
            json.dump(traces, f)


if __name__ == "__main__":
    main()
