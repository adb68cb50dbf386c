"""Supermask with seed (representation 2): generator golden vectors, payload records, fitting, files."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.bitstream import FormatError, read_container
from nfcodec.bitstream.masks import CodedMask, decode_nested_masks, encode_nested_masks
from nfcodec.cli.main import cli
from nfcodec.config import SupermaskConfig
from nfcodec.decoder import open_stream
from nfcodec.exact import rng
from nfcodec.exact.tables import table_digest
from nfcodec.metrics import psnr
from nfcodec.reps import supermask as sm
from nfcodec.variants import REPRESENTATIONS

from nfc_testdata import FAST, TINY_NERV, TINY_PNG, moving_clip

NORMAL_SHA256 = "f6cbe9b59f70b3509943ab2362fc0479bb1390a65d06806f1605cd62ab22439c"


# --------------------------------------------------------------------------- the generator (golden vectors)

def test_philox_golden_words():
    assert [int(x) for x in rng.raw(0, 0, 4)] == [213000021201967259, 4455796210202625458, 2055444239878205049,
                                                   10411612076246414556]
    assert [int(x) for x in rng.raw(7, 3, 4)] == [8893702929424106994, 13357943582879616415, 927023405073346982,
                                                   5831511509215899605]
    assert [int(x) for x in rng.raw(2**64 - 1, 2**64 - 1, 2)] == [7874205360917102206, 10542541251131640768]


@pytest.mark.parametrize("seed,index,n", [(0, 0, 9), (7, 3, 17), (2**64 - 1, 5, 6), (123456789, 2**40, 13)])
def test_numpy_philox_equals_the_pure_python_specification(seed, index, n):
    assert [int(x) for x in rng.raw(seed, index, n)] == rng.raw_reference(seed, index, n)


def test_stream_is_a_prefix_and_tensors_are_independent():
    long = rng.raw(5, 1, 1000)
    assert np.array_equal(rng.raw(5, 1, 7), long[:7])       # counter-based: n does not change the values
    assert not np.array_equal(rng.raw(5, 2, 7), long[:7])


def test_normal_table_is_pinned():
    t = rng.normal_table()
    assert table_digest(t) == NORMAL_SHA256
    assert t.shape == (65536,) and int(t.min()) == -1107 and int(t.max()) == 1107
    assert np.array_equal(t, -t[::-1])                       # symmetric
    assert abs(float(t.std()) / 256 - 1.0) < 1e-4


def test_normal_table_fallback_decides_ties_exactly():
    # Phi(h) for the half-integer boundary of entry 40000 decides its rounding the same way
    t = rng.normal_table()
    i = 40000
    p = (2 * i + 1) / 2**17
    lo, hi = Fraction(2 * int(t[i]) - 1, 512), Fraction(2 * int(t[i]) + 1, 512)
    assert float(rng._phi_exact(lo)) <= p < float(rng._phi_exact(hi))


def test_sample_golden_values():
    assert rng.sample_symbols(1, 0, rng.Law("normal", Fraction(1)), 8).tolist() == [-132, 264, -259, -477, 328,
                                                                                   -416, 169, -176]
    assert rng.sample_symbols(1, 0, rng.Law("uniform", Fraction(1)), 8).tolist() == [-101, 179, -177, -241, 205,
                                                                                    -229, 125, -129]


def test_law_steps():
    assert rng.law_step(rng.Law("normal", Fraction(1))) == 64            # sigma / 2^8 = 2^-8, exactly
    assert rng.law_step(rng.Law("uniform", Fraction(6, 64 * 900))) == 118
    with pytest.raises(ValueError):
        rng.Law("cauchy", Fraction(1))


@pytest.mark.parametrize("arch", ["siren", "nerv"])
def test_every_parameter_has_a_law(arch):
    spec = ARCHS.by_name(arch)
    from nfcodec.bitstream.headers import NervArch, SirenArch

    record = (SirenArch(in_features=3, out_features=3, width=24, depth=3, w0_first=30.0, w0_hidden=30.0)
              if arch == "siren" else
              NervArch(pe_b=1.25, pe_l=8, mlp_hidden=16, c1=4, h0=3, w0=4, kernel=3, head_kernel=3, act=0, crop=0,
                       factor0=2, channels0=8, factor1=2, channels1=4, factor2=0, channels2=0, factor3=0,
                       channels3=0, factor4=0, channels4=0, factor5=0, channels5=0))
    laws, shapes = spec.init_laws(record), spec.param_shapes(record)
    assert len(laws) == len(shapes)
    for law, shape in zip(laws, shapes):
        fan = math.prod(shape[1:]) if len(shape) >= 2 else None
        if len(shape) == 1:
            assert law.kind == "uniform"
        elif arch == "nerv":
            assert law == rng.Law("normal", Fraction(2, fan))


# --------------------------------------------------------------------------- records

def test_okoshi_linear_rule_gives_the_paper_densities():
    k = sm.level_densities(0.2, 3)
    assert [round(v, 4) for v in k] == [0.2, 0.0595, 0.0129]
    assert sm.level_counts(1000, k) == [200, 60, 13]


def test_nested_levels_round_trip():
    order = np.random.default_rng(0).permutation(50)
    levels = sm.nested_levels(order, [20, 6, 2], 50)
    assert [int(b.sum()) for b in levels] == [20, 6, 2] and [b.size for b in levels] == [50, 20, 6]
    c = sm.level_of(levels, 50)
    assert int((c >= 1).sum()) == 20 and int((c == 3).sum()) == 2
    assert set(np.flatnonzero(c == 3)) == set(order[:2].tolist())


def test_scales_record_round_trip_and_errors():
    s = sm.Scales(3, 8, [572, 100, 37])
    assert sm.pack_scales(s) == bytes([3, 8]) + bytes([0xBC, 0x04, 100, 37])
    back = sm.unpack_scales(sm.pack_scales(s))
    assert back.a == (572, 100, 37) and back.cumulative.tolist() == [0, 572, 672, 709]
    for bad, msg in [(bytes([0, 8]), "levels=0"), (bytes([1, 17, 1]), "frac=17"), (bytes([2, 8, 1, 0]), "a_2=0"),
                     (bytes([1, 8, 1, 9]), "1 bytes left"), (bytes([2, 8, 1]), "SCAL")]:
        with pytest.raises(FormatError, match=msg):
            sm.unpack_scales(bad)


def test_nested_mask_payload_round_trip_and_checks():
    rng_ = np.random.default_rng(1)
    l1 = rng_.random(200) < 0.3
    l2 = rng_.random(int(l1.sum())) < 0.3
    payload = encode_nested_masks([[CodedMask(4, l1)], [CodedMask(4, l2)]])
    levels = decode_nested_masks(payload, sizes=[1, 1, 1, 1, 200])
    assert np.array_equal(levels[0][0].flat, l1) and np.array_equal(levels[1][0].flat, l2)
    with pytest.raises(FormatError, match="n=200 bits, the tensor has 100"):
        decode_nested_masks(payload, sizes=[1, 1, 1, 1, 100])
    with pytest.raises(FormatError, match="levels=0"):
        decode_nested_masks(b"\x00", sizes=[1])
    with pytest.raises(ValueError, match="level 2 lists tensors"):
        encode_nested_masks([[CodedMask(4, l1)], []])
    wrong = encode_nested_masks([[CodedMask(4, l1)], [CodedMask(4, np.ones(7, bool))]])
    with pytest.raises(FormatError, match="level 2 mask 0 .*n=7 bits"):
        decode_nested_masks(wrong, sizes=[1, 1, 1, 1, 200])


# --------------------------------------------------------------------------- fitting and files

def _image_cfg(**kw):
    return FAST.replace(**{"representation": "supermask", "width": 48, "steps": 200, **kw})


@pytest.fixture(scope="module")
def siren_sm():
    return nfcodec.encode(TINY_PNG, config=_image_cfg())


@pytest.fixture(scope="module")
def nerv_sm():
    clip = moving_clip(6, 24, 32)
    return clip, nfcodec.encode(clip, config=TINY_NERV.replace(representation="supermask", c1=16, c2=32,
                                                                 mlp_hidden=64, epochs=60), fps=25)


def test_file_holds_seed_masks_and_scales_and_no_weights(nerv_sm):
    _, r = nerv_sm
    types = [c.ctype for c in read_container(r.data).chunks]
    assert types[:5] == [b"NHDR", b"ARCH", b"SEED", b"MASK", b"SCAL"] and b"TDAT" not in types
    assert r.info.header.representation == 2 and r.info.version == (2, 9)


def test_decoded_psnr_is_the_reported_one_and_backends_agree(nerv_sm):
    clip, r = nerv_sm
    frames = []
    for backend in ("numpy", "torch"):
        stream = open_stream(r.data, backend=backend)
        frames.append(np.stack([f for _, f in stream.frames(range(6))]))
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[0], r.reconstruction)
    mse = np.mean((frames[0].astype(np.float64) - clip) ** 2)
    assert abs(10 * math.log10(255**2 / mse) - r.psnr) < 1e-9
    assert 20.0 < r.psnr < 40.0                       # a real fit of the moving disc, not the mean colour
    (k, one), = nfcodec.decode_frames(r.data, frames="4:5")
    assert k == 4 and np.array_equal(one, frames[0][4])


def test_trained_network_is_the_decoded_network(siren_sm):
    """The training forward (frozen weights, rounded scales) and the file agree to float32 rounding."""
    r = siren_sm
    spec = ARCHS.by_name("siren")
    stream = open_stream(r.data)
    tensors = REPRESENTATIONS.by_name("supermask").materialize(
        spec.param_shapes(stream.record), read_container(r.data).chunks, spec.init_laws(stream.record))
    from nfcodec.models.supermask import frozen_values

    laws = spec.init_laws(stream.record)
    alphas = r.fit.extra["alphas"]
    for i, t in enumerate(tensors):
        w_rand = frozen_values(0, i, laws[i], t.q.shape).double().numpy()
        ratio = t.values()[w_rand != 0] / w_rand[w_rand != 0]
        allowed = {0.0, *np.cumsum(alphas).round(8).tolist()} if t.q.ndim == 2 else {1.0}
        assert set(np.round(ratio, 8).tolist()) <= allowed


def test_scales_are_learned_and_stored(siren_sm):
    info = REPRESENTATIONS.by_name("supermask").describe(
        ARCHS.by_name("siren").param_shapes(nfcodec.probe(siren_sm.data).arch), read_container(siren_sm.data).chunks)
    assert info["weight_data"] == "none" and len(info["levels"]) == 3
    assert info["scales"][0] == pytest.approx(1 / math.sqrt(0.2), abs=2**-8)
    assert [lv["kept"] for lv in info["levels"]] == [round(0.2 * info["masked_weights"]), *[
        lv["kept"] for lv in info["levels"][1:]]]
    # the coded masks stay within a few percent of the binary-entropy bound
    assert info["entropy_bound_bits"] <= info["mask_bits"] <= 1.1 * info["entropy_bound_bits"] + 64 * 8 * 3


def test_seed_changes_the_weights_not_the_size():
    a = nfcodec.encode(TINY_PNG, config=_image_cfg(seed=1, steps=50))
    b = nfcodec.encode(TINY_PNG, config=_image_cfg(seed=2, steps=50))
    assert a.data != b.data and abs(len(a.data) - len(b.data)) <= 8


def test_levels_and_density_options():
    r = nfcodec.encode(TINY_PNG, config=_image_cfg(levels=2, density=0.3, steps=50))
    info = REPRESENTATIONS.by_name("supermask").describe(
        ARCHS.by_name("siren").param_shapes(nfcodec.probe(r.data).arch), read_container(r.data).chunks)
    assert len(info["levels"]) == 2 and info["levels"][0]["density"] == pytest.approx(0.3, abs=0.01)


def test_bad_supermask_settings():
    with pytest.raises(nfcodec.ConfigError, match="density=0.9 outside"):
        SupermaskConfig(density=0.9)
    with pytest.raises(nfcodec.ConfigError, match="levels=0 outside"):
        _image_cfg(levels=0)


def test_corrupt_scal_and_seed_are_format_errors(siren_sm):
    from nfcodec.bitstream import Chunk, write_container

    chunks = read_container(siren_sm.data).chunks
    for ctype, data, msg in [(b"SCAL", bytes([3, 30, 1, 1, 1]), "frac=30"), (b"SCAL", bytes([2, 8, 5, 5]), "MASK has 3"),
                             (b"SEED", bytes([9]) + bytes(8), "rng")]:
        bad = write_container([Chunk(c.ctype, data if c.ctype == ctype else c.data) for c in chunks])
        with pytest.raises(nfcodec.BitstreamError, match=msg):
            nfcodec.decode(bad)


def test_scale_beyond_the_step_table_is_refused(siren_sm):
    from nfcodec.bitstream import Chunk, write_container

    chunks = read_container(siren_sm.data).chunks
    bad = write_container([Chunk(c.ctype, bytes([3, 16, 1, 1, 1]) if c.ctype == b"SCAL" else c.data) for c in chunks])
    with pytest.raises(FormatError, match="beyond the step table"):
        nfcodec.decode(bad)


def test_cli_encode_info_decode(tmp_path):
    out, png = tmp_path / "a.nfc", tmp_path / "a.png"
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--representation", "supermask", "--width", "32",
                            "--depth", "2", "--steps", "60", "--levels", "2", "--density", "0.25", "--seed", "9", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["info", str(out), "--json"])
    info = json.loads(r.output)
    assert [c["ctype"] for c in info["chunks"]][:5] == ["NHDR", "ARCH", "SEED", "MASK", "SCAL"]
    assert "TDAT" not in [c["ctype"] for c in info["chunks"]]
    assert info["payload"]["seed"] == 9 and info["payload"]["weight_data"] == "none"
    assert len(info["payload"]["levels"]) == 2
    text = runner.invoke(cli, ["info", str(out)]).output
    assert "payload (supermask)" in text and "level 1" in text and "weight_data          none" in text
    assert runner.invoke(cli, ["decode", str(out), "-o", str(png), "-q"]).exit_code == 0
    bad = runner.invoke(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "b.nfc"), "--density", "0.9"])
    assert bad.exit_code == 2 and not (tmp_path / "b.nfc").exists()


def test_rate_control_fills_the_band_with_the_density():
    r = nfcodec.encode(moving_clip(4, 24, 32), fps=25, config=TINY_NERV.replace(representation="supermask", epochs=5),
                       bpp=3.0, metadata=False)
    assert 0.95 * 3.0 <= r.bpp <= 3.0
    assert r.rate_control["representation"] == "supermask" and r.rate_control["fits"] == 1
    assert 0.02 <= r.rate_control["densities"][0] <= 0.45


def test_supermask_net_gradients_reach_scores_through_abs():
    from nfcodec.models.supermask import SupermaskNet
    from nfcodec.models.siren import Siren

    base = Siren(2, 3, 8, 1)
    laws = ARCHS.by_name("siren").init_laws(
        __import__("nfcodec").bitstream.headers.SirenArch(in_features=2, out_features=3, width=8, depth=1,
                                                         w0_first=30.0, w0_hidden=30.0))
    net = SupermaskNet(base, 0, laws, SupermaskConfig(), torch.Generator().manual_seed(0))
    x = torch.rand(5, 2)
    net(x).sum().backward()
    s, g = net.scores[0], net.scores[0].grad
    # d/ds of |s| is sign(s): the gradient wrt s flips with the sign of s
    with torch.no_grad():
        s.neg_()
    net.zero_grad()
    net(x).sum().backward()
    assert torch.allclose(net.scores[0].grad, -g)
    assert psnr is not None



def test_rate_control_on_an_image_lands_in_the_band():
    """Prediction and file differ: the masks are re-thresholded from the trained scores into the band."""
    r = nfcodec.encode(TINY_PNG, config=_image_cfg(steps=40), bpp=6.0, metadata=False)
    assert 0.95 * 6.0 <= r.bpp <= 6.0 and r.rate_control["fits"] == 1
    info = REPRESENTATIONS.by_name("supermask").describe(
        ARCHS.by_name("siren").param_shapes(nfcodec.probe(r.data).arch), read_container(r.data).chunks)
    assert info["levels"][0]["density"] == pytest.approx(r.rate_control["densities"][0], abs=0.01)
