#!/usr/bin/env python3
"""Long structure-aware fuzz run of the ``.nfc`` decoder (the harness is ``tests/nfc_fuzz.py``).

Generates ``--cases`` mutated files from the golden seed files (every architecture x
representation of format 2.0, and the two format 1.0 files), decodes each in a memory-capped
worker subprocess with ``probe``, the numpy and torch backends (first two frames) and, for images,
``nfcodec.decode``, and prints / writes the figures: cases per seed file and per mutation kind, the
outcome histogram (pixels, each typed error class, failures), wall time, peak memory of the
workers (``ru_maxrss``), the slowest case and the case that grew the worker's memory most.

Every failing input is saved under ``--failures-dir`` (``<case>-<seed file>-<kind>.nfc`` with a
``.json`` beside it: the mutation steps, the exception, its traceback and the shortest reproduction
command).  The exit status is 1 if any failure occurred, else 0.

    .venv/bin/python benchmarks/fuzz.py --cases 5000 --seed 1 --out results.json

See the docstring of ``tests/nfc_fuzz.py`` for what is mutated, how outcomes are classified, and
why the defaults are a 4 GiB address-space cap and a 20 s timeout per operation.  ``--frame-macs``,
``--frame-pixels`` and ``--big-share`` set how costly the coherent ``rearch`` geometries may be (a
``big`` case is sized to 20-100 % of the decoder's own per-frame work limit, 2**38, which can take
tens of seconds: such cases show what the default limits let through, and may time out).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import nfc_fuzz  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=5000, help="number of cases (default 5000)")
    ap.add_argument("--seed", type=int, default=1, help="campaign seed: case i of seed s is always the same file")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    ap.add_argument("--failures-dir", type=Path, default=Path("/tmp/fuzz-failures"),
                    help="folder for failing inputs (default /tmp/fuzz-failures)")
    ap.add_argument("--timeout", type=float, default=nfc_fuzz.DEFAULT_TIMEOUT,
                    help="timeout of each operation of a case (a probe, one backend's decode), seconds")
    ap.add_argument("--mem-cap-gib", type=float, default=nfc_fuzz.DEFAULT_MEM_CAP / 2**30,
                    help="RLIMIT_AS of the worker, GiB (default 4)")
    ap.add_argument("--frame-macs", type=int, default=nfc_fuzz.Budget().frame_macs,
                    help="work (multiply-add equivalents) per frame of a coherent (rearch) geometry (default 2**28)")
    ap.add_argument("--frame-pixels", type=int, default=nfc_fuzz.Budget().frame_pixels,
                    help="pixels per frame of a coherent (rearch) geometry (default 2**20)")
    ap.add_argument("--big-share", type=float, default=0.02,
                    help="share of rearch cases allowed up to the decoder's limit, 2**38 (default 0.02)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)

    budget = nfc_fuzz.Budget(frame_macs=args.frame_macs, frame_pixels=args.frame_pixels, big_share=args.big_share)
    t0 = time.monotonic()
    every = max(1, args.cases // 20)

    def progress(i: int, rec: dict) -> None:
        if rec["outcome"].startswith("FAIL"):
            print(f"  [{i + 1}/{args.cases}] {rec['case']} {rec['seed_file']}: {rec['outcome']} "
                  f"({' | '.join(rec['steps'])})", flush=True)
        elif not args.quiet and (i + 1) % every == 0:
            print(f"  [{i + 1}/{args.cases}] {time.monotonic() - t0:.0f} s", flush=True)

    report = nfc_fuzz.run_campaign(args.cases, args.seed, timeout=args.timeout,
                                   mem_cap=int(args.mem_cap_gib * 2**30), budget=budget, progress=progress,
                                   failures_dir=args.failures_dir)
    print(nfc_fuzz.format_report(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2, default=str))
        print(f"report written to {args.out}")
    return 1 if report["n_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
