"""Magnitude pruning (nfcodec.prune), the pruning phase of the fit, and the pruned representation."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import nfcodec
from nfcodec.errors import UnsupportedFeatureError
from nfc_testdata import TINY_NERV, moving_clip
from nfcodec import prune
from nfcodec.bitstream import Chunk, FormatError, StreamHeader, read_container, write_container
from nfcodec.bitstream.masks import CodedMask, decode_masks, encode_masks, mask_report
from nfcodec.config import FitConfig, PruneConfig, QuantConfig
from nfcodec.fit import fit
from nfcodec.models import Siren
from nfcodec.render import image_coords, image_targets
from nfcodec.variants import REPRESENTATIONS

SMALL = dict(steps=60, width=32, depth=2, batch_pixels=0, seed=0, metadata=False)


def _params():
    g = torch.Generator().manual_seed(0)
    shapes = [(32, 2), (32,), (32, 32), (32,), (24, 32), (24,), (3, 24), (3,), (4, 8, 3, 3)]
    scales = [1.0, 1.0, 0.1, 1.0, 0.5, 1.0, 1.0, 1.0, 0.2]
    return [torch.randn(s, generator=g) * k for s, k in zip(shapes, scales)]


def test_prunable_tensors_are_big_weight_matrices_and_kernels():
    assert [prune.is_prunable(p) for p in _params()] == [False, False, True, False, True, False, False, False, True]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_global_sparsity_is_exact_with_one_threshold(sparsity):
    params = _params()
    masks = prune.magnitude_masks(params, sparsity, "global")
    assert [m is None for m in masks] == [not prune.is_prunable(p) for p in params]
    total = sum(p.numel() for p, m in zip(params, masks) if m is not None)
    pruned = sum(int((~m).sum()) for m in masks if m is not None)
    assert pruned == round(sparsity * total)
    kept = torch.cat([p[m].abs() for p, m in zip(params, masks) if m is not None])
    gone = torch.cat([p[~m].abs() for p, m in zip(params, masks) if m is not None])
    if gone.numel():
        assert gone.max() <= kept.min()       # one threshold over every prunable tensor
    if sparsity >= 0.5:                        # the small-scale matrix loses more than its share
        assert (~masks[2]).float().mean() > sparsity


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_layer_sparsity_is_the_same_share_in_every_tensor(sparsity):
    params = _params()
    masks = prune.magnitude_masks(params, sparsity, "layer")
    for p, m in zip(params, masks):
        if m is not None:
            assert int((~m).sum()) == round(sparsity * p.numel())
            assert p[~m].abs().max() <= p[m].abs().min()


def test_pruned_weights_stay_pruned_across_rounds():
    params = _params()
    first = prune.magnitude_masks(params, 0.3, "global")
    params[2].mul_(100.0)              # the pruned ones are now big, but they stay pruned
    second = prune.magnitude_masks(params, 0.5, "global", first)
    for a, b in zip(first, second):
        if a is not None:
            assert not (b & ~a).any()


def test_schedule_is_geometric_and_ends_exactly():
    s = prune.schedule(0.9, 3)
    assert s[-1] == 0.9 and len(s) == 3
    assert np.allclose([1 - x for x in s], [0.1 ** (1 / 3), 0.1 ** (2 / 3), 0.1])
    assert prune.schedule(0.5, 1) == [0.5]
    assert prune.round_steps(100, 0.3, 3) == 10


def _fit(image, prune_cfg, qat_fraction=0.0, qat_mode="ste", width=32, depth=3, steps=60, progress=None):
    model = Siren(2, 3, width, depth).init_weights_(torch.Generator().manual_seed(0))
    h, w = image.shape[:2]
    result = fit(model, image_coords(h, w), image_targets(image),
                 FitConfig(steps=steps, batch_pixels=0, warmup_steps=5, lr=3e-3, device="cpu"),
                 QuantConfig(bits=10, qat_fraction=qat_fraction, qat_mode=qat_mode), prune_cfg, progress=progress)
    return model, result


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("qat", [(0.0, "ste"), (0.3, "ste"), (0.3, "noise")])
def test_fine_tune_keeps_pruned_weights_at_zero(tiny_image, scope, qat):
    seen = []
    model, r = _fit(tiny_image, PruneConfig(sparsity=0.6, prune_scope=scope, prune_rounds=2, prune_fraction=0.5),
                    qat_fraction=qat[0], qat_mode=qat[1], progress=lambda s, t, p: seen.append((s, t)))
    params = list(model.parameters())
    assert len(r.masks) == len(params) == len(r.steps)
    masked = [i for i, m in enumerate(r.masks) if m is not None]
    assert masked == [2, 4]                                 # the two hidden 32x32 matrices; no bias
    total = sum(r.masks[i].size for i in masked)
    pruned = sum(int((~r.masks[i]).sum()) for i in masked)
    if scope == "global":
        assert pruned == round(0.6 * total)
    else:
        assert all(int((~r.masks[i]).sum()) == round(0.6 * r.masks[i].size) for i in masked)
    for i in masked:
        w = params[i].detach().numpy().ravel()
        assert r.masks[i].dtype == bool and r.masks[i].shape == (params[i].numel(),)
        assert np.all(w[~r.masks[i]] == 0.0)                  # exactly zero after fine-tune (and QAT)
        assert np.count_nonzero(w[r.masks[i]]) == r.masks[i].sum()
    # progress counts every phase: 60 fit + 2 x 15 fine-tune (+ 18 QAT)
    assert seen[-1] == (90 + round(60 * qat[0]),) * 2


def test_sparsity_zero_gives_all_true_masks_and_the_dense_fit(tiny_image):
    dense_model, dense = _fit(tiny_image, None)
    model, r = _fit(tiny_image, PruneConfig(sparsity=0.0))
    assert dense.masks == ()
    assert [m is None for m in r.masks] == [True, True, False, True, False, True, True, True]
    assert all(m.all() for m in r.masks if m is not None)
    for a, b in zip(dense_model.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_quantization_steps_are_chosen_from_the_survivors(tiny_image):
    from nfcodec.fit import choose_steps

    model, r = _fit(tiny_image, PruneConfig(sparsity=0.5))
    assert r.steps == choose_steps(list(model.parameters()), 10)


# --------------------------------------------------------------------------- the file


@pytest.fixture(scope="module")
def pruned_pair(tiny_image):
    dense = nfcodec.encode(tiny_image, **SMALL, representation="dense")
    pruned = nfcodec.encode(tiny_image, **SMALL, representation="pruned", sparsity=0.5)
    return dense, pruned


def test_encode_pruned_image_end_to_end(pruned_pair, tiny_image):
    dense, pruned = pruned_pair
    assert pruned.info.header.representation == 1
    assert [c.ctype for c in read_container(pruned.data).chunks][:4] == [b"NHDR", b"ARCH", b"MASK", b"TDAT"]
    out = nfcodec.decode(pruned.data)
    assert np.array_equal(out.image, pruned.reconstruction)
    assert len(pruned.data) < len(dense.data)
    # 60 steps underfit this image: the fine-tune steps after pruning make up for the lost weights
    assert 20.0 < pruned.psnr < 30.0 and abs(pruned.psnr - dense.psnr) < 3.0
    (mask,) = [c for c in read_container(pruned.data).chunks if c.ctype == b"MASK"]
    (m,) = decode_masks(mask.data)
    assert m.index == 2 and m.flat.size == 1024 and int(m.flat.sum()) == 512
    assert np.array_equal(m.flat, pruned.fit.masks[2])


def test_pruned_weights_decode_as_zero(pruned_pair):
    from nfcodec.decoder import open_stream

    _, pruned = pruned_pair
    w = open_stream(pruned.data).program.layers[1].q.ravel()      # tensor 2: SIREN layer 1 weights
    assert np.all(w[~pruned.fit.masks[2]] == 0) and np.count_nonzero(w) <= 512


def _replace(data: bytes, ctype: bytes, payload: bytes | None) -> bytes:
    chunks = [c for c in read_container(data).chunks if not (c.ctype == ctype and payload is None)]
    return write_container([Chunk(c.ctype, payload) if c.ctype == ctype else c for c in chunks])


def test_mask_and_tdat_must_agree(pruned_pair):
    _, pruned = pruned_pair
    (m,) = decode_masks([c for c in read_container(pruned.data).chunks if c.ctype == b"MASK"][0].data)
    flat = m.flat.copy()
    flat[np.flatnonzero(~flat)[0]] = True              # one more kept weight than TDAT holds
    bad = _replace(pruned.data, b"MASK", encode_masks([CodedMask(2, flat)]))
    with pytest.raises(FormatError, match="TDAT tensor 2 has 512 values, the stream needs 513"):
        nfcodec.decode(bad)
    with pytest.raises(FormatError, match=r"mask 0 \(tensor 2\): n=1023 bits, the tensor has 1024 elements"):
        nfcodec.decode(_replace(pruned.data, b"MASK", encode_masks([CodedMask(2, flat[:1023])])))
    with pytest.raises(FormatError, match="no such tensor"):
        nfcodec.decode(_replace(pruned.data, b"MASK", encode_masks([CodedMask(9, flat[:3])])))
    with pytest.raises(FormatError, match="pruned stream needs exactly one MASK chunk, found 0"):
        nfcodec.decode(_replace(pruned.data, b"MASK", None))
    with pytest.raises(FormatError, match=r"MASK: 1 bytes left after 1 masks"):
        nfcodec.decode(_replace(pruned.data, b"MASK", encode_masks([m]) + b"\x00"))
    # an empty MASK chunk is a valid pruned stream with nothing pruned: TDAT must then be complete
    with pytest.raises(FormatError, match="TDAT tensor 2 has 512 values, the stream needs 1024"):
        nfcodec.decode(_replace(pruned.data, b"MASK", encode_masks([])))


def test_dense_header_on_a_pruned_stream_is_refused(pruned_pair):
    _, pruned = pruned_pair
    header = StreamHeader.unpack([c for c in read_container(pruned.data).chunks if c.ctype == b"NHDR"][0].data)
    bad = _replace(pruned.data, b"NHDR", dataclasses.replace(header, representation=0).pack())
    with pytest.raises(UnsupportedFeatureError, match=r"critical chunk MASK at offset \d+ is not used by a dense stream"):
        nfcodec.decode(bad)
    with pytest.raises(FormatError, match="TDAT tensor 2 has 512 values, the stream needs 1024"):
        nfcodec.decode(_replace(bad, b"MASK", None))


def test_export_needs_masks():
    rep = REPRESENTATIONS.by_name("pruned")
    model = Siren(2, 3, 16, 2)
    with pytest.raises(ValueError, match="one mask entry per parameter tensor"):
        rep.export(model, [100] * 6, ())
    with pytest.raises(ValueError, match="mask 2 has 255 entries, parameter 2 has 256"):
        rep.export(model, [100] * 6, [None, None, np.ones(255, bool), None, None, None])
    with pytest.raises(ValueError, match="stores no masks"):
        REPRESENTATIONS.by_name("dense").export(model, [100] * 6, [None, None, np.ones(256, bool), None, None, None])


def test_pruned_decoding_imports_no_training_code(pruned_pair, tmp_path):
    _, pruned = pruned_pair
    path = tmp_path / "pruned.nfc"
    path.write_bytes(pruned.data)
    code = (f"import sys, nfcodec; nfcodec.decode({str(path)!r}); "
            "print([m in sys.modules for m in ('nfcodec.fit', 'nfcodec.encoder', 'nfcodec.prune')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[False, False, False]"


def test_pruned_nerv_clip():
    clip = moving_clip(4)
    cfg = TINY_NERV.replace(epochs=20, representation="pruned", sparsity=0.5, prune_scope="layer")
    r = nfcodec.encode(clip, config=cfg)
    assert r.info.header.arch == 1 and r.info.header.representation == 1
    frames = nfcodec.decode_frames(r.data)
    assert np.array_equal(np.stack([f for _, f in frames]), r.reconstruction)
    mask = [c for c in read_container(r.data).chunks if c.ctype == b"MASK"][0].data
    report = mask_report(mask)
    assert len(report) >= 4 and all(abs(x["kept"] - x["n"] / 2) <= 0.5 for x in report)
    assert r.psnr > 15.0


def test_info_verbose_lists_the_masks(pruned_pair, tmp_path):
    from click.testing import CliRunner

    from nfcodec.cli.main import cli

    _, pruned = pruned_pair
    path = tmp_path / "p.nfc"
    path.write_bytes(pruned.data)
    text = CliRunner().invoke(cli, ["info", "-v", str(path)]).output
    (line,) = re.findall(r"mask +2: +1024 values +kept +512 .*bits/value", text)
    as_json = json.loads(CliRunner().invoke(cli, ["info", "-v", "--json", str(path)]).output)
    assert [(m["index"], m["n"], m["kept"]) for m in as_json["masks"]] == [(2, 1024, 512)]
