"""The latents of a grid file recoded with the ``arm`` context network (issue 13, sixth round).

    python benchmarks/grid_arm_recode.py FILE.nfc [--hidden 8] [--steps 400 1500 3000] [--batch 16384]

Reads the latent planes of FILE.nfc, prints the bytes of their tensor records with every entropy
model but ``arm`` (what a 2.6 encoder writes), then, for each step count, fits a fresh
:class:`nfcodec.grid_arm.ArmFitter` on them (seed 0), prints the float network's ideal bytes
(no weights, no table quantization), the records' bytes with the rounded network offered
(the network stored once; the best of F = 6, 7, 8) and the fit's seconds, and the models chosen
per level.  Run it alone on the machine for the times.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nfcodec import grid_arm
from nfcodec.bitstream import CodedTensor, decode_tensors, encode_tensors, read_container, tensor_report
from nfcodec.bitstream.headers import GridArch
from nfcodec.models.grid import latent_sizes


def latent_planes(path: str) -> list[np.ndarray]:
    """The latent planes (finest first) of the grid file at ``path``."""
    c = read_container(open(path, "rb").read())
    arch = GridArch.unpack(next(x.data for x in c.chunks if x.ctype == b"ARCH"))
    tensors = decode_tensors(next(x.data for x in c.chunks if x.ctype == b"TDAT"))
    return [tensors[l].symbols.reshape(s) for l, s in enumerate(latent_sizes(arch.height, arch.width, arch.levels))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--hidden", type=int, default=grid_arm.ARM_HIDDEN)
    ap.add_argument("--steps", type=int, nargs="+", default=[400, 1500, 3000])
    ap.add_argument("--batch", type=int, default=grid_arm.ARM_BATCH)
    args = ap.parse_args()
    grid_arm.ARM_BATCH = args.batch
    planes = latent_planes(args.file)
    base = grid_arm.arm_bytes(planes, None)
    print(f"{args.file}: latents {base} B without the network")
    x, y = grid_arm._features(planes)
    for steps in args.steps:
        fitter = grid_arm.ArmFitter(args.hidden)
        t0 = time.perf_counter()
        fitter.fit(planes, steps)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            ideal = grid_arm.laplace2_bits(fitter.net(x), y).sum().item() / 8
        net, coded = fitter.best(planes)
        payload = encode_tensors([CodedTensor(l, 0, np.asarray(q).reshape(-1), shape=q.shape) for l, q in enumerate(planes)],
                                 hints={"arm": net})
        models = [r["model"] for r in tensor_report(payload)]
        print(f"  {args.hidden} hidden, {steps} steps ({seconds:.1f} s): float ideal {ideal:.0f} B, coded {coded} B "
              f"({100 * (coded / base - 1):+.1f}%), F={net.F}, models {models}")


if __name__ == "__main__":
    main()
