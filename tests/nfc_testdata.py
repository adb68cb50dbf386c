"""Constants shared by the tests (a uniquely named module: tests/bitstream has its own conftest)."""
from __future__ import annotations

from pathlib import Path

from nfcodec.config import CodecConfig, FitConfig, ModelConfig, QuantConfig

DATA = Path(__file__).parent / "data"
TINY_PNG = DATA / "tiny.png"          # 32x24 crop of Kodak kodim03, downscaled
GOLDEN = Path(__file__).parent / "golden"

# A 16-unit, 2-layer SIREN, full-batch: ~0.3 s per encode of the 32x24 test image.
FAST = CodecConfig(
    ModelConfig(width=16, depth=2),
    QuantConfig(bits=10),
    FitConfig(steps=300, batch_pixels=0, warmup_steps=10, lr=3e-3, seed=0),
)
