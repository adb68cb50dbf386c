"""Recode the latent planes of grid files with each plane entropy model (issue 13, format 2.5).

    python benchmarks/grid_context.py FILE.nfc [FILE.nfc ...]

For every latent level of every file: the bytes its record has in the file, and the bytes of the
same symbols recoded with ``checkerboard`` (model 4) and ``causal`` (model 5), plus the empirical
conditional entropy of the causal residuals (the bound a perfect table per bin would reach).
No training: this isolates the context model from what training does with it.
"""
from __future__ import annotations

import sys

import numpy as np

from nfcodec.bitstream import CodedTensor, decode_tensors, encode_tensors, read_container, tensor_report
from nfcodec.bitstream.causal import _least_squares, causal_context
from nfcodec.bitstream.headers import GridArch
from nfcodec.models.grid import latent_sizes


def _entropy_bytes(residuals: np.ndarray, bins: np.ndarray) -> float:
    bits = 0.0
    for b in np.unique(bins):
        _, counts = np.unique(residuals[bins == b], return_counts=True)
        bits -= float((counts * np.log2(counts / counts.sum())).sum())
    return bits / 8


def main(paths: list[str]) -> None:
    print("| file | level | plane | in file (B) | checkerboard (B) | causal (B) | causal4 (B) | causal bound (B) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        totals = np.zeros(5)
        c = read_container(open(path, "rb").read())
        arch = GridArch.unpack(next(x.data for x in c.chunks if x.ctype == b"ARCH"))
        tdat = next(x.data for x in c.chunks if x.ctype == b"TDAT")
        tensors, report = decode_tensors(tdat), tensor_report(tdat)
        for level, (h, w) in enumerate(latent_sizes(arch.height, arch.width, arch.levels)):
            q = tensors[level].symbols
            if not q.any():
                continue
            row = [report[level]["param_bytes"] + report[level]["word_bytes"]]
            for model in ("checkerboard", "causal", "causal4"):
                try:
                    row.append(len(encode_tensors([CodedTensor(0, 0, q, shape=(h, w))], models=[model])))
                except ValueError:          # the model cannot code this plane (too small)
                    row.append(float("nan"))
            planes = q.reshape(1, h, w).astype(np.int64)
            mu, bins = causal_context(planes, _least_squares(planes), 16)
            row.append(_entropy_bytes((planes - mu).reshape(-1), bins.reshape(-1)))
            totals += np.nan_to_num(row)
            print(f"| {path} | {level} | {h}x{w} | " + " | ".join(f"{v:.0f}" for v in row) + " |")
        print(f"| {path} | all | | " + " | ".join(f"**{v:.0f}**" for v in totals) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
