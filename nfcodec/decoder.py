"""The reference decoder: bytes -> pixels.  Imports no training code.

    bytes --read_container--> chunks --NHDR/ARCH--> empty model (from the wire record)
          --representation.materialize(TDAT...)--> weights --ArchSpec.render(k)--> frame k

An image is frame 0 of a one-frame stream.  Video frames are rendered one at a time, each from
its own index only, so any subset decodes without the others and memory holds one frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .bitstream import Container, FormatError, StreamHeader, StreamInfo, probe, read_container, unpack_arch
from .models import ARCHS, ArchSpec
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["DecodedImage", "DecodedStream", "decode_bytes", "open_stream", "iter_frames"]


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray     # (H, W, 3) uint8
    info: StreamInfo


@dataclass(frozen=True)
class DecodedStream:
    """A stream ready to render: header, architecture record and spec, and the loaded network."""

    header: StreamHeader
    record: Any
    arch: ArchSpec
    model: torch.nn.Module
    info: StreamInfo

    def render(self, k: int) -> np.ndarray:
        """Frame ``k`` as (H, W, 3) uint8 (0 for an image)."""
        return self.arch.render(self.model, self.record, self.header, k)


def _only(container: Container, ctype: bytes) -> bytes:
    found = [c.data for c in container.chunks if c.ctype == ctype]
    if len(found) != 1:
        raise FormatError(f"stream has {len(found)} {ctype.decode()} chunks, needs exactly one")
    return found[0]


def _load(container: Container) -> tuple[StreamHeader, Any, ArchSpec, torch.nn.Module]:
    header = StreamHeader.unpack(_only(container, b"NHDR"))
    arch = ARCHS.by_id(header.arch)
    record = unpack_arch(header.arch, _only(container, b"ARCH"))
    rep = REPRESENTATIONS.by_id(header.representation)
    LAYOUTS.by_id(header.layout)  # single is the only layout so far; unknown ids are refused here
    arch.check(record, header)
    return header, record, arch, rep.materialize(arch.build(record), container.chunks).eval()


def open_stream(data: bytes) -> DecodedStream:
    """Parse a complete ``.nfc`` stream and load its network (image or video).

    Raises:
        BitstreamError: malformed, truncated or corrupted data.
        UnsupportedFeatureError: a wire id this decoder does not know.
    """
    header, record, arch, model = _load(read_container(data))
    return DecodedStream(header, record, arch, model, probe(data))


def decode_bytes(data: bytes) -> DecodedImage:
    """Decode a complete ``.nfc`` image stream to an image.

    Raises:
        BitstreamError: malformed, truncated or corrupted data (``FormatError`` for a video).
        UnsupportedFeatureError: a wire id this decoder does not know.
    """
    stream = open_stream(data)
    if stream.header.media != 0:
        raise FormatError("this stream holds a video: decode it with nfcodec.decode_frames or decode(..., output)")
    return DecodedImage(stream.render(0), stream.info)


def iter_frames(stream: DecodedStream, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Render the given frame indices one at a time: ``(k, (H, W, 3) uint8)``."""
    for k in frames:
        if not 0 <= k < stream.header.frames:
            raise IndexError(f"frame {k} outside [0, {stream.header.frames})")
        yield k, stream.render(k)
