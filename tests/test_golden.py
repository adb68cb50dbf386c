"""Golden v1 files must keep decoding to the same pixels, forever.

Regenerate (only when the format version changes, never to make a test pass):
    GENERATE_EXPECTED=1 pytest tests/test_golden.py
"""
from __future__ import annotations

import hashlib
import json
import os

import pytest

import nfcodec

from nfc_testdata import FAST, GOLDEN, TINY_PNG  # noqa: E402

GENERATE = os.getenv("GENERATE_EXPECTED") == "1"
NFC, EXPECTED = GOLDEN / "tiny-v1.0.nfc", GOLDEN / "tiny-v1.0.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not GENERATE, reason="set GENERATE_EXPECTED=1 to regenerate golden files")
def test_generate_golden():
    r = nfcodec.encode(TINY_PNG, config=FAST, metadata=False)
    NFC.write_bytes(r.data)
    EXPECTED.write_text(json.dumps({"file_sha256": _digest(r.data), "pixels_sha256": _digest(r.reconstruction.tobytes()),
                                    "psnr": r.psnr, "bytes": len(r.data)}, indent=2) + "\n")


def test_golden_file_decodes_to_the_same_pixels():
    expected = json.loads(EXPECTED.read_text())
    data = NFC.read_bytes()
    assert _digest(data) == expected["file_sha256"] and len(data) == expected["bytes"]
    out = nfcodec.decode(data)
    assert out.image.shape == (24, 32, 3)
    assert _digest(out.image.tobytes()) == expected["pixels_sha256"]


def test_golden_file_probe_is_stable():
    info = nfcodec.probe(NFC)
    assert info.version == (1, 0)
    assert [(c.ctype, c.length) for c in info.chunks][:2] == [("NHDR", 25), ("ARCH", 13)]
