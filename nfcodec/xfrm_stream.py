"""The ``XFRM`` data transforms in the encoder, for every layout (format.md section 4d).

:func:`nfcodec.api.encode` wraps the layout's encoder (single, width-chunks, tiles; any
architecture and representation) without it knowing::

    frames --transforms.apply_forward--> what the network is fitted to
           --the layout's encoder (fit, code, its own closed loop in the fitted domain)--> file
           --insert_chunk: XFRM after the header chunks, before the payload--> file with XFRM
           --transforms.apply_inverse of its reconstruction (what every decoder returns)
           --measured against the ORIGINAL frames--> EncodeResult

The decoder renders the network exactly as without the chunk and then inverts, so the inverse of
the layout's closed-loop reconstruction *is* the decoder's output: nothing is decoded twice except
the levels of a width-chunks stream (their PSNR is re-measured, and its ancillary ``pSNR`` chunk
rewritten, against the original frames).

Rate control: the chunk costs :data:`XFRM_BYTES`, taken from the byte budget handed to the layout
(``bpp`` and each ``level_bpp``), so a ``--bpp`` file still lands in ``[0.95 * target, target]``.
A ``psnr`` target is met in the fitted domain; that is the original domain's PSNR for ``permute``
(a permutation keeps the MSE) but not for ``gamma``, which is refused.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional

import numpy as np

from .bitstream import Chunk, probe, read_container, write_container
from .bitstream.headers import TransformRecord
from .config import CodecConfig
from .errors import ConfigError
from .metrics import mse
from .results import EncodeResult
from .transforms import apply_forward, apply_inverse, record_for

__all__ = ["XFRM_BYTES", "HEAD_CHUNKS", "transform_record", "prepare", "insert_chunk", "finish"]

#: What the chunk adds to a file: 12 bytes of framing and the 5-byte record.
XFRM_BYTES = 12 + TransformRecord.size()
#: The header chunks XFRM is written after (in file order the writers use: NHDR ARCH [TILE|GROW
#: pSNR] [PRIR] XFRM <payload>).
HEAD_CHUNKS = frozenset({b"NHDR", b"ARCH", b"TILE", b"PRIR", b"GROW", b"pSNR"})


def transform_record(config: CodecConfig) -> Optional[TransformRecord]:
    """The XFRM record ``config`` asks for, or None (``transform="none"``: no chunk)."""
    x = config.xfrm
    return None if x.transform == "none" else record_for(x.transform, x.param)


def _payload_bpp(bpp: float, pixels: int) -> float:
    """The target to hand the layout so that its file plus XFRM stays in the caller's band.

    With ``B = floor(bpp * pixels / 8)`` the caller's budget and ``x = B - XFRM_BYTES - 1/2`` the
    layout's (in bytes): ``floor(x) + XFRM_BYTES = B``, and ``0.95 x + XFRM_BYTES > 0.95 bpp * pixels / 8``,
    with half a byte of margin against rounding either way.
    """
    budget = math.floor(bpp * pixels / 8)
    inner = budget - XFRM_BYTES - 0.5
    if inner <= 0:
        raise ConfigError(f"bpp={bpp} is {budget} bytes for {pixels} pixels, less than the {XFRM_BYTES}-byte XFRM "
                          "chunk of the transform")
    return 8 * inner / pixels


def prepare(frames: np.ndarray, config: CodecConfig, record: TransformRecord, bpp: Optional[float],
            psnr: Optional[float]) -> tuple[np.ndarray, CodecConfig, Optional[float]]:
    """``(frames to fit, config, bpp)`` for the layout's encoder (see the module docstring).

    Raises:
        ConfigError: ``gamma`` with a ``psnr`` target; ``permute`` with spatial growing (a level's
            columns would be scattered pixels of the fitted image); a budget below the chunk.
    """
    name = config.xfrm.transform
    if psnr is not None and name == "gamma":
        raise ConfigError("psnr= cannot be targeted with transform gamma: the fit's PSNR is not the decoded "
                          "image's (use bpp=, or transform permute)")
    if name == "permute" and config.layout == "width-chunks" and config.grow.growing == "spatial":
        raise ConfigError("transform permute cannot be used with spatial growing: a level's columns would be "
                          "pixels scattered over the whole fitted image (use spectral growing or transform gamma)")
    pixels = int(np.prod(frames.shape[:3]))
    if bpp is not None:
        bpp = _payload_bpp(bpp, pixels)
    if config.grow.level_bpp:
        config = config.replace(level_bpp=tuple(_payload_bpp(b, pixels) for b in config.grow.level_bpp))
    return apply_forward(frames, record), config, bpp


def insert_chunk(data: bytes, record: TransformRecord) -> bytes:
    """``data`` (a complete stream without XFRM) with the XFRM chunk after its header chunks."""
    container = read_container(data)
    chunks = list(container.chunks)
    at = next((i for i, c in enumerate(chunks) if c.ctype not in HEAD_CHUNKS), len(chunks))
    chunks.insert(at, Chunk(b"XFRM", record.pack()))
    return write_container(chunks, version=container.version)


def _psnr_db(m: float) -> float:
    return math.inf if m == 0 else 10 * math.log10(255.0**2 / m)


def _measure(recon: np.ndarray, source: np.ndarray, media: int) -> tuple[float, tuple[float, ...]]:
    """PSNR of the output against the original (cropped to the frames and columns it covers), and
    each frame's PSNR for a video."""
    frames = recon[None] if media == 0 else recon
    mses = [mse(f, s[:, :f.shape[1]]) for f, s in zip(frames, source)]
    pooled = float(np.mean(mses))
    return _psnr_db(pooled), (tuple(_psnr_db(m) for m in mses) if media == 1 else ())


def _levels(data: bytes, result: EncodeResult, source: np.ndarray, pixels: int) -> tuple[bytes, tuple[dict, ...]]:
    """A width-chunks stream's level rows (offsets, prefix bpp, PSNR of each level's decoded output
    against the original) and the stream with its pSNR chunk rewritten to those PSNRs."""
    from .decoder import open_stream
    from .widthchunks import pack_psnr

    stream = open_stream(data)
    psnrs = []
    for lv in stream.plan.levels:
        level = open_stream(data, level=lv.index)
        got = np.stack([f for _, f in level.frames(range(level.n_frames))])
        psnrs.append(_measure(got, source, 1)[0])
    rows = tuple({**row, "begin": lv.begin, "end": lv.end, "bpp": round(8 * lv.end / pixels, 6), "psnr": round(p, 4)}
                 for row, lv, p in zip(result.levels, stream.plan.levels, psnrs))
    container = read_container(data)
    chunks = [Chunk(b"pSNR", pack_psnr(psnrs)) if c.ctype == b"pSNR" else c for c in container.chunks]
    return write_container(chunks, version=container.version), rows


def finish(result: EncodeResult, record: TransformRecord, source: np.ndarray, media: int,
           bpp: Optional[float], level_bpp: tuple[float, ...]) -> EncodeResult:
    """The layout's result (fitted domain) as the caller's: XFRM in the file, the reconstruction
    inverted, every measure against the original ``source`` (T, H, W, 3) and the caller's targets
    (``bpp``, ``level_bpp``) in ``rate_control`` and ``config``."""
    t0 = time.perf_counter()
    data = insert_chunk(result.data, record)
    pixels = int(np.prod(source.shape[:3]))
    rows = result.levels
    if rows:
        data, rows = _levels(data, result, source, pixels)
    recon = apply_inverse(result.reconstruction, record)
    score, frame_psnr = _measure(recon, source, media)
    info = probe(data)
    rc = result.rate_control
    if rc is not None:
        rc = dict(rc)
        if rc.get("mode") == "bpp" and bpp is not None:
            rc["target"] = bpp
        if rc.get("mode") == "level_bpp":
            rc["target"] = list(level_bpp)
        if "bpp" in rc:
            rc["bpp"] = round(info.bpp, 6)
        if "level_bpp" in rc:
            rc["level_bpp"] = [r["bpp"] for r in rows]
        if "psnr" in rc:
            rc["psnr"] = round(score, 4)
    config = result.config.replace(level_bpp=level_bpp) if level_bpp else result.config
    return dataclasses.replace(result, data=data, reconstruction=recon, psnr=score, bpp=info.bpp, info=info,
                               config=config, frame_psnr=frame_psnr, rate_control=rc, levels=rows,
                               seconds=result.seconds + time.perf_counter() - t0)
