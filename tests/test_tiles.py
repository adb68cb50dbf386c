"""The tiles layout and prior-coded weights (format 2.3, docs/format.md 4c): geometry, exact residuals,
closed-loop encodes from scratch and from a prior, prior lookup and its errors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nfcodec
from nfc_testdata import FAST
from nfcodec.bitstream import FormatError, read_container
from nfcodec.bitstream.headers import SirenArch
from nfcodec.exact.layers import QTensor
from nfcodec.models.tiled import TiledSiren, forward, grid_coords, siren_init, siren_shapes
from nfcodec.models.siren import Siren
from nfcodec.priors import PriorNotFoundError, pack_prior, prior_from_float
from nfcodec.quant import STEP_TABLE
from nfcodec.residual import add_prior
from nfcodec.tiles import TileGrid

TILED = dataclasses.replace(FAST, layout="tiles").replace(tile=16, width=8, depth=2, steps=150)
RECORD = SirenArch(in_features=2, out_features=3, width=8, depth=2, w0_first=30.0, w0_hidden=30.0)


def make_prior(tmp_path, seed=0, k=2, lr=0.01, masks=None, name="tiny.nfp"):
    shapes = siren_shapes(2, 3, 8, 2)
    tensors = [t[0].numpy() for t in siren_init(1, shapes, 30.0, torch.Generator().manual_seed(seed))]
    if masks is not None:
        tensors = [t * m for t, m in zip(tensors, masks)]
    prior = prior_from_float("siren", RECORD, 0, (1, 16, 16), tensors,
                             lrs=[np.full(s, lr, np.float32) for s in shapes], masks=masks, meta={"inner_steps": k})
    path = tmp_path / name
    path.write_bytes(pack_prior(prior))
    return path


# --------------------------------------------------------------------------- geometry, model, residuals

def test_tile_grid_split_merge_and_seams():
    g = TileGrid(24, 32, 16, 16)
    assert (g.rows, g.cols, g.count) == (2, 2, 4) and g.box(3) == (16, 24, 16, 32)
    frame = np.arange(24 * 32 * 3).reshape(24, 32, 3)
    tiles, inside = g.split(frame)
    assert tiles.shape == (4, 256, 3) and inside.sum() == 24 * 32
    assert np.array_equal(tiles[1, 0], frame[0, 16]) and np.array_equal(g.merge(tiles), frame)
    seams = g.seam_mask(1)
    assert seams.sum() == 32 * 2 + 24 * 2 - 4 and seams[15, 0] and seams[16, 0] and not seams[14, 0]


def test_tiled_siren_is_one_siren_per_tile():
    m = TiledSiren(3, 2, 3, 8, 2, generator=torch.Generator().manual_seed(1))
    x = grid_coords(5, 4)[None]
    for n in range(3):
        s = Siren(2, 3, 8, 2)
        with torch.no_grad():
            for p, q in zip(s.parameters(), m.params):
                p.copy_(q[n])
        assert torch.allclose(m(x)[n], s(x[0]), atol=1e-6)
    assert forward(list(m.params), x, 30.0, 30.0).shape == (3, 20, 3)


def test_add_prior_is_exact_and_broadcasts():
    p = QTensor(np.array([[3, -5], [0, 7]], np.int64), 100)
    r = QTensor(np.array([[[1, 0], [0, -2]], [[0, 0], [4, 0]]], np.int64), 37)
    (out,) = add_prior([p], [r])
    want = p.values()[None] + r.values()
    assert out.q.shape == (2, 2, 2) and np.array_equal(out.values(), want)
    assert STEP_TABLE[out.step] == 2.0 ** -(100 // 8 + 4)
    zero = QTensor(np.zeros((2, 2), np.int64), 191)        # an all-zero residual may use any step
    assert np.array_equal(add_prior([p], [zero])[0].values(), p.values())
    with pytest.raises(FormatError, match="tensor 0: the residual has nonzero symbols on step 170; prior-coded "
                                          "tensors need steps below 160"):
        add_prior([p], [QTensor(np.ones((2, 2), np.int64), 170)])
    with pytest.raises(FormatError, match=r"tensor 0: shape \(3, 2\) does not match the prior's \(2, 2\)"):
        add_prior([p], [QTensor(np.ones((3, 2), np.int64), 10)])


# --------------------------------------------------------------------------- closed-loop encodes

def test_scratch_tiles_roundtrip_both_backends(tiny_image):
    r = nfcodec.encode(tiny_image, config=TILED)
    c = read_container(r.data)
    assert [ch.name for ch in c.chunks][:3] == ["NHDR", "ARCH", "TILE"] and c.version == (2, 9)
    assert r.info.header.layout == 2 and r.psnr > 20
    for backend in ("numpy", "torch"):
        assert np.array_equal(nfcodec.decode(r.data, backend=backend).image, r.reconstruction)


def test_pruned_tiles_roundtrip(tiny_image):
    r = nfcodec.encode(tiny_image, config=TILED.replace(representation="pruned", sparsity=0.3))
    assert r.info.header.representation == 1
    assert np.array_equal(nfcodec.decode(r.data).image, r.reconstruction)


def test_prior_encode_decode_and_lookup(tiny_image, tmp_path, monkeypatch):
    path = make_prior(tmp_path)
    r = nfcodec.encode(tiny_image, config=FAST.replace(prior=str(path), steps=40))
    assert r.info.header.layout == 2
    digest = next(ch.data for ch in read_container(r.data).chunks if ch.ctype == b"PRIR")
    import hashlib

    assert digest == hashlib.sha256(path.read_bytes()).digest()
    assert np.array_equal(nfcodec.decode(r.data, prior=str(path)).image, r.reconstruction)
    assert np.array_equal(nfcodec.decode(r.data, prior=str(tmp_path), backend="torch").image, r.reconstruction)
    monkeypatch.setenv("NFC_PRIOR_PATH", str(tmp_path))
    assert np.array_equal(nfcodec.decode(r.data).image, r.reconstruction)
    monkeypatch.delenv("NFC_PRIOR_PATH")
    with pytest.raises(PriorNotFoundError, match=f"this stream needs prior {digest.hex()}; not found"):
        nfcodec.decode(r.data)
    other = make_prior(tmp_path / "..", seed=1, name="other.nfp")
    with pytest.raises(PriorNotFoundError, match=f"has hash .* the stream needs {digest.hex()}"):
        nfcodec.decode(r.data, prior=str(other))


def test_prior_residuals_code_cheaper_than_weights(tiny_image, tmp_path):
    """A prior close to the image's own tiles: the residuals cost a fraction of the weights' bytes."""
    scratch = nfcodec.encode(tiny_image, config=TILED.replace(steps=150, rd_search=False))
    torch.manual_seed(0)
    m = TiledSiren(1, 2, 3, 8, 2, generator=torch.Generator().manual_seed(0))
    crop = torch.from_numpy(tiny_image[:16, :16].reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(150):
        loss = ((m(grid_coords(16, 16)[None])[0] - crop) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    shapes = siren_shapes(2, 3, 8, 2)
    prior = prior_from_float("siren", RECORD, 0, (1, 16, 16), [p.detach()[0].numpy() for p in m.params], meta={})
    (tmp_path / "fit.nfp").write_bytes(pack_prior(prior))
    coded = nfcodec.encode(tiny_image, config=TILED.replace(prior=str(tmp_path / "fit.nfp"), steps=150,
                                                            rd_search=False))
    assert len(shapes) == 6

    def tdat(data):
        return sum(len(ch.data) for ch in read_container(data).chunks if ch.ctype == b"TDAT")

    assert coded.psnr > scratch.psnr - 0.5
    assert tdat(coded.data) < 0.9 * tdat(scratch.data), (tdat(coded.data), tdat(scratch.data))


def test_sparse_prior_keeps_its_zeros(tiny_image, tmp_path):
    shapes = siren_shapes(2, 3, 8, 2)
    rng = np.random.default_rng(0)
    masks = [rng.random(s) > 0.4 if len(s) == 2 else np.ones(s, bool) for s in shapes]
    path = make_prior(tmp_path, masks=masks)
    r = nfcodec.encode(tiny_image, config=FAST.replace(prior=str(path), steps=30))
    assert r.info.header.representation == 1          # the prior's zeros are coded as a mask
    d = nfcodec.decode(r.data, prior=str(path))
    assert np.array_equal(d.image, r.reconstruction)
    from nfcodec.decoder import open_stream

    stream = open_stream(r.data, priors=[str(path)])
    assert stream.info.header.representation == 1
    c = read_container(r.data)
    assert [ch.name for ch in c.chunks if ch.critical][:6] == ["NHDR", "ARCH", "TILE", "PRIR", "MASK", "TDAT"]


# --------------------------------------------------------------------------- errors

def test_prior_errors(tiny_image, tmp_path):
    with pytest.raises(nfcodec.ConfigError, match="layout width-chunks cannot be coded from a prior"):
        nfcodec.encode(tiny_image, config=FAST.replace(prior=str(make_prior(tmp_path)), layout="width-chunks"))
    with pytest.raises(nfcodec.ConfigError, match="representation supermask stores no weight values"):
        nfcodec.encode(tiny_image, config=FAST.replace(prior=str(make_prior(tmp_path)), representation="supermask"))
    with pytest.raises(Exception, match="no-such.nfp"):
        nfcodec.encode(tiny_image, config=FAST.replace(prior=str(tmp_path / "no-such.nfp")))


def test_cli_prior_flags(tmp_path):
    from nfcodec.cli.main import cli
    from nfc_testdata import TINY_PNG

    runner = CliRunner()
    path = make_prior(tmp_path)
    out = tmp_path / "t.nfc"
    r = runner.invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--prior", str(path), "--steps", "20", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["decode", str(out), "-o", str(tmp_path / "t.png"), "-q"])
    assert r.exit_code == 1 and r.output.startswith("nfc: error: this stream needs prior ") and \
        r.output.count("\n") == 1 and not (tmp_path / "t.png").exists()
    r = runner.invoke(cli, ["decode", str(out), "-o", str(tmp_path / "t.png"), "--prior", str(path), "-q"])
    assert r.exit_code == 0 and (tmp_path / "t.png").exists()
    r = runner.invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--prior", str(path), "--no-prior", "-f"])
    assert r.exit_code == 2 and "give --prior or --no-prior, not both" in r.output


# --------------------------------------------------------------------------- the packaged prior and the presets
def test_packaged_default_image_prior_is_held_out_of_evaluation():
    from nfcodec.priors import default_prior

    prior = default_prior(0)
    assert prior is not None and prior.name == "default-image"
    assert (prior.arch, prior.media, prior.size) == ("siren", 0, (1, 64, 64))
    assert (prior.record.width, prior.record.depth) == (12, 3)
    assert prior.nbytes < 64 * 1024
    assert prior.meta["test_time_rescale"] is True and prior.meta["inner_steps"] == 16
    trained = " ".join(map(str, prior.meta["data"])) + " " + str(prior.meta["command"])
    for held_out in ("kodim01", "kodim02", "kodim03", "kodim04", "kodim05", "kodim06", "kodim12"):
        assert held_out not in trained


@pytest.mark.parametrize("video, knobs, bpp, psnr, expected", [
    (False, {}, None, None, "default"),
    (False, {}, 0.4, None, "default"),
    (False, {}, 0.29, None, ""),             # below AUTO_PRIOR_MIN_BPP: a scratch SIREN measures better
    (False, {}, None, 30.0, ""),
    (False, {"width": 32}, 0.4, None, ""),   # a network chosen
    (False, {"representation": "pruned"}, None, None, ""),
    (False, {"layout": "width-chunks"}, None, None, ""),
    (False, {"layout": "tiles"}, None, None, "default"),
    (True, {}, None, None, ""),
])
def test_auto_prior_applies_only_where_it_measured_better(video, knobs, bpp, psnr, expected):
    from nfcodec.api import _auto_prior
    from nfcodec.config import get_preset

    cfg = get_preset("fast").replace(**knobs)
    assert cfg.tiles.prior == "auto" and cfg.tiles.tile_steps == 2000
    assert _auto_prior(cfg, video, knobs, bpp, psnr) == expected


def test_a_bpp_below_the_smallest_tiles_file_is_refused(tmp_path):
    path = make_prior(tmp_path)
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(nfcodec.ConfigError, match=r"^bpp=0.4 is 12 bytes for 256 pixels; the smallest tiles file "
                                                   r"\(1 tiles\) is \d+ bytes: ask for at least [\d.]+ bpp, or use --no-prior$"):
        nfcodec.encode(img, preset="fast", prior=str(path), tile_steps=5, bpp=0.4)
