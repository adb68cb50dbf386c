"""Decoder speed: the format-1.0 float32 renderer ("before") vs the exact backends ("after").

For each ``.nfc`` file (format 2.0) this times, on the same weights:

* **whole process**: ``nfc decode FILE -o OUT`` run ``--runs`` times in fresh processes (median,
  min, max wall seconds), with ``--backend numpy``, ``--backend torch`` and, as "before", the
  same bytes relabelled format 1.0 (the float32 torch renderer all files used before issue 9);
* **per frame**: the render time of one frame inside a warm process (median over
  ``--frames`` frames after one warm-up frame), for the same three renderers.

``--synth-nerv PRESET:WxH:T`` first writes a NeRV file of a video preset for a WxH clip of T
frames with randomly initialised weights quantized at 8 bits (training a 720p NeRV on this CPU
takes hours; speed depends on the sizes, and only the float32-GEMM shortcut on the weights).

    python benchmarks/decode_speed.py kodim.nfc --runs 7
    python benchmarks/decode_speed.py --synth-nerv default:1280x720:132 --synth-nerv fast:1280x720:132 --frames 6

Take timings alone on the machine (two processes on 2 cores slow each other down).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def as_v1(data: bytes) -> bytes:
    return data[:8] + bytes((1, 0)) + data[10:]


def synth_nerv(spec: str, folder: Path) -> Path:
    """A NeRV file of a video preset with random initial weights (8-bit steps)."""
    import numpy as np
    import torch

    from nfcodec.archs import ARCHS
    from nfcodec.bitstream import Chunk, StreamHeader, write_container
    from nfcodec.config import get_preset
    from nfcodec.fit import choose_steps
    from nfcodec.variants import REPRESENTATIONS

    preset, size, frames = spec.split(":")
    w, h = map(int, size.split("x"))
    header = StreamHeader(media=1, width=w, height=h, frames=int(frames), fps_num=25, fps_den=1, channels=3,
                          bit_depth=8, colorspace=0, arch=1, representation=0, layout=0, n_segments=1)
    arch = ARCHS.by_name("nerv")
    record = arch.make_record(get_preset(preset, video=True).model, header)
    model = arch.build(record).init_weights_(torch.Generator().manual_seed(0))
    steps = choose_steps(list(model.parameters()), 8)
    chunks = REPRESENTATIONS.by_name("dense").export(model, steps)
    data = write_container([Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", record.pack()), *chunks,
                            Chunk(b"NEND", b"")])
    path = folder / f"nerv-{preset}-{w}x{h}-{frames}.nfc"
    path.write_bytes(data)
    del np
    return path


def whole_process(path: Path, backend: str, frames: str | None, runs: int, folder: Path) -> dict:
    info = __import__("nfcodec").probe(path)
    out = folder / ("out.mkv" if info.header.media == 1 else "out.png")
    cmd = [sys.executable, "-c", "from nfcodec.cli.main import main; main()", "decode", str(path), "-o", str(out),
           "-f", "-q", "--backend", backend]
    if frames and info.header.media == 1:
        cmd += ["--frames", frames]
    times = []
    for _ in range(runs + 1):                    # the first run warms the page cache
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    t = times[1:]
    return {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)}


def per_frame(path: Path, backend: str, frames: int) -> float:
    code = ("import sys, time, statistics; from nfcodec.decoder import open_stream\n"
            "s = open_stream(open(sys.argv[1], 'rb').read(), backend=sys.argv[2])\n"
            "n = int(sys.argv[3]); ks = [k % s.header.frames for k in range(n + 1)]; ts = []\n"
            "t = time.perf_counter()\n"
            "for k, f in s.frames(ks):\n"
            "    now = time.perf_counter(); ts.append(now - t); t = now\n"
            "print(statistics.median(ts[1:] or ts))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path), backend, str(frames)], check=True, cwd=ROOT,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--synth-nerv", action="append", default=[], metavar="PRESET:WxH:T")
    ap.add_argument("--runs", type=int, default=5, help="whole-process runs per renderer (after one warm-up)")
    ap.add_argument("--frames", type=int, default=4, help="frames timed per renderer (videos); whole-process "
                                                          "video decodes write this many frames")
    ap.add_argument("--out", type=Path, help="JSONL results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = list(args.files) + [synth_nerv(s, folder) for s in args.synth_nerv]
        rows = []
        for path in files:
            v1 = folder / f"{path.stem}-as-v1.0.nfc"
            v1.write_bytes(as_v1(path.read_bytes()))
            row = {"file": path.name, "bytes": path.stat().st_size}
            sel = f"0:{args.frames}"
            for name, target, backend in (("float32 (format 1.0 renderer)", v1, "torch"),
                                          ("exact numpy", path, "numpy"), ("exact torch", path, "torch")):
                row[name] = {"process": whole_process(target, backend, sel, args.runs, folder),
                             "frame_s": per_frame(target, backend, args.frames)}
                p = row[name]["process"]
                print(f"{path.name:>40} {name:>30}: process {p['median_s']:.3f} s (min {p['min_s']:.3f}, max "
                      f"{p['max_s']:.3f}), one frame {row[name]['frame_s']:.3f} s", flush=True)
            rows.append(row)
        if args.out:
            with args.out.open("a") as f:
                for row in rows:
                    f.write(json.dumps({**row, "cpus": os.cpu_count()}) + "\n")


if __name__ == "__main__":
    main()
