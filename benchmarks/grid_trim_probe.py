"""How a --bpp file over its budget is best trimmed (issue 13, twenty-first session).

    python benchmarks/grid_trim_probe.py --bpp 1.5 ../shared/data/kodak/kodim03.png

Fits the image at the default preset (or ``--preset``) exactly as ``nfc encode --arch grid --bpp``
does, stops just before the budget search, and codes the same fit several ways, each file decoded
exactly: the file at ``delta = 1`` (over budget or not), the latent scale search alone (``TRIM =
"delta"``, the encoder before this session), the encoder's trim (single latents moved across their
rounding boundary, nearest it first, :func:`nfcodec.grid_encoder._trim`), and with ``--orders`` the
same moves taken in other orders:

- ``second-order``: the change of the decoded image's squared error estimated at the rounded
  latents (gradient plus a Gauss-Newton diagonal from 16 random projections), per bit saved;
- ``second-order, trained side``: the same, among the moves towards the trained value's side only;
- ``distance per bit``: the distance to the rounding boundary per bit saved;
- ``distance x curvature per bit``: that distance times the Gauss-Newton diagonal, per bit saved.

Rows go to ``benchmarks/results/grid/trim.jsonl``.  Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch

import nfcodec
import nfcodec.grid_encoder as ge
from nfcodec.grid_arm import arm_step_bits
from nfcodec.media import load_image
from nfcodec.metrics import psnr

OUT = os.path.join(os.path.dirname(__file__), "results", "grid", "trim.jsonl")


def _coded(coder: Any, bits: int, image: np.ndarray, data: bytes, max_bytes: int, **extra: Any) -> dict[str, Any]:
    return {"bytes": len(data), "fill": round(len(data) / max_bytes, 4),
            "psnr": round(psnr(ge.reconstruct(data)[0], image), 3), **extra}


def _curvature(model: Any, syms: list[np.ndarray], image: np.ndarray, projections: int = 16):
    """Gradient and Gauss-Newton diagonal of the decoded squared error at the symbols (float model)."""
    target = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).reshape(-1, 3)
    qs = [torch.tensor(q, dtype=torch.float32, requires_grad=True) for q in syms]
    with torch.enable_grad():
        out = model.synthesize(model.upsample(qs))
        grad = torch.autograd.grad(((out - target) ** 2).sum(), qs, retain_graph=True)
        gen = torch.Generator().manual_seed(0)
        diag = [torch.zeros_like(q) for q in qs]
        for _ in range(projections):
            v = (torch.randint(0, 2, out.shape, generator=gen) * 2 - 1).float()
            for d, j in zip(diag, torch.autograd.grad(out, qs, grad_outputs=v, retain_graph=True)):
                d += j ** 2 / projections
    return [g.numpy().reshape(-1) for g in grad], [d.numpy().reshape(-1) for d in diag]


def _other_orders(coder: Any, model: Any, net: Any, bits: int, max_bytes: int, image: np.ndarray) -> dict[str, Any]:
    base = coder.latent_symbols(1.0)
    grad, diag = _curvature(model, base, image)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("level", "index", "step", "dd", "dr", "dist", "side", "h")}
    for l, q in enumerate(base):
        r = (coder.latents[l] - q).reshape(-1)
        for s in (1, -1):
            step = np.full(q.size, s, np.int32)
            dr = arm_step_bits(q, step.reshape(q.shape), net)
            cols["level"].append(np.full(q.size, l)), cols["index"].append(np.arange(q.size))
            cols["step"].append(step), cols["dr"].append(dr)
            cols["dd"].append(grad[l] * s + diag[l]), cols["h"].append(diag[l])
            cols["side"].append(r * s > 0), cols["dist"].append(0.5 - np.abs(r))
    c = {k: np.concatenate(v) for k, v in cols.items()}
    saves = c["dr"] < 0
    orders = {"second-order": (saves, c["dd"] / -np.minimum(c["dr"], -1e-9)),
              "second-order, trained side": (saves & c["side"], c["dd"] / -np.minimum(c["dr"], -1e-9)),
              "distance per bit": (saves & c["side"], c["dist"] / -np.minimum(c["dr"], -1e-9)),
              "distance x curvature per bit": (saves & c["side"], c["h"] * c["dist"] / -np.minimum(c["dr"], -1e-9))}
    rows = {}
    for name, (ok, score) in orders.items():
        idx = np.nonzero(ok)[0]
        idx = idx[np.argsort(score[idx], kind="stable")]
        _, first = np.unique(c["level"][idx] * 2**32 + c["index"][idx], return_index=True)   # one move per latent
        idx = idx[np.sort(first)]
        t = time.perf_counter()
        orig = ge._trim_order
        ge._trim_order = lambda coder_, net_: (c["level"][idx], c["index"][idx], c["step"][idx])
        try:
            coder.set_symbols(None)
            data = ge._trim(coder, bits, max_bytes, net)
        finally:
            ge._trim_order = orig
        rows[name] = None if data is None else _coded(coder, bits, image, data, max_bytes, moved=coder.moved(),
                                                      seconds=round(time.perf_counter() - t, 1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--bpp", type=float, required=True)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--orders", action="store_true", help="also the other orders of the moves")
    args = ap.parse_args()
    box: dict[str, Any] = {}
    fit_grid, meet = ge.fit_grid, ge._meet_budget

    def capture_fit(*a: Any, **k: Any):
        model, summary = fit_grid(*a, **k)
        box.update(model=model, net=summary["arm"].net, fit_lambda=summary["lambda"])
        return model, summary

    def capture_meet(coder: Any, bits: int, max_bytes: int, image: np.ndarray, net: Any = None):
        box.update(coder=coder, bits=bits, max_bytes=max_bytes, image=image)
        return meet(coder, bits, max_bytes, image, net)

    ge.fit_grid, ge._meet_budget = capture_fit, capture_meet
    t0 = time.perf_counter()
    result = nfcodec.encode(load_image(args.image), arch="grid", preset=args.preset, bpp=args.bpp)
    ge.fit_grid, ge._meet_budget = fit_grid, meet
    coder, bits, max_bytes, image = box["coder"], box["bits"], box["max_bytes"], box["image"]
    row: dict[str, Any] = {"image": os.path.basename(args.image), "target": args.bpp, "preset": args.preset,
                           "lambda": box["fit_lambda"], "encode_seconds": round(time.perf_counter() - t0, 1),
                           "encoder": {"bpp": result.bpp, "psnr": round(result.psnr, 3), **(result.rate_control or {})}}
    coder.set_symbols(None)
    row["delta1"] = _coded(coder, bits, image, coder.data(1.0, bits), max_bytes)
    t = time.perf_counter()
    data, delta = meet(coder, bits, max_bytes, image)          # the scale alone (no net: no moves)
    row["scale"] = _coded(coder, bits, image, data, max_bytes, delta=delta, seconds=round(time.perf_counter() - t, 1))
    if row["delta1"]["bytes"] > max_bytes:
        t = time.perf_counter()
        coder.set_symbols(None)
        data = ge._trim(coder, bits, max_bytes, box["net"])
        row["moves"] = None if data is None else _coded(coder, bits, image, data, max_bytes, moved=coder.moved(),
                                                        seconds=round(time.perf_counter() - t, 1))
        if args.orders:
            row["orders"] = _other_orders(coder, box["model"], box["net"], bits, max_bytes, image)
    print(json.dumps(row, indent=1))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
