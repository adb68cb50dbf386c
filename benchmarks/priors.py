#!/usr/bin/env python3
"""Issue 12 benchmark: encoding from a learned prior against fitting from scratch, on held-out Kodak.

Parts (each appends JSON lines to ``OUT/<part>.jsonl``; a finished (image, config) is skipped, so
a run resumes):

* ``speed``: the issue's judged pair, timed in the same run, one after the other, per image:
  ``--preset default --no-prior --bpp B`` (the scratch reference: today's default) and
  ``--preset fast --prior P --bpp B`` (and, with ``--steps``, the prior at other Adam step
  counts, to find the fewest steps that reach the reference PSNR).
* ``fit``: the tiles fit's settings (``--knobs``) from the prior on the validation image kodim12.
* ``rd``: at equal Adam steps, the prior against the same tiled architecture fitted from scratch
  (SIREN init) at several rates (``--rates``): BD-rate of prior vs scratch per image.

The prior's training images never include the images measured here (the default prior is
trained on kodim07-kodim12 and ``../shared/data/images``, docs/priors.md); use kodim01-kodim06.

    python benchmarks/priors.py --part speed --images kodim01,kodim02 --bpp 0.4
    python benchmarks/priors.py --part rd --images kodim01,kodim02 --rates 0.2,0.4,0.8 --steps 2000
    python benchmarks/priors.py --part fit --images kodim12 --knobs '[{"tile_steps": 1000}, {"tile_steps": 3000}]'
    python benchmarks/priors.py --summary

Numbers go to docs/benchmarks.md ("Fast encoding from learned priors (issue 12)").
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


def _load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _encode(image: Path, **kw) -> dict:
    import nfcodec

    t = time.perf_counter()
    r = nfcodec.encode(str(image), **kw)
    return {"seconds": round(time.perf_counter() - t, 2), "psnr": round(r.psnr, 4), "bpp": round(r.bpp, 5),
            "bytes": len(r.data)}


def speed(args: argparse.Namespace) -> None:
    out = OUT / "speed.jsonl"
    done = {(r["image"], r["config"]) for r in _load(out)}
    for name in args.images:
        image = DATA / "kodak" / f"{name}.png"
        runs = [("scratch-default", dict(preset="default", bpp=args.bpp))]
        for steps in args.steps or [0]:
            kw = dict(preset="fast", prior=args.prior, bpp=args.bpp)
            if steps:
                kw["tile_steps"] = steps
            runs.append((f"prior-fast{'-%d' % steps if steps else ''}", kw))
        for label, kw in runs:
            if (name, label) in done:
                continue
            row = {"image": name, "config": label, "target_bpp": args.bpp, **_encode(image, **kw)}
            _append(out, row)


def rd(args: argparse.Namespace) -> None:
    from nfcodec.priors import load_prior

    out = OUT / "rd.jsonl"
    done = {(r["image"], r["config"], r["target_bpp"]) for r in _load(out)}
    prior = load_prior(args.prior if args.prior != "default" else "default-image")
    rec = prior.record
    for name in args.images:
        image = DATA / "kodak" / f"{name}.png"
        for bpp in args.rates:
            for label, kw in (("prior", dict(prior=args.prior)),
                              ("scratch", dict(layout="tiles", prior="", tile=prior.size[1], width=rec.width,
                                               depth=rec.depth, lr=args.scratch_lr))):
                if (name, label, bpp) in done:
                    continue
                row = {"image": name, "config": label, "target_bpp": bpp, "steps": args.steps[0],
                       **_encode(image, preset="fast", tile_steps=args.steps[0], bpp=bpp, **kw)}
                _append(out, row)


def fit(args: argparse.Namespace) -> None:
    """The tiles fit's settings from the prior on the validation image (kodim12: neither trained on
    nor evaluated), one JSON knob set per ``--knobs`` entry, at ``--bpp``."""
    out = OUT / "fit.jsonl"
    done = {(r["image"], json.dumps(r["knobs"], sort_keys=True)) for r in _load(out)}
    for name in args.images:
        image = DATA / "kodak" / f"{name}.png"
        for knobs in args.knobs:
            if (name, json.dumps(knobs, sort_keys=True)) in done:
                continue
            kw = {"preset": "fast", "prior": args.prior, "bpp": args.bpp, **knobs}
            _append(out, {"image": name, "knobs": knobs, "target_bpp": args.bpp, **_encode(image, **kw)})


def summary(args: argparse.Namespace) -> None:
    from nfcodec.bdrate import bd_rate

    rows = _load(OUT / "speed.jsonl")
    if rows:
        print("| image | config | bpp | PSNR (dB) | encode (s) | time vs scratch | PSNR vs scratch |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for name in dict.fromkeys(r["image"] for r in rows):
            ref = next((r for r in rows if r["image"] == name and r["config"] == "scratch-default"), None)
            for r in (r for r in rows if r["image"] == name):
                rel = f"{r['seconds'] / ref['seconds']:.0%}" if ref else ""
                dp = f"{r['psnr'] - ref['psnr']:+.2f}" if ref else ""
                print(f"| {name} | {r['config']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['seconds']:.1f} | {rel} | {dp} |")
    rows = _load(OUT / "fit.jsonl")
    if rows:
        print("\n| image | tiles fit settings | bpp | PSNR (dB) | encode (s) |")
        print("|---|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['image']} | `{json.dumps(r['knobs'])}` | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['seconds']:.1f} |")
    rows = _load(OUT / "rd.jsonl")
    if rows:
        print("\n| image | BD-rate prior vs scratch (equal steps) | points |")
        print("|---|---:|---|")
        vals = []
        for name in dict.fromkeys(r["image"] for r in rows):
            a = sorted((r["bpp"], r["psnr"]) for r in rows if r["image"] == name and r["config"] == "scratch")
            b = sorted((r["bpp"], r["psnr"]) for r in rows if r["image"] == name and r["config"] == "prior")
            if len(a) < 2 or len(b) < 2:
                continue
            res = bd_rate([x for x, _ in a], [y for _, y in a], [x for x, _ in b], [y for _, y in b])
            vals.append(res.value)
            pts = "; ".join(f"{x:.3f}/{y:.2f} vs {u:.3f}/{v:.2f}" for (x, y), (u, v) in zip(b, a))
            print(f"| {name} | {res.value:+.1f}% | prior vs scratch bpp/PSNR: {pts} |")
        good = [v for v in vals if not math.isnan(v)]
        if good:
            print(f"| mean | {sum(good) / len(good):+.1f}% | |")
        _plot(rows)


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["image"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for label, style in (("prior", "o-"), ("scratch", "s--")):
            pts = sorted((r["bpp"], r["psnr"]) for r in rows if r["image"] == name and r["config"] == label)
            if pts:
                ax.plot(*zip(*pts), style, label=label)
        ax.set_title(name)
        ax.set_xlabel("bpp")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "rd.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["speed", "rd", "fit"])
    ap.add_argument("--knobs", type=json.loads, default=[{}],
                    help='--part fit: a JSON list of knob sets, e.g. \'[{"tile_steps": 2000}]\'')
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--images", type=lambda s: s.split(","), default=["kodim01", "kodim02"])
    ap.add_argument("--prior", default="default")
    ap.add_argument("--bpp", type=float, default=0.4)
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[0.2, 0.3, 0.4, 0.6])
    ap.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--scratch-lr", type=float, default=2e-3)
    args = ap.parse_args()
    if args.part == "speed":
        speed(args)
    elif args.part == "rd":
        args.steps = args.steps or [300]
        rd(args)
    elif args.part == "fit":
        fit(args)
    if args.summary:
        summary(args)


if __name__ == "__main__":
    main()
