#!/usr/bin/env python3
"""Do the XFRM transforms (random pixel permutation, gamma darkening) speed up SIREN fitting?

Reproduces the question of "In Search of a Data Transformation that Accelerates Neural Field
Training" (random permutation: 1.27x fewer steps for SIREN at full batch; darkening gamma: 1.44x
at the paper's gamma 1/2 i.e. our exponent 2.0, measured on the *transformed* signal) with
nfcodec's own SIREN, and measures what the codec cares about: the PSNR of
``inverse(uint8 render)`` against the *original* 8-bit pixels.

Suites (centre crops of Kodak images, to keep the CPU time low):

* ``paper``: 64x64 crops, SIREN width 64 depth 5 (17,027 parameters for 12,288 values: over-
  parameterized like the paper's networks), full batch, constant Adam rate, 1500 steps.
* ``codec-full``: 128x128 crops, SIREN width 32 depth 4 (3,363 parameters for 49,152 values:
  a compressing network, as in the codec), full batch, constant Adam rate, 1000 steps.
* ``codec-mb``: one 256x256 crop, the encoder's default SIREN (width 64, depth 5) and minibatch
  (16,384 random pixels per step, epochs of a random order) and schedule (Adam 2e-3, 50 warm-up
  steps, cosine to 5%), 1000 steps.

Before ``paper`` and ``codec-full`` a short rate sweep (first image, 300 steps, rates 5e-4,
1e-3, 2e-3) picks each transform's Adam rate by its PSNR at the last step, as the paper tunes
the rate per transform.  PSNR is recorded every step (full batch: from the forward pass of that
step, i.e. the model after that many updates) or every 25 steps (minibatch: a full render).

    OMP_NUM_THREADS=1 python benchmarks/transforms.py            # ~15 minutes on one CPU core
    python benchmarks/transforms.py --quick                      # a smoke run (seconds)

The equal-rate controls (one Adam rate for every transform, no sweep; results/transforms/*-equal-*):

    OMP_NUM_THREADS=1 python benchmarks/transforms.py --suites paper --lr 0.001 \
        --transforms identity,permute:1 --no-caps --out benchmarks/results/transforms/paper-equal-lr1e-3
    OMP_NUM_THREADS=1 python benchmarks/transforms.py --suites codec-full --lr 0.002 \
        --transforms identity,gamma:1500,gamma:2000 --no-caps --out benchmarks/results/transforms/codec-full-equal-lr2e-3

Writes ``runs.csv`` (one row per fit), ``curves.csv`` (PSNR every 10 steps), ``lr_sweep.csv``,
``gamma_caps.csv`` and ``results.md`` under ``--out`` (default benchmarks/results/transforms).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nfcodec import transforms as T
from nfcodec.models.siren import Siren
from nfcodec.render import image_coords

ROOT = Path(__file__).resolve().parents[1]
KODAK = Path("/work/shared/data/kodak")

TRANSFORM_SET = [("identity", 0), ("permute", 1), ("gamma", 1500), ("gamma", 2000)]
SWEEP_SET = [("identity", 0), ("permute", 1), ("gamma", 2000)]
LRS = (5e-4, 1e-3, 2e-3)


def label(name: str, param: int) -> str:
    return {"identity": "identity", "permute": f"permute(seed {param})"}.get(name, f"gamma {param / 1000:g}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def crop(path: Path, size: int) -> np.ndarray:
    img = np.asarray(Image.open(path).convert("RGB"))
    h, w = img.shape[:2]
    t, l = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[t:t + size, l:l + size])


def to_u8(pred: torch.Tensor) -> np.ndarray:
    return torch.round((pred.detach() + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8).numpy()


class Run:
    """One fit of a transformed image; PSNRs measured on the inverse against the original."""

    def __init__(self, image: np.ndarray, name: str, param: int) -> None:
        self.image, self.h, self.w = image, image.shape[0], image.shape[1]
        self.rec = T.record_for(name, param)
        self.target_u8 = T.apply_forward(image, self.rec)
        self.target = torch.from_numpy(self.target_u8.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0)
        self.coords = image_coords(self.h, self.w)

    def measure(self, pred_u8_flat: np.ndarray) -> tuple[float, float]:
        """(PSNR of the inverse vs the original, PSNR vs the transformed target)."""
        fitted = pred_u8_flat.reshape(self.h, self.w, 3)
        return psnr(T.apply_inverse(fitted, self.rec), self.image), psnr(fitted, self.target_u8)


def fit_full(run: Run, width: int, depth: int, lr: float, steps: int, seed: int = 0) -> tuple[list, list]:
    """Full-batch Adam at a constant rate; PSNR (original, transformed) after 0..steps updates."""
    model = Siren(2, 3, width, depth).init_weights_(torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    orig, trans = [], []
    for _ in range(steps):
        pred = model(run.coords)
        o, t = run.measure(to_u8(pred))
        orig.append(o)
        trans.append(t)
        loss = torch.mean((pred - run.target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        o, t = run.measure(to_u8(model(run.coords)))
    orig.append(o)
    trans.append(t)
    return orig, trans


def encoder_lr(step: int, lr: float, steps: int, warmup: int = 50, final: float = 0.05) -> float:
    """nfcodec.fit's schedule: linear warm-up then cosine decay to lr * final."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * final + 0.5 * (lr - lr * final) * (1 + math.cos(math.pi * min(1.0, t)))


def fit_minibatch(run: Run, width: int, depth: int, lr: float, steps: int, batch: int, every: int,
                  seed: int = 0) -> dict[int, tuple[float, float]]:
    model = Siren(2, 3, width, depth).init_weights_(torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = run.coords.shape[0]
    perm, pos = None, n
    out = {}

    def evaluate(step: int) -> None:
        with torch.no_grad():
            out[step] = run.measure(to_u8(model(run.coords)))

    for step in range(steps):
        if step % every == 0:
            evaluate(step)
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + batch]
        pos += batch
        for g in opt.param_groups:
            g["lr"] = encoder_lr(step, lr, steps)
        loss = torch.mean((model(run.coords[idx]) - run.target[idx]) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    evaluate(steps)
    return out


def first_reach(curve: dict[int, float], threshold: float) -> int | None:
    for step in sorted(curve):
        if curve[step] >= threshold:
            return step
    return None


def gmean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=KODAK)
    ap.add_argument("--images", default="1,2,3,4", help="Kodak image numbers (default: the first four)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transforms")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (does not overwrite unless --out given)")
    ap.add_argument("--suites", default="paper,codec-full,codec-mb")
    ap.add_argument("--lr", type=float, default=0.0,
                    help="one Adam rate for every transform (no sweep; the equal-rate controls)")
    ap.add_argument("--transforms", default="", help="e.g. identity,permute:1,gamma:1500 (default: all four)")
    ap.add_argument("--no-caps", action="store_true", help="skip the gamma round-trip caps")
    args = ap.parse_args()
    transform_set = TRANSFORM_SET
    if args.transforms:
        transform_set = [(t.split(":")[0], int(t.split(":")[1]) if ":" in t else 0) for t in args.transforms.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    images = [args.kodak / f"kodim{int(i):02d}.png" for i in args.images.split(",")]
    suites = args.suites.split(",")
    q = args.quick
    if q and args.out == ap.get_default("out"):
        args.out = Path("/tmp/nfcodec-transforms-quick")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    # ------------------------------------------------------------------ round-trip caps of gamma
    caps = []
    for p in (() if args.no_caps else (1500, 2000, 3000, 4000)):
        vals = []
        for path in sorted(args.kodak.glob("kodim*.png")):
            img = np.asarray(Image.open(path).convert("RGB"))
            rec = T.record_for("gamma", p)
            vals.append(psnr(T.apply_inverse(T.apply_forward(img, rec), rec), img))
        err = T.gamma_roundtrip_error(p)
        caps.append({"gamma": p / 1000, "max_abs_err": int(np.abs(err).max()),
                     "uniform_psnr": round(psnr(T.gamma_tables(p)[1][T.gamma_tables(p)[0]], np.arange(256)), 2),
                     "kodak_mean_psnr": round(float(np.mean(vals)), 2), "kodak_min_psnr": round(float(np.min(vals)), 2),
                     "images": len(vals)})
        print("gamma cap", caps[-1], flush=True)

    suite_cfg = {
        "paper": dict(size=64, width=64, depth=5, steps=1500, thresholds=(30, 40, 45, 50), checkpoints=(100, 200, 500, 1000, 1500)),
        "codec-full": dict(size=128, width=32, depth=4, steps=1000, thresholds=(20, 22, 25, 28), checkpoints=(100, 200, 500, 1000)),
        "codec-mb": dict(size=256, width=64, depth=5, steps=1000, thresholds=(20, 22, 25, 28), checkpoints=(100, 200, 500, 1000),
                         batch=16384, lr=2e-3, every=25),
    }
    if q:
        for c in suite_cfg.values():
            c.update(size=min(c["size"], 32), steps=60, checkpoints=(20, 60))
        suite_cfg["codec-mb"].update(batch=256, every=10)

    sweep_rows, run_rows, curve_rows = [], [], []
    for suite in suites:
        cfg = suite_cfg[suite]
        lrs: dict[tuple[str, int], float] = {}
        if args.lr:
            lrs = {t: args.lr for t in transform_set}
        elif suite != "codec-mb":
            sweep_steps = 20 if q else 300
            img = crop(images[0], cfg["size"])
            for name, param in SWEEP_SET:
                best = None
                for lr in LRS:
                    t0 = time.time()
                    orig, _ = fit_full(Run(img, name, param), cfg["width"], cfg["depth"], lr, sweep_steps)
                    sweep_rows.append({"suite": suite, "image": images[0].name, "transform": label(name, param),
                                       "lr": lr, "steps": sweep_steps, "psnr": round(orig[-1], 3)})
                    print(f"[{suite} sweep] {label(name, param)} lr={lr}: {orig[-1]:.2f} dB ({time.time() - t0:.0f}s)", flush=True)
                    if best is None or orig[-1] > best[1]:
                        best = (lr, orig[-1])
                lrs[(name, param)] = best[0]
            lrs[("gamma", 1500)] = lrs[("gamma", 2000)]
        for path in (images[:1] if suite == "codec-mb" else images):
            img = crop(path, cfg["size"])
            for name, param in transform_set:
                if suite == "codec-mb" and (name, param) == ("gamma", 1500) and not args.transforms:
                    continue
                run = Run(img, name, param)
                t0 = time.time()
                if suite == "codec-mb":
                    lr = args.lr or cfg["lr"]
                    pts = fit_minibatch(run, cfg["width"], cfg["depth"], lr, cfg["steps"], cfg["batch"], cfg["every"])
                    curve = {s: v[0] for s, v in pts.items()}
                    tcurve = {s: v[1] for s, v in pts.items()}
                else:
                    lr = lrs[(name, param)]
                    orig, trans = fit_full(run, cfg["width"], cfg["depth"], lr, cfg["steps"])
                    curve, tcurve = dict(enumerate(orig)), dict(enumerate(trans))
                wall = time.time() - t0
                row = {"suite": suite, "image": path.name, "crop": cfg["size"], "width": cfg["width"],
                       "depth": cfg["depth"], "batch": cfg.get("batch", cfg["size"] ** 2), "transform": label(name, param),
                       "lr": lr, "wall_s": round(wall, 1)}
                for s in cfg["checkpoints"]:
                    row[f"psnr@{s}"] = round(curve[s], 2)
                row["transformed_psnr@end"] = round(tcurve[cfg["steps"]], 2)
                for th in cfg["thresholds"]:
                    row[f"steps_to_{th}dB"] = first_reach(curve, th)
                run_rows.append(row)
                for s in sorted(curve):
                    if s % 10 == 0 or s == cfg["steps"]:
                        curve_rows.append({"suite": suite, "image": path.name, "transform": label(name, param),
                                           "step": s, "psnr": round(curve[s], 3), "transformed_psnr": round(tcurve[s], 3)})
                print(f"[{suite}] {path.name} {label(name, param)} lr={lr}: " +
                      " ".join(f"{k}={v}" for k, v in row.items() if k.startswith(("psnr@", "steps_to"))) +
                      f" ({wall:.0f}s)", flush=True)

    def write_csv(name: str, rows: list[dict]) -> None:
        if not rows:
            return
        with open(args.out / name, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            wr.writeheader()
            wr.writerows(rows)

    write_csv("runs.csv", run_rows)
    write_csv("curves.csv", curve_rows)
    write_csv("lr_sweep.csv", sweep_rows)
    write_csv("gamma_caps.csv", caps)

    # ------------------------------------------------------------------------------- markdown
    total = time.time() - t_start
    lines = ["# XFRM transforms: steps-to-PSNR (benchmarks/transforms.py)", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/transforms.py " +
             " ".join(sys.argv[1:]) + "`" + (f" (one Adam rate {args.lr:g} for every transform)" if args.lr else ""), "",
             f"Machine: {platform.machine()} {platform.processor() or ''} CPU VM, {os.cpu_count()} cores, no GPU; "
             f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} "
             f"(another job shared the 2 cores, so wall times are indicative only; PSNRs do not depend on load). "
             f"Total {total / 60:.1f} min.", "",
             f"Images: {', '.join(p.name for p in images)} (centre crops). PSNR: inverse(uint8 render) vs the original "
             "8-bit crop unless said otherwise. Speedup: steps for identity / steps for the transform to reach "
             "the threshold (geometric mean over images where both reach it, n = that count; a count of 0 steps counts as 1).", ""]
    for suite in suites:
        cfg = suite_cfg[suite]
        rows = [r for r in run_rows if r["suite"] == suite]
        if not rows:
            continue
        lines += [f"## {suite}: {cfg['size']}x{cfg['size']} crops, SIREN {cfg['width']}x{cfg['depth']}, "
                  f"batch {rows[0]['batch']}, {cfg['steps']} steps", ""]
        names = list(dict.fromkeys(r["transform"] for r in rows))
        cps = [f"psnr@{s}" for s in cfg["checkpoints"]]
        ths = [f"steps_to_{t}dB" for t in cfg["thresholds"]]
        lines += ["| transform | lr | " + " | ".join(c.replace("psnr@", "PSNR@") for c in cps) +
                  " | transformed PSNR@end | " + " | ".join(f"speedup to {t} dB" for t in cfg["thresholds"]) + " |",
                  "|---" * (3 + len(cps) + len(ths)) + "|"]
        for nm in names:
            rs = [r for r in rows if r["transform"] == nm]
            base = {r["image"]: r for r in rows if r["transform"] == "identity"}
            cells = [nm, f"{rs[0]['lr']:g}"]
            cells += [f"{np.mean([r[c] for r in rs]):.2f}" for c in cps]
            cells.append(f"{np.mean([r['transformed_psnr@end'] for r in rs]):.2f}")
            for th in ths:
                ratios = [max(base[r["image"]][th], 1) / max(r[th], 1) for r in rs
                          if r[th] is not None and base.get(r["image"]) and base[r["image"]][th] is not None]
                missed = sum(1 for r in rs if r[th] is None)
                cells.append(f"{gmean(ratios):.2f}x (n={len(ratios)})" if ratios else f"never (0/{len(rs)})")
                if ratios and missed:
                    cells[-1] += f", {missed} never"
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Per image (steps to thresholds; `-` = not reached):", "",
                  "| image | transform | " + " | ".join(c.replace("psnr@", "PSNR@") for c in cps) + " | " +
                  " | ".join(f"{t} dB" for t in cfg["thresholds"]) + " |", "|---" * (2 + len(cps) + len(ths)) + "|"]
        for r in rows:
            lines.append(f"| {r['image']} | {r['transform']} | " + " | ".join(f"{r[c]:.2f}" for c in cps) + " | " +
                         " | ".join(str(r[t]) if r[t] is not None else "-" for t in ths) + " |")
        lines.append("")
    if sweep_rows:
        lines += ["## Rate sweep (first image, PSNR at the last sweep step)", "", "| suite | transform | lr | PSNR |",
                  "|---|---|---|---|"]
        lines += [f"| {r['suite']} | {r['transform']} | {r['lr']:g} | {r['psnr']:.2f} |" for r in sweep_rows]
        lines.append("")
    if caps:
        lines += ["## Round-trip cap of gamma (a perfect fit of the transformed image)", "",
                  f"| gamma | max abs error | PSNR, uniform samples | Kodak mean PSNR ({caps[0]['images']} full images) "
                  "| Kodak min |", "|---|---|---|---|---|"]
        lines += [f"| {c['gamma']:g} | {c['max_abs_err']} | {c['uniform_psnr']:.2f} | {c['kodak_mean_psnr']:.2f} | "
                  f"{c['kodak_min_psnr']:.2f} |" for c in caps]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
