#!/usr/bin/env python3
"""Issue 12: which tile size and SIREN size make the best default image prior?

For each ``TILExWIDTHxDEPTH`` config: meta-train a prior (``nfc prior train``'s code path,
``--meta-steps`` steps, GradNCP defaults) on the training split of docs/priors.md (section 8:
``../shared/data/images``, kodim07-kodim11, Big Buck Bunny frames), then encode the validation
image (kodim12: in neither the training split nor the evaluation images kodim01-kodim06) at
``--bpp`` with the fast preset from the prior at several Adam step counts, and from scratch
(the same tiled architecture, SIREN init) at the largest.  Rows go to
``benchmarks/results/priors/sizes.jsonl`` (a finished row is skipped: the run resumes).

    python benchmarks/prior_sizes.py --configs 64x16x2,64x12x3,128x24x2 --meta-steps 500 --fit-steps 300,1000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "priors"
TRAIN = [DATA / "images", *(DATA / "kodak" / f"kodim{i:02d}.png" for i in range(7, 12)), DATA / "video" / "bigbuckbunny.mp4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", type=lambda s: s.split(","), default=["64x16x2", "64x12x3", "128x24x2"])
    ap.add_argument("--meta-steps", type=int, default=500)
    ap.add_argument("--fit-steps", type=lambda s: [int(x) for x in s.split(",")], default=[300, 1000])
    ap.add_argument("--image", default="kodim12")
    ap.add_argument("--bpp", type=float, default=0.4)
    ap.add_argument("--extra", type=json.loads, default={}, help="encode knobs added to every encode (JSON)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    import nfcodec
    from nfcodec.meta import MetaConfig, train_prior

    out = OUT / "sizes.jsonl"
    done = set()
    if out.exists():
        done = {(r["config"], r["mode"], r["fit_steps"], r.get("tag", "")) for r in map(json.loads, out.read_text().splitlines())}
    image = DATA / "kodak" / f"{args.image}.png"
    for cfg in args.configs:
        tile, width, depth = (int(v) for v in cfg.split("x"))
        prior_path = OUT / "sizes" / f"prior-{cfg}-{args.meta_steps}.nfp"
        train_s = None
        if not prior_path.exists():
            prior_path.parent.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            train_prior([str(p) for p in TRAIN], prior_path,
                        MetaConfig(width=width, depth=depth, size=(tile, tile), steps=args.meta_steps, device="cpu"),
                        command=f"prior_sizes {cfg}")
            train_s = round(time.perf_counter() - t, 1)
        runs = [("prior", s, dict(prior=str(prior_path))) for s in args.fit_steps]
        runs.append(("scratch", max(args.fit_steps), dict(layout="tiles", prior="", tile=tile, width=width, depth=depth)))
        for mode, steps, kw in runs:
            if (cfg, mode, steps, args.tag) in done:
                continue
            t = time.perf_counter()
            r = nfcodec.encode(str(image), preset="fast", steps=steps, bpp=args.bpp, metadata=False, **kw, **args.extra)
            row = {"config": cfg, "mode": mode, "fit_steps": steps, "tag": args.tag, "image": args.image,
                   "meta_steps": args.meta_steps, "train_seconds": train_s, "seconds": round(time.perf_counter() - t, 1),
                   "fit_seconds": round(r.fit.seconds, 1) if r.fit is not None else None,
                   "psnr": round(r.psnr, 3), "bpp": round(r.bpp, 4), "extra": args.extra}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
