"""XFRM in streams (format.md 3.6 and 4d): encoder, both decoder backends and the reference decoder.

The encoder fits a transformed copy of the frames (``transform=`` knob, ``nfc encode --transform``)
and writes the XFRM chunk after the header chunks; every decoder renders as usual and applies the
exact inverse (a partial level: at the fitted positions of its pixels).  The encoder's
reconstruction and PSNR are the original frames', and must be what every decoder returns.
"""
from __future__ import annotations

import json
import math
import re
import struct

import numpy as np
import pytest
from click.testing import CliRunner

import nfcodec
from exact_reference import reference_frames
from nfc_testdata import TINY_PNG, moving_clip, smooth_image
from nfcodec import transforms as T
from nfcodec.bitstream import Chunk, FormatError, read_container, write_container
from nfcodec.bitstream.errors import FieldRangeError
from nfcodec.cli.main import cli
from nfcodec.decoder import open_stream
from nfcodec.errors import ConfigError
from nfcodec.media import load_image
from nfcodec.metrics import psnr
from nfcodec.xfrm_stream import XFRM_BYTES

TINY = dict(preset="fast", width=8, depth=2, steps=30, metadata=False)
BACKENDS = ("numpy", "torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny fits run faster on one torch thread (and do not fight the machine's other jobs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth 32 x 48 test image."""
    return smooth_image(32, 48)


@pytest.fixture(scope="module")
def encoded(image) -> dict:
    return {name: nfcodec.encode(image, transform=name, transform_param=param, **TINY)
            for name, param in (("permute", 7), ("gamma", 2000))}


def _types(data: bytes) -> list[bytes]:
    return [c.ctype for c in read_container(data).chunks]


def _rewrite(data: bytes, edit) -> bytes:
    c = read_container(data)
    return write_container(edit(list(c.chunks)), version=c.version)


def _with_xfrm(data: bytes, body: bytes) -> bytes:
    return _rewrite(data, lambda cs: [Chunk(b"XFRM", body) if c.ctype == b"XFRM" else c for c in cs])


def _without_xfrm(data: bytes) -> bytes:
    return _rewrite(data, lambda cs: [c for c in cs if c.ctype != b"XFRM"])


@pytest.mark.parametrize("name,param", [("permute", 7), ("gamma", 2000)])
def test_stream_decodes_to_the_encoders_reconstruction(encoded, image, name, param):
    r = encoded[name]
    assert _types(r.data) == [b"NHDR", b"ARCH", b"XFRM", b"TDAT", b"NEND"]
    xfrm = next(c.data for c in read_container(r.data).chunks if c.ctype == b"XFRM")
    assert xfrm == T.record_for(name, param).pack() == struct.pack("<BI", 1 if name == "permute" else 2, param)
    assert r.psnr == psnr(r.reconstruction, image) and r.bpp == 8 * len(r.data) / (32 * 48)
    for backend in BACKENDS:
        assert nfcodec.decode(r.data, backend=backend).image.tobytes() == r.reconstruction.tobytes(), backend
    assert reference_frames(r.data)[0].tobytes() == r.reconstruction.tobytes()
    # the order of operations: render the network as without the chunk, then invert
    fitted = nfcodec.decode(_without_xfrm(r.data)).image
    assert np.array_equal(T.apply_inverse(fitted, T.record_for(name, param)), r.reconstruction)


def test_default_writes_no_chunk(image):
    plain = nfcodec.encode(image, **TINY)
    assert nfcodec.encode(image, transform="none", **TINY).data == plain.data
    assert b"XFRM" not in _types(plain.data)
    # an explicit identity record decodes as no chunk
    data = _rewrite(plain.data, lambda cs: cs[:2] + [Chunk(b"XFRM", bytes(5))] + cs[2:])
    assert nfcodec.decode(data).image.tobytes() == plain.reconstruction.tobytes()
    assert reference_frames(data)[0].tobytes() == plain.reconstruction.tobytes()


BAD = {
    "unknown-id": (struct.pack("<BI", 9, 0), FieldRangeError,
                   "XFRM.transform=9 not in {0: 'identity', 1: 'permute', 2: 'gamma'}", "transform id 9"),
    "gamma-high": (struct.pack("<BI", 2, 4001), FieldRangeError,
                   "XFRM.param=4001 outside [250, 4000] for transform gamma (exponent in thousandths)",
                   "gamma exponent 4001"),
    "gamma-low": (struct.pack("<BI", 2, 249), FieldRangeError,
                  "XFRM.param=249 outside [250, 4000] for transform gamma (exponent in thousandths)",
                  "gamma exponent 249"),
    "identity-param": (struct.pack("<BI", 0, 3), FieldRangeError,
                       "XFRM.param=3 outside [0, 0] for transform identity", "identity with param 3"),
    "length": (b"\x01\x00", FormatError, "XFRM: 2 bytes, expected 5", "one 5-byte chunk"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_xfrm_is_a_one_line_format_error(encoded, tmp_path, case):
    body, error, message, ref_message = BAD[case]
    data = _with_xfrm(encoded["permute"].data, body)
    for backend in BACKENDS:
        with pytest.raises(error) as e:
            nfcodec.decode(data, backend=backend)
        assert str(e.value) == message and isinstance(e.value, FormatError)
    with pytest.raises(ValueError, match=re.escape(ref_message)):
        reference_frames(data)
    path = tmp_path / "bad.nfc"
    path.write_bytes(data)
    r = CliRunner().invoke(cli, ["decode", str(path), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and r.stderr.strip() == f"nfc: error: {message}" and "Traceback" not in r.output


def test_cli_transform_end_to_end(tmp_path):
    out, png = tmp_path / "t.nfc", tmp_path / "t.png"
    run = CliRunner().invoke
    r = run(cli, ["encode", str(TINY_PNG), "-o", str(out), "--preset", "fast", "--width", "8", "--depth", "2",
                  "--steps", "30", "--transform", "permute", "--transform-param", "5", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["config"]["xfrm"] == {"transform": "permute", "transform_param": 5}
    data = out.read_bytes()
    assert struct.unpack("<BI", next(c.data for c in read_container(data).chunks if c.ctype == b"XFRM")) == (1, 5)
    assert run(cli, ["decode", str(out), "-o", str(png), "-q"]).exit_code == 0
    got = load_image(png)
    assert got.tobytes() == reference_frames(data)[0].tobytes()
    assert report["psnr"] == pytest.approx(psnr(got, load_image(TINY_PNG)))
    info = run(cli, ["info", str(out)])
    assert "transform      permute (param 5)" in info.stdout
    bad = run(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "b.nfc"), "--transform", "gamma",
                    "--transform-param", "100"])
    assert bad.exit_code == 1 and bad.stderr.strip().startswith("nfc: error: transform_param=100 does not fit")


def test_config_errors_before_fitting(image):
    with pytest.raises(ConfigError, match="spatial growing"):
        nfcodec.encode(image, layout="width-chunks", growing="spatial", transform="permute")
    with pytest.raises(ConfigError, match="psnr= cannot be targeted with transform gamma"):
        nfcodec.encode(image, psnr=30, transform="gamma")
    with pytest.raises(ConfigError, match="transform='swap' must be one of none, permute, gamma"):
        nfcodec.encode(image, transform="swap")
    with pytest.raises(ConfigError, match="less than the 17-byte XFRM chunk"):
        nfcodec.encode(image, bpp=8 * 17 / (32 * 48), transform="gamma")


def test_width_chunks_levels_and_partial_rendering(image):
    """Spatial growing with gamma: every level (whole file and prefix) on both backends equals the
    reference; pSNR holds the original-domain PSNRs; truncate keeps XFRM.  The same stream with a
    permute record exercises rendering a level's pixels at their fitted positions."""
    r = nfcodec.encode(image, layout="width-chunks", widths=(4, 8), growing="spatial", transform="gamma",
                       **TINY)
    assert _types(r.data)[:6] == [b"NHDR", b"ARCH", b"GROW", b"pSNR", b"XFRM", b"SEGM"]
    assert r.reconstruction.tobytes() == nfcodec.decode(r.data).image.tobytes()
    from nfcodec.widthchunks import level_psnr

    assert level_psnr(read_container(r.data).chunks) == tuple(round(lv["psnr"], 2) for lv in r.levels)
    for data in (r.data, _with_xfrm(r.data, struct.pack("<BI", 1, 3))):
        for lv in r.levels:
            want = reference_frames(data, level=lv["level"])[0]
            assert want.shape == (32, lv["cover"], 3)
            for backend in BACKENDS:
                for source in (data, data[:lv["end"]]):
                    s = open_stream(source, backend=backend, level=lv["level"] if source is data else None,
                                    partial=True)
                    assert s.render(0).tobytes() == want.tobytes()
    assert r.levels[-1]["cover"] == 48 and r.levels[-1]["psnr"] == round(r.psnr, 4)
    cut = nfcodec.truncate(r.data, level=1)
    assert b"XFRM" in _types(cut)
    assert nfcodec.decode(cut).image.tobytes() == reference_frames(r.data, level=1)[0].tobytes()
    late = _rewrite(r.data, lambda cs: [c for c in cs if c.ctype != b"XFRM"][:5] + [cs[4]]
                    + [c for c in cs if c.ctype != b"XFRM"][5:])
    with pytest.raises(FormatError, match="XFRM at offset .* comes after the first SEGM"):
        nfcodec.decode(late)
    with pytest.raises(AssertionError, match="XFRM after a SEGM"):
        reference_frames(late)


@pytest.mark.parametrize("layout", ["single", "tiles"])
def test_rate_control_band_holds_with_the_chunk(image, layout):
    target = 5.0
    r = nfcodec.encode(image, bpp=target, transform="permute", layout=layout, tile=16,
                       **{**TINY, "width": 12})
    pixels = 32 * 48
    assert math.ceil(0.95 * target * pixels / 8) <= len(r.data) <= math.floor(target * pixels / 8)
    assert r.rate_control["target"] == target and r.rate_control["bpp"] == round(r.bpp, 6)
    assert b"XFRM" in _types(r.data) and XFRM_BYTES == 17
    assert reference_frames(r.data)[0].tobytes() == r.reconstruction.tobytes()
    assert r.psnr == psnr(r.reconstruction, image)


def test_nerv_video_permute_random_access():
    clip = moving_clip(4, 16, 20)
    r = nfcodec.encode(clip, preset="fast", c1=4, c2=8, min_channels=4, mlp_hidden=16, pe_l=8, epochs=5,
                       transform="permute", metadata=False)
    assert r.info.header.arch == 1 and b"XFRM" in _types(r.data)
    assert reference_frames(r.data).tobytes() == r.reconstruction.tobytes()
    (k, frame), = nfcodec.decode_frames(r.data, frames="2:3", backend="torch")
    assert k == 2 and frame.tobytes() == r.reconstruction[2].tobytes()
    assert r.frame_psnr == tuple(psnr(a, b) for a, b in zip(r.reconstruction, clip))
