"""Shared fixtures: a small but complete stream with every kind of chunk the tests attack."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nfcodec.bitstream import (
    Chunk,
    CodedTensor,
    SegmentHeader,
    SirenArch,
    StreamHeader,
    encode_tensors,
    write_container,
)

HEADER = StreamHeader(
    media=0, width=16, height=8, frames=1, fps_num=0, fps_den=1, channels=3, bit_depth=8,
    colorspace=0, arch=0, representation=0, layout=0, n_segments=1,
)
ARCH = SirenArch(in_features=2, out_features=3, width=8, depth=2, w0_first=30.0, w0_hidden=30.0)


@pytest.fixture
def chunks() -> list[Chunk]:
    """NHDR ARCH meTA SEGM TDAT NEND: critical chunks on both sides of an ancillary one."""
    tensors = [CodedTensor(0, 3, np.array([0, 1, -1, 0, 2, 0, 0, -1])), CodedTensor(1, 3, np.zeros(4, np.int32))]
    return [
        Chunk(b"NHDR", HEADER.pack()),
        Chunk(b"ARCH", ARCH.pack()),
        Chunk(b"meTA", json.dumps({"encoder": "test"}).encode()),
        Chunk(b"SEGM", SegmentHeader(index=0, kind=0, start=0, stop=0).pack()),
        Chunk(b"TDAT", encode_tensors(tensors)),
        Chunk(b"NEND", b""),
    ]


@pytest.fixture
def data(chunks: list[Chunk]) -> bytes:
    """The serialized stream of :func:`chunks`."""
    return write_container(chunks)
