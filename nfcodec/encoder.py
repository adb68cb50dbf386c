"""The encoder: image -> fitted network -> quantized, entropy-coded container (closed loop).

    image --fit (SIREN, Adam, QAT)--> weights --representation.export--> TDAT
          --write_container([NHDR, ARCH, TDAT, meTA?, NEND])--> bytes
          --decoder.decode_bytes--> the pixels any decoder will produce (reported PSNR)

The reported PSNR and bpp are measured on the decoder's output of the final bytes, so they
are what a user gets, never an estimate.
"""
from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import torch

from . import __version__
from .bitstream import Chunk, StreamHeader, write_container
from .config import CodecConfig
from .decoder import decode_bytes
from .errors import InputError
from .fit import fit
from .metrics import psnr
from .models import ARCHS
from .render import image_coords, image_targets
from .results import EncodeResult
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["encode_image"]


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InputError("image must be an (H, W, 3) uint8 RGB array")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image has no pixels: shape {image.shape}")


def _meta_chunk(config: CodecConfig, preset: str | None) -> Chunk:
    m, q, f = config.model, config.quant, config.fit
    meta = {"encoder": f"nfcodec {__version__}", "preset": preset, "width": m.width, "depth": m.depth,
            "bits": q.bits, "steps": f.steps, "lr": f.lr, "batch": f.batch_pixels, "seed": f.seed}
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
    height, width = image.shape[:2]
    arch = ARCHS.by_name(config.model.arch)
    rep = REPRESENTATIONS.by_name(config.representation)
    layout = LAYOUTS.by_name(config.layout)
    record = arch.make_record(config.model, 2, 3)
    header = StreamHeader(media=0, width=width, height=height, frames=1, fps_num=0, fps_den=1, channels=3,
                          bit_depth=8, colorspace=0, arch=arch.wire_id, representation=rep.wire_id,
                          layout=layout.wire_id, n_segments=layout.n_segments)

    torch.manual_seed(config.fit.seed)  # encoder-side only: the file never depends on this stream
    model = arch.build(record).init_weights_(torch.Generator().manual_seed(config.fit.seed))
    result = fit(model, image_coords(height, width), image_targets(image), config.fit, config.quant,
                 progress=progress)

    chunks = [Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", record.pack()), *rep.export(model, result.steps)]
    if metadata:
        chunks.append(_meta_chunk(config, preset))
    data = write_container([*chunks, Chunk(b"NEND", b"")])
    decoded = decode_bytes(data)   # closed loop: report exactly what the decoder produces
    return EncodeResult(data=data, reconstruction=decoded.image, psnr=psnr(decoded.image, image),
                        bpp=decoded.info.bpp, info=decoded.info, config=config, fit=result,
                        seconds=time.perf_counter() - t0)
