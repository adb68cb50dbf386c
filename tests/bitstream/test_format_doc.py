"""docs/format.md must describe what the code writes: rebuild its worked example byte for byte."""
from __future__ import annotations

import pathlib
import re

import numpy as np

from nfcodec.bitstream import (
    Chunk,
    CodedTensor,
    SegmentHeader,
    SirenArch,
    StreamHeader,
    encode_tensors,
    probe,
    write_container,
)

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _documented_dump() -> bytes:
    example = DOC.read_text(encoding="utf-8").split("## 9. Worked example", 1)[1]
    block = example.split("```", 2)[1]
    rows = re.findall(r"^[0-9a-f]{8}  ((?:[0-9a-f]{2} ?)+)$", block, flags=re.M)
    return bytes.fromhex("".join(rows))


def test_worked_example_matches_the_writer():
    header = StreamHeader(0, 16, 8, 1, 0, 1, 3, 8, 0, 0, 0, 0, 1)
    arch = SirenArch(2, 3, 8, 2, 30.0, 30.0)
    tensors = [CodedTensor(0, 3, np.array([0, 1, -1, 0, 2, 0, 0, -1])), CodedTensor(1, 3, np.zeros(4, np.int32))]
    data = write_container([
        Chunk(b"NHDR", header.pack()),
        Chunk(b"ARCH", arch.pack()),
        Chunk(b"SEGM", SegmentHeader(0, 0, 0, 0).pack()),
        Chunk(b"TDAT", encode_tensors(tensors)),
        Chunk(b"NEND", b""),
    ])
    assert data == _documented_dump()
    assert round(probe(data).bpp, 2) == 8.94
