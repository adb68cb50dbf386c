"""The latent grid in the width-chunks layout (format 2.8, docs/format.md 4b "Latent levels"):
the latent planes stored coarse to fine, one segment per level, so that a cut file decodes a
coarser image; every level exact on both backends and against the reference decoder."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

import nfcodec
from nfcodec.bitstream import (Chunk, FormatError, GrowRecord, StreamHeader, decode_tensors,
                               encode_tensors, read_container, write_container)
from nfcodec.cli.main import cli
from nfcodec.decoder import open_stream
from nfcodec.errors import ConfigError, UnsupportedFeatureError
from nfcodec.media import load_image
from nfcodec.metrics import psnr
from nfcodec.widthchunks import level_psnr, truncated_file

from exact_reference import reference_frames
from nfc_testdata import TINY_GRID, TINY_PNG

STREAM = TINY_GRID.replace(layout="width-chunks")


@pytest.fixture(scope="module")
def streamed():
    return nfcodec.encode(TINY_PNG, config=STREAM)


def _image(data: bytes, **kw) -> np.ndarray:
    return open_stream(data, **kw).render(0)


def test_segments_hold_the_planes_coarse_to_fine(streamed):
    r = streamed
    c = read_container(r.data)
    assert c.version == (2, 9)
    assert [ch.name for ch in c.chunks] == ["NHDR", "ARCH", "GROW", "pSNR"] + ["SEGM", "TDAT"] * 4 + ["meTA", "NEND"]
    # the 32x24 image has 4 levels (1:1 .. 1:8); the default: one segment per plane here
    assert [lv["width"] for lv in r.levels] == [1, 2, 3, 4]
    tdats = [decode_tensors(ch.data) for ch in c.chunks if ch.ctype == b"TDAT"]
    # segment 1: the 1:8 plane (3 x 4) and the synthesis (8x4, 8, 3x8, 3); then 1:4, 1:2, 1:1
    assert [[t.symbols.size for t in ts] for ts in tdats] == [[12, 32, 8, 24, 3], [48], [192], [768]]
    assert all(t.step == 0 for ts in tdats for t in ts[:1])
    assert r.levels[-1]["psnr"] == pytest.approx(r.psnr, abs=1e-3) and 25.0 < r.psnr < 40.0
    image = load_image(TINY_PNG)
    stored = level_psnr(c.chunks)
    for lv, p in zip(r.levels, stored):
        assert p == pytest.approx(psnr(_image(r.data, level=lv["level"]), image), abs=0.006)
        assert lv["psnr"] == pytest.approx(p, abs=0.006)
    assert r.levels[-1]["psnr"] == max(lv["psnr"] for lv in r.levels)
    assert [lv["end"] for lv in r.levels] == sorted(lv["end"] for lv in r.levels)


def test_every_level_is_exact_whole_cut_and_truncated(streamed):
    data = streamed.data
    plan = open_stream(data).plan
    assert len(plan.levels) == 4
    for lv in plan.levels:
        want = reference_frames(data, level=lv.index)[0]
        for backend in ("numpy", "torch"):
            assert np.array_equal(_image(data, backend=backend, level=lv.index), want)
            cut = open_stream(data[:lv.end], backend=backend, partial=True)
            assert cut.level == lv.index and np.array_equal(cut.render(0), want)
        short = truncated_file(data, level=lv.index)
        assert np.array_equal(_image(short), want)
        assert read_container(short).chunks[1].data == read_container(data).chunks[1].data   # ARCH kept
    assert np.array_equal(_image(data), streamed.reconstruction)


def test_a_complete_stream_decodes_like_the_single_file_of_its_tensors(streamed):
    """The segments' tensors, reordered into one TDAT of a single-layout stream, give the same pixels."""
    c = read_container(streamed.data)
    tdats = [decode_tensors(ch.data) for ch in c.chunks if ch.ctype == b"TDAT"]
    L = 4
    planes = {L - 1: tdats[0][0]} | {L - 1 - k: tdats[k][0] for k in range(1, L)}
    tensors = [planes[l] for l in range(L)] + list(tdats[0][1:])
    tensors = [dataclasses.replace(t, index=i) for i, t in enumerate(tensors)]
    header = dataclasses.replace(StreamHeader.unpack(c.chunks[0].data), layout=0, n_segments=1)
    single = write_container([Chunk(b"NHDR", header.pack()), c.chunks[1], Chunk(b"TDAT", encode_tensors(tensors)),
                              Chunk(b"NEND", b"")])
    assert np.array_equal(_image(single), streamed.reconstruction)


def test_bpp_target_counts_the_segments():
    r = nfcodec.encode(TINY_PNG, config=STREAM.replace(grid_lambda=0.0), bpp=9.0)
    assert 0.95 * 9.0 <= r.bpp <= 9.0, r.bpp
    assert r.rate_control["mode"] == "bpp" and len(r.levels) == 4


def test_psnr_target_applies_to_the_whole_file():
    r = nfcodec.encode(TINY_PNG, config=STREAM, psnr=24.0)
    assert r.psnr >= 24.0 and r.rate_control["mode"] == "psnr" and len(r.levels) == 4
    assert r.levels[-1]["psnr"] == pytest.approx(r.psnr, abs=1e-3)


def test_widths_and_refusals():
    r = nfcodec.encode(TINY_PNG, config=STREAM.replace(widths=(2, 4), grid_iters=60, grid_ste_iters=10))
    assert [lv["width"] for lv in r.levels] == [2, 4]
    for knobs, msg in [
        ({"widths": (1, 3)}, "widths=1,3: with --arch grid a width counts latent planes, coarsest first, and the last "
                             "must be this grid's 4 levels"),
        ({"growing": "spatial"}, "growing='spatial': grid levels grow spectrally (every level is the whole image, "
                                 "finer); spatial and temporal growing are siren's"),
        ({"level_bpp": (1.0, 2.0)}, "--level-bpp is not supported with --arch grid: give --bpp or --psnr for the "
                                    "whole file"),
        ({"grow_training": "slimmable"}, "--level-steps and --grow-training are siren's: the grid trains all its "
                                         "levels together"),
    ]:
        with pytest.raises(ConfigError) as e:
            nfcodec.encode(TINY_PNG, config=STREAM.replace(**knobs))
        assert str(e.value) == msg


def _with_grow(data: bytes, grow: GrowRecord) -> bytes:
    c = read_container(data)
    return write_container([Chunk(b"GROW", grow.pack()) if ch.ctype == b"GROW" else ch for ch in c.chunks],
                           version=c.version)


def test_malformed_streams_are_refused(streamed):
    data = streamed.data
    with pytest.raises(FormatError, match=r"GROW: a grid level holds 1 to 4 latent planes \(ARCH.levels\), not 5"):
        open_stream(_with_grow(data, GrowRecord(0, (1, 2, 3, 5), (0,) * 4)))
    with pytest.raises(UnsupportedFeatureError, match="spatial growing needs a pixelwise architecture, not grid"):
        open_stream(_with_grow(data, GrowRecord(1, (1, 2, 3, 4), (8, 16, 24, 32))))
    # a segment whose payload codes one plane too many
    c = read_container(data)
    chunks, k = [], 0
    for ch in c.chunks:
        if ch.ctype == b"TDAT":
            k += 1
            if k == 2:
                ts = decode_tensors(ch.data)
                extra = dataclasses.replace(ts[0], index=1)
                ch = Chunk(b"TDAT", encode_tensors([ts[0], extra]))
        chunks.append(ch)
    with pytest.raises(FormatError):
        open_stream(write_container(chunks, version=c.version)).render(0)


def test_cli_encodes_lists_and_decodes_levels(tmp_path):
    out, png = tmp_path / "g.nfc", tmp_path / "g2.png"
    run = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--arch", "grid", "--layout", "width-chunks",
                                   "--widths", "2,4", "--grid-levels", "4", "--grid-hidden", "8", "--grid-iters", "100",
                                   "--grid-ste-iters", "20", "--grid-arm", "0", "-q"])
    assert run.exit_code == 0, run.output
    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0 and "levels (spectral growing)" in info.output, info.output
    assert "level 1: planes 2 " in info.output and "level 2: planes 4 " in info.output, info.output
    run = CliRunner().invoke(cli, ["decode", str(out), "-o", str(png), "--level", "1"])
    assert run.exit_code == 0, run.output
    assert np.array_equal(load_image(png), reference_frames(out.read_bytes(), level=1)[0])
    bad = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "b.nfc"), "--arch", "grid",
                                   "--layout", "width-chunks", "--widths", "1,2", "--grid-levels", "4", "-q"])
    assert bad.exit_code != 0 and "the last must be this grid's 4 levels" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "b.nfc").exists()


def test_prefix_term_is_the_cut_files_synthesis():
    """forward_prefix's second output is the model's image with the planes finer than ``cut`` at zero,
    which is what a cut file decodes (zero planes upsample to zeros)."""
    import torch

    from nfcodec.models.grid import GridField

    torch.manual_seed(0)
    model = GridField(24, 32, 4, (8,))
    with torch.no_grad():
        for y in model.latents:
            y.normal_(0, 2)
    full, coarse, bits = model.forward_prefix("hard", 2)
    out, bits2 = model("hard")
    assert torch.equal(full, out) and torch.equal(bits, bits2)
    with torch.no_grad():
        for l in (0, 1):
            model.latents[l].zero_()
    zeroed, _ = model("hard")
    assert torch.allclose(coarse, zeroed, atol=1e-6) and not torch.allclose(coarse, full, atol=1e-2)


def test_prefix_weight_setting_errors():
    with pytest.raises(ConfigError, match="with grid_head_kernel > 1 or grid_crop set it must be 0"):
        nfcodec.encode(TINY_PNG, config=STREAM.replace(grid_head_kernel=3))
    with pytest.raises(ConfigError, match=r"grid_prefix_weight=-1.0 outside \[0.0, 100.0\]"):
        STREAM.replace(grid_prefix_weight=-1.0)
