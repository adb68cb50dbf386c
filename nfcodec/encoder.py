"""The encoder: image or clip -> fitted network -> quantized, entropy-coded container (closed loop).

    frames --fit (ArchSpec.sampler batches, Adam, QAT)--> weights --representation.export--> TDAT
          --write_container([NHDR, ARCH, TDAT, meTA?, NEND])--> bytes
          --decoder.decode_bytes--> the pixels any decoder will produce (reported PSNR)

The reported PSNR and bpp are measured on the decoder's output of the final bytes, so they
are what a user gets, never an estimate.  A clip is decoded back one frame at a time (the
decoder's own path), so no more than one frame is ever held as float besides the training batch.
"""
from __future__ import annotations

import json
import math
import time
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

from . import __version__
from .bitstream import Chunk, StreamHeader, write_container
from .config import CodecConfig
from .decoder import decode_bytes, iter_frames, open_stream
from .errors import InputError
from .fit import fit_sampler, resolve_device
from .media import Video
from .metrics import mse, psnr
from .models import ARCHS
from .results import EncodeResult, FitResult
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["encode_image", "encode_video"]


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InputError("image must be an (H, W, 3) uint8 RGB array")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image has no pixels: shape {image.shape}")


def _meta_chunk(config: CodecConfig, preset: str | None, video: bool) -> Chunk:
    m, q, f = config.model, config.quant, config.fit
    meta = {"encoder": f"nfcodec {__version__}", "preset": preset, "width": m.width, "depth": m.depth,
            "bits": q.bits, "steps": f.steps, "lr": f.lr, "batch": f.batch_pixels, "seed": f.seed}
    if video:
        meta.update(arch=m.arch, c1=m.c1, c2=m.c2, mlp_hidden=m.mlp_hidden, epochs=f.epochs,
                    batch_frames=f.batch_frames)
    return Chunk(b"meTA", json.dumps(meta, separators=(",", ":")).encode())


def encode_image(image: np.ndarray, config: CodecConfig, *, preset: str | None = None,
                 metadata: bool = True, progress: Callable[[int, int, float], None] | None = None) -> EncodeResult:
    """Fit, quantize and code one image; decode the bytes to report what a decoder gets.

    Args:
        image: (H, W, 3) uint8 RGB.
        config: encoder settings (see :mod:`nfcodec.config`).
        preset: preset name recorded in the ``meTA`` chunk (informational).
        metadata: write the ``meTA`` chunk (settings, encoder version; ~100 bytes).
        progress: called with (step, total, running PSNR) during fitting.
    """
    _check_image(image)
    t0 = time.perf_counter()
    data, fit_result = _fit_and_code(image[None], 0, Fraction(0), config, preset, metadata, progress)
    decoded = decode_bytes(data)   # closed loop: report exactly what the decoder produces
    return EncodeResult(data=data, reconstruction=decoded.image, psnr=psnr(decoded.image, image),
                        bpp=decoded.info.bpp, info=decoded.info, config=config, fit=fit_result,
                        seconds=time.perf_counter() - t0)


def encode_video(video: Video, config: CodecConfig, *, preset: str | None = None, metadata: bool = True,
                 progress: Callable[[int, int, float], None] | None = None) -> EncodeResult:
    """Fit, quantize and code a clip; decode the bytes frame by frame to report what a decoder gets.

    Args:
        video: the clip ((T, H, W, 3) uint8 frames and the exact frame rate).
        config: encoder settings (``config.model.arch``: ``nerv`` or ``siren``).
        preset, metadata, progress: as for :func:`encode_image`.

    Returns:
        An :class:`EncodeResult` whose ``reconstruction`` is (T, H, W, 3) uint8, ``psnr`` the PSNR
        of the mean MSE over all frames and ``frame_psnr`` the per-frame PSNRs.
    """
    t0 = time.perf_counter()
    data, fit_result = _fit_and_code(video.frames, 1, video.fps, config, preset, metadata, progress)
    stream = open_stream(data)          # closed loop, one frame at a time
    recon = np.empty_like(video.frames)
    mses = []
    for k, frame in iter_frames(stream, range(stream.header.frames)):
        recon[k] = frame
        mses.append(mse(frame, video.frames[k]))
    pooled = float(np.mean(mses))
    return EncodeResult(data=data, reconstruction=recon,
                        psnr=math.inf if pooled == 0 else 10 * math.log10(255.0**2 / pooled),
                        bpp=stream.info.bpp, info=stream.info, config=config, fit=fit_result,
                        seconds=time.perf_counter() - t0,
                        frame_psnr=tuple(math.inf if m == 0 else 10 * math.log10(255.0**2 / m) for m in mses))


def _fit_and_code(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, preset: str | None,
                  metadata: bool, progress: Callable[[int, int, float], None] | None) -> tuple[bytes, FitResult]:
    """The shared core: header, record, fit (through the ArchSpec hooks), export, container bytes."""
    n_frames, height, width = frames.shape[:3]
    arch = ARCHS.by_name(config.model.arch)
    rep = REPRESENTATIONS.by_name(config.representation)
    layout = LAYOUTS.by_name(config.layout)
    header = StreamHeader(media=media, width=width, height=height, frames=n_frames, fps_num=fps.numerator,
                          fps_den=fps.denominator, channels=3, bit_depth=8, colorspace=0, arch=arch.wire_id,
                          representation=rep.wire_id, layout=layout.wire_id, n_segments=layout.n_segments)
    record = arch.make_record(config.model, header)
    arch.check(record, header)
    resolve_device(config.fit.device)   # a bad device fails before any work

    torch.manual_seed(config.fit.seed)  # encoder-side only: the file never depends on this stream
    model = arch.build(record).init_weights_(torch.Generator().manual_seed(config.fit.seed))
    sampler = arch.sampler(record, frames, config.fit, header)
    result = fit_sampler(model, sampler, config.fit, config.quant, progress=progress)

    chunks = [Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", record.pack()), *rep.export(model, result.steps, result.masks)]
    if metadata:
        chunks.append(_meta_chunk(config, preset, media == 1))
    return write_container([*chunks, Chunk(b"NEND", b"")]), result
