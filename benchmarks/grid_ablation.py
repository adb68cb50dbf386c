"""What each training choice of the latent grid buys (issue 13): one image, fixed lambda, one
configuration per run, PSNR of the rounded latents (float synthesis), the latents' coded size
with the file's checkerboard coder, and the training time.  Run configurations one at a time
(two torch processes on 2 cores slow each other down).

    python benchmarks/grid_ablation.py ../shared/data/kodak/kodim01.png lam=0.02 grid_iters=800 \
        grid_ste_iters=200 grid_crop=0 grid_lr=0.05 [grid_head_kernel=3 grid_hidden=16,16 ...]

Appends one JSON line to benchmarks/results/grid/ablation.jsonl.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from nfcodec.archs import ARCHS
from nfcodec.bitstream import CodedTensor, encode_tensors
from nfcodec.config import get_preset
from nfcodec.grid_encoder import fit_grid
from nfcodec.media import load_image

OUT = Path(__file__).parent / "results" / "grid" / "ablation.jsonl"


def _value(key: str, text: str):
    if key == "grid_hidden":
        return tuple(int(v) for v in text.split(","))
    return int(text) if text.lstrip("-").isdigit() else float(text)


def main(argv: list[str]) -> dict:
    path, knobs = argv[0], dict(a.split("=", 1) for a in argv[1:])
    lam = float(knobs.pop("lam", 0.02))
    bpp = knobs.pop("bpp", None)
    cfg = get_preset(knobs.pop("preset", "default"), arch="grid").replace(**{k: _value(k, v) for k, v in knobs.items()})
    img = load_image(path)
    H, W = img.shape[:2]
    rec = ARCHS.by_name("grid").make_record(cfg.model, SimpleNamespace(height=H, width=W, media=0))
    t0 = time.perf_counter()
    model, fit = fit_grid(img, cfg, rec, lam=lam, target_bpp=float(bpp) if bpp else None)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        out, bits = model("hard")
    target = torch.from_numpy(img.astype(np.float32) / 127.5 - 1).reshape(-1, 3)
    psnr = 10 * math.log10(4 / float(((out.clamp(-1, 1) - target) ** 2).mean()))
    q = [np.rint(p.detach().numpy()).astype(np.int32) for p in model.latents]
    coded = len(encode_tensors([CodedTensor(i, 0, x, shape=x.shape) for i, x in enumerate(q)]))
    row = {"image": Path(path).name, "knobs": {k: v for k, v in knobs.items()}, "lambda": lam,
           "final_lambda": fit["lambda"], "psnr_float_synthesis": round(psnr, 3),
           "latent_bpp_estimated": round(float(bits) / (H * W), 4), "latent_bpp_coded": round(8 * coded / (H * W), 4),
           "level_bpp": [round(8 * len(encode_tensors([CodedTensor(0, 0, x, shape=x.shape)])) / (H * W), 4) for x in q],
           "seconds": round(seconds, 1), "iters": fit["iterations"], "threads": torch.get_num_threads(),
           "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
