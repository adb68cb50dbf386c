"""NeRV: layout derivation, the module built from its record, PE, and model-size errors."""
from __future__ import annotations

import math

import pytest
import torch

from nfcodec.bitstream import StreamHeader
from nfcodec.config import ModelConfig
from nfcodec.errors import ConfigError
from nfcodec.archs import ARCHS
from nfcodec.archs.nerv import MAX_NERV_MLP_WEIGHTS
from nfcodec.models.nerv import Nerv, block_channels, nerv_layout, positional_encoding


def _header(width: int, height: int, frames: int = 10, media: int = 1) -> StreamHeader:
    return StreamHeader(media=media, width=width, height=height, frames=frames, fps_num=25, fps_den=1, channels=3,
                        bit_depth=8, colorspace=0, arch=1, representation=0, layout=0, n_segments=1)


@pytest.mark.parametrize("height, width, expected", [
    (720, 1280, (9, 16, (5, 2, 2, 2, 2))),      # the paper's 16x9 base, no padding
    (1080, 1920, (9, 16, (5, 3, 2, 2, 2))),     # the paper's UVG layout exactly
    (144, 176, (9, 11, (2, 2, 2, 2))),          # QCIF (carphone): exact
    (272, 640, (7, 16, (5, 2, 2, 2))),          # 280x640: 8 padded rows (2.9 %)
    (17, 33, (3, 6, (3, 2))),                   # odd sizes: 18x36, cropped
    (24, 32, (3, 4, (2, 2, 2))),
])
def test_layout_for_common_and_odd_sizes(height, width, expected):
    assert nerv_layout(height, width) == expected


@pytest.mark.parametrize("height, width", [(1, 1), (17, 33), (99, 101), (272, 640), (480, 854), (1, 500), (2160, 3840)])
def test_layout_always_covers_the_frame_with_bounded_base(height, width):
    h0, w0, factors = nerv_layout(height, width)
    p = math.prod(factors)
    assert h0 * p >= height and w0 * p >= width
    assert (h0 - 1) * p < height and (w0 - 1) * p < width          # no needless extra base row / column
    assert 1 <= len(factors) <= 6 and set(factors) <= {2, 3, 4, 5}


def test_block_channels_halve_down_to_the_floor():
    assert block_channels(5, 64, 12) == (64, 32, 16, 12, 12)
    assert block_channels(3, 384, 8) == (384, 192, 96)


def test_record_and_module_agree_on_an_odd_size():
    spec = ARCHS.by_name("nerv")
    header = _header(33, 17)
    record = spec.make_record(ModelConfig(arch="nerv", c1=4, c2=8, min_channels=4, mlp_hidden=16, pe_l=8), header)
    assert (record.h0, record.w0, record.blocks) == (3, 6, ((3, 8), (2, 4)))
    assert record.padded_size == (18, 36)
    model = Nerv(record).init_weights_(torch.Generator().manual_seed(0))
    out = model(torch.tensor([0.0, 0.5], dtype=torch.float64))
    assert out.shape == (2, 3, 18, 36)
    expected = (16 * 16 + 16) + (16 * 4 * 18 + 4 * 18) + (4 * 72 * 9 + 72) + (8 * 16 * 9 + 16) + (4 * 3 * 9 + 3)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_positional_encoding_matches_the_paper_formula():
    pe = positional_encoding(torch.tensor([0.3], dtype=torch.float64), 1.25, 4)[0]
    want = [f(1.25**i * math.pi * 0.3) for i in range(4) for f in (math.sin, math.cos)]
    assert pe.dtype == torch.float32 and pe.tolist() == pytest.approx(want, abs=1e-7)


def test_explicit_factors_and_too_large_resolution():
    spec = ARCHS.by_name("nerv")
    rec = spec.make_record(ModelConfig(arch="nerv", factors=(5, 2, 2, 2, 2)), _header(1280, 720))
    assert (rec.h0, rec.w0) == (9, 16)
    with pytest.raises(ConfigError, match=r"1280x720 needs a NeRV base map of 640x360 with upscale factors 2 "
                                          r"\(product 2\).*too large"):
        spec.make_record(ModelConfig(arch="nerv", factors=(2,)), _header(1280, 720))
    assert MAX_NERV_MLP_WEIGHTS == 2**24


def test_nerv_refuses_images():
    with pytest.raises(ConfigError, match="nerv' encodes videos"):
        ARCHS.by_name("nerv").make_record(ModelConfig(arch="nerv"), _header(32, 24, frames=1, media=0))


def test_bad_knobs_are_config_errors():
    with pytest.raises(ConfigError, match=r"kernel=4 must be odd"):
        ModelConfig(kernel=4)
    with pytest.raises(ConfigError, match=r"factors=\(9,\)"):
        ModelConfig(factors=(9,))
    with pytest.raises(ConfigError, match=r"c1=0 outside"):
        ModelConfig(c1=0)
