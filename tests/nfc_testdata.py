"""Constants shared by the tests (a uniquely named module: tests/bitstream has its own conftest)."""
from __future__ import annotations

from pathlib import Path

from nfcodec.config import CodecConfig, FitConfig, GridConfig, ModelConfig, QuantConfig

DATA = Path(__file__).parent / "data"
TINY_PNG = DATA / "tiny.png"          # 32x24 crop of Kodak kodim03, downscaled
GOLDEN = Path(__file__).parent / "golden"

# A 16-unit, 2-layer SIREN, full-batch: ~0.3 s per encode of the 32x24 test image.
FAST = CodecConfig(
    ModelConfig(width=16, depth=2),
    QuantConfig(bits=10),
    FitConfig(steps=300, batch_pixels=0, warmup_steps=10, lr=3e-3, seed=0),
)

CARPHONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "carphone_pristine.mp4"
if not CARPHONE.exists():  # the shared data folder next to the repository (CI and dev machines)
    CARPHONE = Path("/work/shared/data/video/carphone_pristine.mp4")

# A tiny NeRV (3 blocks, ~10k weights) for 32x24 clips: about a second per encode on CPU.
TINY_NERV = CodecConfig(
    ModelConfig(arch="nerv", c1=8, c2=16, min_channels=8, mlp_hidden=32, pe_l=16),
    QuantConfig(bits=8),
    FitConfig(epochs=100, batch_frames=2, lr=5e-3, warmup_steps=10, seed=0),
)


# A tiny latent grid (4 levels, 8-unit synthesis) for the 32x24 test image: about a second per encode.
# No context network (grid_arm=0): on planes this small it never pays for its weights (the arm
# tests in test_grid.py use a larger image).
TINY_GRID = CodecConfig(
    ModelConfig(arch="grid", grid_levels=4, grid_hidden=(8,)),
    fit=FitConfig(seed=0),
    grid=GridConfig(grid_iters=300, grid_ste_iters=30, grid_crop=0, grid_lr=5e-2, grid_ste_lr=2e-3,
                    grid_lambda=0.002, grid_weight_bits=8, grid_arm=0),
)
#: The same for the video latent grid (arch grid-video).
TINY_VGRID = TINY_GRID.replace(arch="grid-video")


def medium_image() -> "np.ndarray":
    """samples/astronaut-256.png (256x256): latent planes large enough for the ``arm`` context
    network to pay for its weights (on a 128x128 crop it did not; tests/test_grid.py, golden files)."""
    from nfcodec.media import load_image

    return load_image(Path(__file__).parent.parent / "samples" / "astronaut-256.png")


def supports(arch: str, rep: str) -> bool:
    """Whether architecture ``arch`` can be coded with representation ``rep`` (its spec says)."""
    from nfcodec.archs import ARCHS

    allowed = ARCHS.by_name(arch).representations
    return allowed is None or rep in allowed


def tiny_config(arch: str):
    """A fast test configuration of architecture ``arch`` (the image SIREN preset by default)."""
    configs = {"grid": TINY_GRID, "grid-video": TINY_VGRID, "nerv": TINY_NERV.replace(epochs=15)}
    return configs.get(arch, FAST.replace(steps=60))


def tiny_source(arch: str):
    """``(media, fps)`` to encode with ``arch``: a 4-frame clip for a video-only architecture
    (its spec's ``media``), else the 32x24 test image."""
    from nfcodec.archs import ARCHS
    from nfcodec.media import load_image

    if ARCHS.by_name(arch).media == (1,):
        return moving_clip(4, 24, 32), 25
    return load_image(TINY_PNG), None


def moving_clip(frames: int = 6, height: int = 24, width: int = 32):
    """A smooth synthetic clip: colour gradients and a bright disc moving right by 2 px per frame."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        disc = ((xx - 6 - 2 * t) ** 2 + (yy - height / 2) ** 2) < (height / 5) ** 2
        r = 40 + 150 * xx / width + 60 * disc
        g = 60 + 120 * yy / height + 3 * t
        b = 200 - 120 * (xx + yy) / (width + height) + 50 * disc
        out[t] = np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)
    return out


def smooth_image(height: int, width: int):
    """A smooth synthetic (height, width, 3) uint8 image (sines of the coordinates)."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([128 + 100 * np.sin(xx / 7.0), 128 + 90 * np.cos(yy / 5.0 + xx / 11.0),
                    128 + 60 * np.sin((xx + yy) / 9.0)], -1)
    return np.rint(img).astype(np.uint8)
