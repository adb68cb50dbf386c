"""The video latent grid (arch 3, ``grid-video``, format 2.9): exact trilinear upsampling, the
record, encode/decode (whole, frame by frame, against the reference decoder), rate control, the
CLI and the refusals.  Every-arch tests (golden files, fuzz seeds, both backends) cover it too."""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.archs.grid_video import GridVideoProgram, temporal_taps
from nfcodec.bitstream import Chunk, FormatError, read_container, write_container
from nfcodec.bitstream.headers import GridVideoArch
from nfcodec.errors import ConfigError
from nfcodec.models.grid import GridVideoField
import imageio.v3 as iio

from exact_reference import reference_frames
from nfc_testdata import TINY_GRID, TINY_PNG, TINY_VGRID, moving_clip

FPS = Fraction(25)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_clip(8, 24, 32)


@pytest.fixture(scope="module")
def encoded(clip):
    return nfcodec.encode(clip, config=TINY_VGRID, fps=FPS)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
@pytest.mark.parametrize("frames", [8, 7, 3])
def test_exact_upsampling_is_torch_trilinear(level, frames):
    """Frame k's plane (format.md 6.8, "Video grids") then the image grid's bilinear rule is torch's
    trilinear interpolation (align_corners=False) to the bit."""
    H, W = 11, 13
    sizes = GridVideoArch(height=H, width=W, levels=level + 1, hidden1=4, hidden2=0, act=0, upsample=0,
                          head_kernel=1, frames=frames).latent_sizes
    t, h, w = sizes[level]
    q = np.random.default_rng(level + 10 * frames).integers(-40, 41, (t, h, w))
    f = 1 << level
    want = F.interpolate(torch.tensor(q, dtype=torch.float64)[None, None], size=(t * f, h * f, w * f),
                         mode="trilinear", align_corners=False)[0, 0, :frames, :H, :W].numpy()
    program = GridVideoProgram(tuple(np.zeros(s, np.int64) for s in sizes[:level]) + (q,), (), H, W)
    for k in range(frames):
        x = program.inputs(k)[:, level].reshape(H, W)
        assert np.array_equal(x / 2.0 ** (3 * level + 3), want[k])
    # the taps: frame k reads two planes whose weights sum to 2^(level + 1)
    for k in range(frames):
        j0, j1, w0, w1 = temporal_taps(k, level, t)
        assert 0 <= j0 <= j1 < t and w0 + w1 == 2 * f


def test_training_model_is_the_exact_rule():
    """GridVideoField's synthesis inputs (float) are the exact program's for integer latents."""
    torch.manual_seed(0)
    m = GridVideoField(5, 9, 10, levels=3, hidden=(4,))
    with torch.no_grad():
        for y in m.latents:
            y.copy_(torch.randint(-5, 6, y.shape).float())
    seen = []
    m.synthesize = lambda x: seen.append(x) or x[:, :3]
    m("hard", frames=[4, 1])
    x = seen[0].detach().double().numpy().reshape(2, 9 * 10, 3)
    program = GridVideoProgram(tuple(y.detach().numpy().astype(np.int64) for y in m.latents), (), 9, 10)
    for i, k in enumerate([4, 1]):
        assert np.allclose(x[i], program.inputs(k) / 2.0 ** (3 * 3), rtol=0, atol=1e-5)


def test_record_shapes_and_checks(encoded):
    spec = ARCHS.by_name("grid-video")
    assert spec.wire_id == 3 and spec.media == (1,)
    r = GridVideoArch(height=24, width=32, levels=4, hidden1=8, hidden2=0, act=0, upsample=0, head_kernel=1,
                      frames=8)
    assert spec.param_shapes(r) == [(8, 24, 32), (4, 12, 16), (2, 6, 8), (1, 3, 4), (8, 4), (8,), (3, 8), (3,)]
    assert GridVideoArch.unpack(r.pack()) == r and len(r.pack()) == 18
    with pytest.raises(FormatError, match="ARCH.tdelta=0x10 names levels beyond levels=4"):
        GridVideoArch.unpack(r.pack()[:-2] + bytes([16, 0]))
    hdr = encoded.info.header
    assert dataclasses.replace(encoded.info.arch, tdelta=0) == r and hdr.arch == 3 and hdr.media == 1
    with pytest.raises(FormatError, match="ARCH: grid of 7 frames of 32x24 for a stream of 8 frames of 32x24"):
        spec.check(dataclasses.replace(r, frames=7), hdr)
    with pytest.raises(FormatError, match=r"NHDR.arch=3 \(grid-video\) needs NHDR.media=1"):
        spec.check(r, dataclasses.replace(hdr, media=0, frames=1))


def test_encode_decodes_exactly_everywhere(clip, encoded):
    r = encoded
    assert r.info.version == (2, 9) and r.reconstruction.shape == clip.shape
    assert 30.0 < r.psnr < 45.0 and len(r.frame_psnr) == 8 and min(r.frame_psnr) > 28.0
    ref = reference_frames(r.data)
    assert np.array_equal(ref, r.reconstruction)
    for backend in ("numpy", "torch"):
        got = np.stack([f for _, f in nfcodec.decode_frames(r.data, backend=backend)])
        assert np.array_equal(got, r.reconstruction)
    (k, frame), = nfcodec.decode_frames(r.data, frames="5:6")      # random access: frame 5 alone
    assert k == 5 and np.array_equal(frame, r.reconstruction[5])


@pytest.fixture(scope="module")
def larger_clip() -> np.ndarray:
    return moving_clip(8, 48, 64)            # 1 bpp is 3 KB: the container and meTA are a small share


def test_bpp_target_is_met_within_five_percent(larger_clip):
    r = nfcodec.encode(larger_clip, config=TINY_VGRID.replace(grid_lambda=0.0), fps=FPS, bpp=0.5)
    assert 0.475 <= r.bpp <= 0.5 and r.rate_control["mode"] == "bpp"
    assert 33.5 < r.psnr < 36.0


def test_psnr_target_is_reached(larger_clip):
    r = nfcodec.encode(larger_clip, config=TINY_VGRID.replace(grid_lambda=0.0), fps=FPS, psnr=34.0)
    assert 34.0 <= r.psnr < 35.5 and r.bpp < 0.6 and r.rate_control["mode"] == "psnr"


def test_refusals_are_one_line_config_errors(clip):
    with pytest.raises(ConfigError, match="arch 'grid' encodes images; use --arch grid-video"):
        nfcodec.encode(clip, config=TINY_GRID, fps=FPS)
    with pytest.raises(ConfigError, match="arch 'grid-video' encodes videos; use --arch grid for an image"):
        nfcodec.encode(TINY_PNG, config=TINY_VGRID)
    with pytest.raises(ConfigError, match="grid-video cannot grow in width"):
        nfcodec.encode(clip, config=TINY_VGRID.replace(layout="width-chunks"), fps=FPS)
    with pytest.raises(ConfigError, match="grid-video: grid_head_kernel must be 1"):
        nfcodec.encode(clip, config=TINY_VGRID.replace(grid_head_kernel=3), fps=FPS)
    with pytest.raises(ConfigError, match="grid_rate 'causal' and grid_quantizer 'noise' only"):
        nfcodec.encode(clip, config=TINY_VGRID.replace(grid_quantizer="softround"), fps=FPS)


def _restore(data: bytes, mask: int) -> bytes:
    """The same latents stored with ARCH.tdelta = ``mask`` (differences along time where set)."""
    from nfcodec.archs.grid_video import delta_planes, stored_latents
    from nfcodec.bitstream import CodedTensor, decode_tensors, encode_tensors

    info = nfcodec.probe(data)
    r, sizes = info.arch, info.arch.latent_sizes
    chunks = read_container(data).chunks
    ts = decode_tensors(next(c.data for c in chunks if c.ctype == b"TDAT"))
    out = []
    for t in ts:
        if t.index < r.levels:
            q = stored_latents(r, t.index, np.asarray(t.symbols, np.int64).reshape(sizes[t.index]))
            q = delta_planes(q) if (mask >> t.index) & 1 else q
            t = CodedTensor(t.index, t.step, q.reshape(-1).astype(np.int32), shape=q.shape)
        out.append(t)
    rec = dataclasses.replace(r, tdelta=mask)
    return write_container([Chunk(c.ctype, rec.pack() if c.ctype == b"ARCH" else
                                  encode_tensors(out) if c.ctype == b"TDAT" else c.data) for c in chunks])


def test_tdelta_levels_decode_to_the_same_latents(encoded):
    """Format 2.9: a level stored as differences along time (ARCH.tdelta) decodes to the same
    pixels as stored plainly, on both backends and in the reference decoder."""
    for mask in (0, 0b0011, 0b1111):
        data = _restore(encoded.data, mask)
        assert nfcodec.probe(data).arch.tdelta == mask
        assert np.array_equal(reference_frames(data), encoded.reconstruction)
        for backend in ("numpy", "torch"):
            got = np.stack([f for _, f in nfcodec.decode_frames(data, backend=backend)])
            assert np.array_equal(got, encoded.reconstruction)
    # the bound applies to the latents, not to the stored differences
    big = _restore(encoded.data, 0)
    info = nfcodec.probe(big)
    from nfcodec.bitstream import CodedTensor, decode_tensors, encode_tensors

    chunks = read_container(big).chunks
    ts = decode_tensors(next(c.data for c in chunks if c.ctype == b"TDAT"))
    q = np.zeros(info.arch.latent_sizes[1], np.int32)
    q[:, 0, 0] = 20000                     # four planes: running sums 20000, 40000, 60000, 80000
    ts[1] = CodedTensor(1, 0, q.reshape(-1), shape=q.shape)
    rec = dataclasses.replace(info.arch, tdelta=0b10)
    bad = write_container([Chunk(c.ctype, rec.pack() if c.ctype == b"ARCH" else
                                 encode_tensors(ts) if c.ctype == b"TDAT" else c.data) for c in chunks])
    with pytest.raises(FormatError, match=r"grid latent level 1: \|symbol\| 80000 exceeds 32768"):
        nfcodec.decode(bad)


def test_encoder_stores_a_level_as_differences_where_smaller(encoded):
    """The encoder marks a level in tdelta only where its differences code smaller (fit.extra)."""
    from nfcodec.grid_arm import arm_bytes
    from nfcodec.archs.grid_video import delta_planes, stored_latents
    from nfcodec.bitstream import decode_tensors

    mask = encoded.fit.extra["tdelta"]
    assert encoded.info.arch.tdelta == mask
    r = encoded.info.arch
    ts = decode_tensors(next(c.data for c in read_container(encoded.data).chunks if c.ctype == b"TDAT"))
    for l in range(r.levels):
        q = stored_latents(r, l, np.asarray(ts[l].symbols, np.int64).reshape(r.latent_sizes[l]))
        if q.shape[0] > 1:
            smaller = arm_bytes([delta_planes(q)], None) < arm_bytes([q], None)
            assert bool((mask >> l) & 1) == smaller, l


def test_arch_record_mismatch_is_refused(encoded):
    chunks = read_container(encoded.data).chunks
    rec = dataclasses.replace(encoded.info.arch, frames=9)
    bad = write_container([Chunk(c.ctype, rec.pack() if c.ctype == b"ARCH" else c.data) for c in chunks])
    with pytest.raises(FormatError, match="grid of 9 frames"):
        nfcodec.decode(bad)


def test_cli_encode_info_decode_frame(tmp_path, clip):
    from click.testing import CliRunner

    from nfcodec.cli.main import cli
    src = tmp_path / "clip"
    src.mkdir()
    for k, f in enumerate(clip[:4]):
        iio.imwrite(src / f"f{k:03d}.png", f)
    out = tmp_path / "v.nfc"
    res = CliRunner().invoke(cli, ["encode", str(src), "-o", str(out), "--arch", "grid-video", "--preset", "fast",
                                   "--grid-iters", "60", "--grid-ste-iters", "10", "--lambda", "0.01",
                                   "--grid-levels", "3", "--grid-hidden", "6", "--grid-arm", "0", "-q"])
    assert res.exit_code == 0, res.output
    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0 and "grid-video" in info.output and "frames" in info.output
    (tmp_path / "d").mkdir()
    res = CliRunner().invoke(cli, ["decode", str(out), "-o", str(tmp_path / "d" / "%02d.png"), "--frames", "2:3", "-q"])
    assert res.exit_code == 0, res.output
    got = sorted(p.name for p in (tmp_path / "d").iterdir())
    want = next(f for k, f in nfcodec.decode_frames(out.read_bytes(), frames="2:3"))
    assert len(got) == 1 and np.array_equal(iio.imread(tmp_path / "d" / got[0]), want)


def test_a_video_beyond_the_decoder_limits_is_refused_before_the_fit(monkeypatch, clip):
    """Latents count as parameters: a clip whose grid the default limits would refuse is a one-line
    ConfigError at once (not after the fit)."""
    import nfcodec.decoder as dec

    monkeypatch.setattr(dec, "DEFAULT_LIMITS", dec.DecodeLimits(max_params=5000))
    monkeypatch.setattr("nfcodec.grid_encoder.fit_grid", lambda *a, **k: pytest.fail("fitted"))
    with pytest.raises(ConfigError, match=r"this grid-video has 7,087 parameters, more than the decoder limit "
                                          r"5,000: the file would not decode with the default limits; code fewer "
                                          r"frames or smaller ones \(--frames, --resize\)"):
        nfcodec.encode(clip, config=TINY_VGRID, fps=FPS)
