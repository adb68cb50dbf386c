"""Width-chunks streams (format 2.2, docs/format.md 4b) against the independent reference decoder.

``exact_reference.reference_frames`` decodes a width-chunks stream from the text of 4b alone
(segments, parts, the common power-of-two step, structural zeros, the level's extent); every
level of fresh encodes (spectral, spatial, pruned, temporal) must give, byte for byte, what both
backends of ``nfcodec.decoder`` render.
"""
from __future__ import annotations

import numpy as np
import pytest

import nfcodec
from exact_reference import reference_frames
from nfc_testdata import TINY_PNG, moving_clip
from nfcodec.bitstream import (Chunk, FormatError, GrowRecord, decode_tensors, encode_tensors, read_container,
                               write_container)
from nfcodec.bitstream.entropy import CodedTensor
from nfcodec.decoder import open_stream

BACKENDS = ("numpy", "torch")
COMMON = dict(layout="width-chunks", depth=2, steps=40, batch_pixels=0, metadata=False)


def _encode(source, **knobs) -> bytes:
    """One tiny encode, on one torch thread (the fit of a 12-unit SIREN is slower on more)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return nfcodec.encode(source, **{**COMMON, **knobs}).data
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    from nfcodec.media import load_image

    return load_image(TINY_PNG)                       # 32 x 24


@pytest.fixture(scope="module")
def spectral(image) -> bytes:
    return _encode(image, widths=(4, 8, 12))


@pytest.fixture(scope="module")
def spatial(image) -> bytes:
    return _encode(image, widths=(4, 8, 12), growing="spatial")


@pytest.fixture(scope="module")
def pruned(image) -> bytes:
    # widths up to 24 so that the hidden weight (24 x 24) is prunable and its parts carry masks
    return _encode(image, widths=(8, 16, 24), representation="pruned", sparsity=0.4, prune_scope="layer")


@pytest.fixture(scope="module")
def temporal() -> bytes:
    return _encode(moving_clip(4, 16, 20), arch="siren", growing="temporal", widths=(4, 8), fps=25)


def _grow(data: bytes) -> GrowRecord:
    return GrowRecord.unpack(next(c.data for c in read_container(data).chunks if c.ctype == b"GROW"))


def _decoded(data: bytes, level: int, backend: str) -> np.ndarray:
    stream = open_stream(data, level=level, backend=backend)
    assert stream.level == level
    return np.stack([f for _, f in stream.frames(range(stream.n_frames))])


def _assert_levels_match(data: bytes) -> None:
    for k in range(1, _grow(data).levels + 1):
        ref = reference_frames(data, level=k)
        for backend in BACKENDS:
            got = _decoded(data, k, backend)
            assert got.dtype == ref.dtype == np.uint8
            assert got.shape == ref.shape, (k, backend, got.shape, ref.shape)
            assert got.tobytes() == ref.tobytes(), (k, backend, int(np.count_nonzero(got != ref)))


@pytest.mark.parametrize("name", ["spectral", "spatial", "pruned", "temporal"])
def test_every_level_matches_both_backends(request, name):
    _assert_levels_match(request.getfixturevalue(name))


def test_stream_shapes(spectral, spatial, pruned, temporal):
    """The fixtures are what they claim: layout 1, the GROW of the knobs, masks in the pruned one."""
    for data, growing, widths in ((spectral, 0, (4, 8, 12)), (spatial, 1, (4, 8, 12)),
                                  (pruned, 0, (8, 16, 24)), (temporal, 2, (4, 8))):
        g = _grow(data)
        assert (g.growing, g.widths) == (growing, widths)
        chunks = read_container(data).chunks
        assert sum(c.ctype == b"SEGM" for c in chunks) == len(widths)
    masks = [c for c in read_container(pruned).chunks if c.ctype == b"MASK"]
    assert len(masks) == 3 and any(len(m.data) > 1 for m in masks)     # some part is really pruned


def test_extent(spectral, spatial, temporal):
    """Section 4b "Output of a level", from GROW alone."""
    for k in (1, 2, 3):
        assert reference_frames(spectral, level=k).shape == (1, 24, 32, 3)
        cover = _grow(spatial).covers[k - 1]
        assert 0 < cover <= 32 and reference_frames(spatial, level=k).shape == (1, 24, cover, 3)
    assert _grow(spatial).covers[-1] == 32
    for k in (1, 2):
        cover = _grow(temporal).covers[k - 1]
        assert 0 < cover <= 4 and reference_frames(temporal, level=k).shape == (cover, 16, 20, 3)
    # the default level is the last one
    assert reference_frames(spatial).tobytes() == reference_frames(spatial, level=3).tobytes()


def _with_part(data: bytes, segment: int, part: int, step: int, zero: bool = False) -> bytes:
    """``data`` with one part of one level re-coded: another step index, or all-zero symbols."""
    container = read_container(data)
    chunks, tdats = list(container.chunks), [i for i, c in enumerate(container.chunks) if c.ctype == b"TDAT"]
    i = tdats[segment]
    tensors = decode_tensors(chunks[i].data)
    t = tensors[part]
    symbols = np.zeros_like(t.symbols) if zero else t.symbols
    tensors[part] = CodedTensor(t.index, step, symbols)
    chunks[i] = Chunk(b"TDAT", encode_tensors(tensors))
    return write_container(chunks, version=container.version)


def test_crafted_steps(spectral):
    """Parts whose steps differ in octave and mantissa, and an all-zero part with a step index
    >= 160 (not in P, so allowed): every level still matches both backends."""
    tdats = [c.data for c in read_container(spectral).chunks if c.ctype == b"TDAT"]
    for seg, part in ((1, 2), (2, 0), (1, 1)):               # W_2 rows, W_1 rows, b_1 of a level > 1
        old = decode_tensors(tdats[seg])[part]
        assert np.any(old.symbols) and old.step + 13 < 160
        _assert_levels_match(_with_part(spectral, seg, part, old.step + 13))
    _assert_levels_match(_with_part(spectral, 1, 2, 175, zero=True))


def test_fine_nonzero_part_is_invalid(spectral):
    """A part with a nonzero symbol and step index 160 is invalid (4b); levels before it still decode."""
    bad = _with_part(spectral, 1, 2, 160)
    with pytest.raises(ValueError):
        reference_frames(bad, level=2)
    for backend in BACKENDS:
        with pytest.raises(FormatError):
            _decoded(bad, 2, backend)
    ref = reference_frames(bad, level=1)
    assert ref.tobytes() == reference_frames(spectral, level=1).tobytes()
    for backend in BACKENDS:
        assert _decoded(bad, 1, backend).tobytes() == ref.tobytes()
