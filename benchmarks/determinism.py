"""Decode the same files many times in separate processes and count the distinct outputs.

Each run is a fresh ``python`` process that decodes every file (all frames) and prints the
SHA-256 of the pixels.  Runs cycle through backends (numpy, torch) and thread counts (1, 2, 4:
``NFCODEC_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``), so one
hash per file means the decoder's output depends on the file alone.  Exits 1 otherwise.

    python benchmarks/determinism.py tests/golden/v2/*.nfc kodim05.nfc --runs 100
"""
from __future__ import annotations

import argparse
import collections
import itertools
import os
import subprocess
import sys
from pathlib import Path

CODE = """
import hashlib, sys
import numpy as np
from nfcodec.decoder import open_stream
for path in sys.argv[2:]:
    s = open_stream(open(path, "rb").read(), backend=sys.argv[1])
    h = hashlib.sha256()
    for _, frame in s.frames(range(s.header.frames)):
        h.update(np.ascontiguousarray(frame).tobytes())
    print(path, h.hexdigest())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    configs = itertools.cycle(itertools.product(("numpy", "torch"), ("1", "2", "4")))
    for run in range(args.runs):
        backend, threads = next(configs)
        env = {**os.environ, **{k: threads for k in ("NFCODEC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "MKL_NUM_THREADS")}}
        out = subprocess.run([sys.executable, "-c", CODE, backend, *args.files], capture_output=True, text=True,
                             check=True, env=env).stdout
        for line in out.splitlines():
            path, digest = line.rsplit(" ", 1)
            seen[path][digest] += 1
    ok = True
    for path, counts in seen.items():
        print(f"{Path(path).name}: {sum(counts.values())} decodes, {len(counts)} distinct output(s)"
              + ("" if len(counts) == 1 else f": {dict(counts)}"))
        ok &= len(counts) == 1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
