"""The reference decoder: bytes -> pixels.  Imports no training code.

    bytes --read_container--> chunks --NHDR/ARCH--> empty model (from the wire record)
          --representation.materialize(TDAT...)--> weights --render--> (H, W, 3) uint8
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bitstream import Container, FormatError, StreamHeader, StreamInfo, probe, read_container, unpack_arch
from .models import ARCHS
from .render import render_image
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["DecodedImage", "decode_bytes", "build_model"]


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray     # (H, W, 3) uint8
    info: StreamInfo


def _only(container: Container, ctype: bytes) -> bytes:
    found = [c.data for c in container.chunks if c.ctype == ctype]
    if len(found) != 1:
        raise FormatError(f"stream has {len(found)} {ctype.decode()} chunks, needs exactly one")
    return found[0]


def build_model(container: Container):
    """Rebuild the fitted network from a container's chunks (CPU, float32, eval mode)."""
    header = StreamHeader.unpack(_only(container, b"NHDR"))
    arch = ARCHS.by_id(header.arch)
    record = unpack_arch(header.arch, _only(container, b"ARCH"))
    rep = REPRESENTATIONS.by_id(header.representation)
    LAYOUTS.by_id(header.layout)  # single is the only layout so far; unknown ids are refused here
    return header, rep.materialize(arch.build(record), container.chunks).eval()


def decode_bytes(data: bytes) -> DecodedImage:
    """Decode a complete ``.nfc`` stream to an image.

    Raises:
        BitstreamError: malformed, truncated or corrupted data.
        UnsupportedFeatureError: a wire id this decoder does not know.
    """
    container = read_container(data)
    header, model = build_model(container)
    if header.media != 0:
        raise FormatError("this stream holds a video; video decoding is not supported yet")
    return DecodedImage(render_image(model, header.height, header.width), probe(data))
