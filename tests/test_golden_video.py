"""The golden v1 NeRV video must keep decoding to the same frames, forever.

Regenerate (only when the format version changes, never to make a test pass):
    GENERATE_EXPECTED=1 pytest tests/test_golden_video.py
"""
from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction

import pytest

import nfcodec
from nfcodec.config import CodecConfig, FitConfig, ModelConfig, QuantConfig

from nfc_testdata import GOLDEN, moving_clip  # noqa: E402

GENERATE = os.getenv("GENERATE_EXPECTED") == "1"
NFC, EXPECTED = GOLDEN / "tiny-video-v1.0.nfc", GOLDEN / "tiny-video-v1.0.json"
CONFIG = CodecConfig(ModelConfig(arch="nerv", c1=4, c2=8, min_channels=4, mlp_hidden=16, pe_l=8), QuantConfig(bits=8),
                     FitConfig(epochs=40, batch_frames=2, lr=5e-3, warmup_steps=5, seed=0))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not GENERATE, reason="set GENERATE_EXPECTED=1 to regenerate golden files")
def test_generate_golden_video():
    r = nfcodec.encode(moving_clip(4, 16, 20), config=CONFIG, fps=Fraction(30000, 1001), metadata=False)
    NFC.write_bytes(r.data)
    EXPECTED.write_text(json.dumps({"file_sha256": _digest(r.data), "bytes": len(r.data),
                                    "frames_sha256": [_digest(f.tobytes()) for f in r.reconstruction],
                                    "mean_frame_psnr": r.mean_frame_psnr, "psnr": r.psnr}, indent=2) + "\n")


def test_golden_video_decodes_to_the_same_frames():
    expected = json.loads(EXPECTED.read_text())
    data = NFC.read_bytes()
    assert _digest(data) == expected["file_sha256"] and len(data) == expected["bytes"]
    got = [_digest(frame.tobytes()) for _, frame in nfcodec.decode_frames(data)]
    assert got == expected["frames_sha256"]
    (k, frame), = nfcodec.decode_frames(data, frames="2:3")       # random access gives the same frame
    assert k == 2 and _digest(frame.tobytes()) == expected["frames_sha256"][2]


def test_golden_video_probe_is_stable():
    info = nfcodec.probe(NFC)
    h = info.header
    assert (info.version, h.media, h.frames, h.width, h.height, h.fps_num, h.fps_den, h.arch) == (
        (1, 0), 1, 4, 20, 16, 30000, 1001, 1)
    assert [(c.ctype, c.length) for c in info.chunks][:2] == [("NHDR", 25), ("ARCH", 35)]
    assert (info.arch.h0, info.arch.w0, info.arch.blocks) == (4, 5, ((2, 8), (2, 4)))
