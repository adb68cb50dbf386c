"""The encoder: image or clip -> fitted network -> quantized, entropy-coded container (closed loop).

    frames --fit (ArchSpec.sampler batches, Adam; the representation's FitHooks)--> network
          --representation.payload--> Payload (weights, masks, seed, scales ...)
          --steps (bit depth, or the RD search of nfcodec.rdsearch)--> payload.chunks
          --write_container([NHDR, ARCH, <payload chunks>, meTA?, NEND])--> bytes
          --decoder.decode_bytes--> the pixels any decoder will produce (reported PSNR)

The pieces (:func:`fit_signal`, :func:`container_bytes`, :func:`quant_problem`, :func:`finish`)
are public to the encoder side so that rate control (:mod:`nfcodec.ratecontrol`) can fit once
and code many times.

The reported PSNR and bpp are measured on the decoder's output of the final bytes, so they
are what a user gets, never an estimate.  A clip is decoded back one frame at a time (the
decoder's own path), so no more than one frame is ever held as float besides the training batch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from fractions import Fraction
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import __version__
from .bitstream import Chunk, StreamHeader, write_container
from .config import CodecConfig
from .decoder import decode_bytes, iter_frames, open_stream
from .errors import InputError
from .devices import resolve_device
from .fit import fit_sampler
from .media import Video
from .rdsearch import Evaluator, QuantProblem, search_lagrangian
from .metrics import mse, psnr
from .archs import ARCHS
from .results import EncodeResult, FitResult
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["encode_image", "encode_video", "encode_single", "Fitted", "fit_signal", "container_bytes", "quant_problem",
           "finish", "meta_dict", "stream_header"]


def check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InputError("image must be an (H, W, 3) uint8 RGB array")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image has no pixels: shape {image.shape}")


def meta_dict(config: CodecConfig, preset: str | None, video: bool) -> dict[str, Any]:
    """The settings recorded in the ancillary ``meTA`` chunk (informational; decoders ignore it)."""
    m, q, f = config.model, config.quant, config.fit
    meta: dict[str, Any] = {"encoder": f"nfcodec {__version__}", "preset": preset, "width": m.width,
                            "depth": m.depth, "bits": q.bits, "steps": f.steps, "lr": f.lr,
                            "batch": f.batch_pixels, "seed": f.seed}
    if video:
        meta.update(arch=m.arch, c1=m.c1, c2=m.c2, mlp_hidden=m.mlp_hidden, epochs=f.epochs,
                    batch_frames=f.batch_frames)
    if config.representation != "dense":
        meta["representation"] = config.representation
    meta.update(REPRESENTATIONS.by_name(config.representation).settings(config))
    if q.rd_search:
        meta["rd_lambda"] = q.rd_lambda or "auto"
    return meta


@dataclass
class Fitted:
    """A fitted network with everything needed to code it (encoder side)."""

    header: StreamHeader
    record: Any
    arch: Any
    rep: Any
    model: torch.nn.Module
    fit: FitResult
    payload: Any            # nfcodec.variants.Payload: what the representation stores
    frames: np.ndarray      # (T, H, W, 3) uint8 source
    config: CodecConfig

    @property
    def pixels(self) -> int:
        return self.header.frames * self.header.width * self.header.height


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
    check_image(image)
    return LAYOUTS.by_name(config.layout).encode(image[None], 0, Fraction(0), config, preset=preset,
                                                 metadata=metadata, progress=progress)


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
    return LAYOUTS.by_name(config.layout).encode(video.frames, 1, video.fps, config, preset=preset,
                                                 metadata=metadata, progress=progress)


def encode_single(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, *, preset: str | None = None,
                  metadata: bool = True, progress: Callable[[int, int, float], None] | None = None,
                  bpp: float | None = None, psnr: float | None = None, sizing: bool = False) -> EncodeResult:
    """The single layout: one fit, one segment.  ``bpp`` / ``psnr``: rate control
    (:mod:`nfcodec.ratecontrol`); ``sizing``: a video without size knobs gets a network sized for
    the clip (:func:`nfcodec.ratecontrol.clip_sized`).  An architecture with its own encoder
    (``ArchSpec.encoder``: the grid's rate-distortion fit) does all of it itself."""
    arch = ARCHS.by_name(config.model.arch)
    arch.check_variant(config.representation, "single")
    if arch.encoder is not None:
        return arch.encoder(frames, media, fps, config, preset=preset, metadata=metadata, progress=progress,
                            bpp=bpp, psnr=psnr, sizing=sizing)
    if bpp is not None or psnr is not None:
        from .ratecontrol import encode_to_bpp, encode_to_psnr

        run = encode_to_bpp if bpp is not None else encode_to_psnr
        return run(frames, media, fps, config, float(bpp if bpp is not None else psnr), preset=preset,
                   metadata=metadata, progress=progress)
    rc = None
    if sizing and media == 1:
        from .ratecontrol import clip_sized

        config, rc = clip_sized(frames, media, fps, config, preset)
    result = _encode(frames, media, fps, config, preset, metadata, progress)
    if rc is not None:
        result = dataclasses.replace(result, rate_control={**rc, "bpp": round(result.bpp, 6)})
    return result


def _encode(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, preset: str | None,
            metadata: bool, progress: Callable[[int, int, float], None] | None) -> EncodeResult:
    t0 = time.perf_counter()
    fitted = fit_signal(frames, media, fps, config, progress)
    meta = meta_dict(config, preset, media == 1) if metadata else None
    steps = fitted.payload.steps
    if config.quant.rd_search and fitted.payload.n_tensors:
        steps, _ = rd_steps(quant_problem(fitted, meta), steps, config.quant.rd_lambda)
    return finish(fitted, container_bytes(fitted, steps, meta), t0)


def rd_steps(problem: QuantProblem, steps: Sequence[int], lam: float = 0.0) -> tuple[tuple[int, ...], float]:
    """:func:`~nfcodec.rdsearch.search_lagrangian` from ``steps``; ``lam`` 0 = ``bpp0 / mse0`` there."""
    if lam <= 0:
        lam = problem.bpp(steps) / max(problem.mse(steps), 1e-6)
    return search_lagrangian(problem, steps, lam)


def stream_header(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig) -> StreamHeader:
    """The ``NHDR`` record of ``frames`` (T, H, W, 3) coded with ``config``."""
    n_frames, height, width = frames.shape[:3]
    layout = LAYOUTS.by_name(config.layout)
    return StreamHeader(media=media, width=width, height=height, frames=n_frames, fps_num=fps.numerator,
                        fps_den=fps.denominator, channels=3, bit_depth=8, colorspace=0,
                        arch=ARCHS.by_name(config.model.arch).wire_id,
                        representation=REPRESENTATIONS.by_name(config.representation).wire_id,
                        layout=layout.wire_id, n_segments=layout.segments(config))


def fit_signal(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig,
               progress: Callable[[int, int, float], None] | None = None) -> Fitted:
    """Header, record, model and the fit (through the ArchSpec hooks); nothing is coded yet."""
    arch = ARCHS.by_name(config.model.arch)
    rep = REPRESENTATIONS.by_name(config.representation)
    header = stream_header(frames, media, fps, config)
    record = arch.make_record(config.model, header)
    arch.check(record, header)
    resolve_device(config.fit.device)   # a bad device fails before any work

    torch.manual_seed(config.fit.seed)  # encoder-side only: the file never depends on this stream
    model = arch.build(record).init_weights_(torch.Generator().manual_seed(config.fit.seed))
    sampler = arch.sampler(record, frames, config.fit, header)
    hooks = rep.fit_hooks(config, arch, record)
    result = fit_sampler(model, sampler, config.fit, config.quant, hooks, progress=progress)
    payload = rep.payload(model, result, arch, record, config)
    return Fitted(header, record, arch, rep, model, result, payload, frames, config)


def container_bytes(fitted: Fitted, steps: Sequence[int], meta: Optional[dict[str, Any]]) -> bytes:
    """The complete ``.nfc`` file for the fitted network quantized with ``steps``."""
    chunks = [Chunk(b"NHDR", fitted.header.pack()), Chunk(b"ARCH", fitted.record.pack()),
              *fitted.payload.chunks(steps)]
    if meta is not None:
        chunks.append(Chunk(b"meTA", json.dumps(meta, separators=(",", ":")).encode()))
    return write_container([*chunks, Chunk(b"NEND", b"")])


def quant_problem(fitted: Fitted, meta: Optional[dict[str, Any]]) -> QuantProblem:
    """The fitted network as an RD search problem: exact file overhead, real coder, decoder's pixels."""
    problem = QuantProblem(fitted.payload, Evaluator(fitted.arch, fitted.record, fitted.header, fitted.frames),
                           fitted.pixels, 0)
    steps = fitted.payload.steps
    problem.overhead = len(container_bytes(fitted, steps, meta)) - problem.total_bytes(steps)
    return problem


def finish(fitted: Fitted, data: bytes, t0: float, rate_control: Optional[dict[str, Any]] = None) -> EncodeResult:
    """Decode ``data`` the decoder's way and measure it against the source (closed loop)."""
    frames, config = fitted.frames, fitted.config
    if fitted.header.media == 0:
        decoded = decode_bytes(data)   # closed loop: report exactly what the decoder produces
        return EncodeResult(data=data, reconstruction=decoded.image, psnr=psnr(decoded.image, frames[0]),
                            bpp=decoded.info.bpp, info=decoded.info, config=config, fit=fitted.fit,
                            seconds=time.perf_counter() - t0, rate_control=rate_control)
    stream = open_stream(data)          # closed loop, one frame at a time
    recon, pooled, frame_psnr = closed_loop_video(stream, frames)
    return EncodeResult(data=data, reconstruction=recon, psnr=pooled, bpp=stream.info.bpp, info=stream.info,
                        config=config, fit=fitted.fit, seconds=time.perf_counter() - t0, frame_psnr=frame_psnr,
                        rate_control=rate_control)


def closed_loop_video(stream: Any, frames: np.ndarray) -> tuple[np.ndarray, float, tuple[float, ...]]:
    """Decode every frame of ``stream`` as the decoder does: ``(reconstruction, PSNR of the pooled
    MSE, PSNR of each frame)`` against ``frames``."""
    recon = np.empty_like(frames)
    mses = []
    for k, frame in iter_frames(stream, range(stream.header.frames)):
        recon[k] = frame
        mses.append(mse(frame, frames[k]))
    pooled = float(np.mean(mses))
    return (recon, math.inf if pooled == 0 else 10 * math.log10(255.0**2 / pooled),
            tuple(math.inf if m == 0 else 10 * math.log10(255.0**2 / m) for m in mses))
