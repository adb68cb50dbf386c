"""Tiles streams and prior-coded weights (format 2.3, docs/format.md 4c) against the independent reference.

``exact_reference.reference_frames`` decodes a tiles stream from the text of 4c alone (TILE, the
payload as tensors of shape (tiles, *shape), each tile rendered on its own tile_height x tile_width
grid and cropped) and a PRIR stream from 4c and docs/priors.md (it picks the prior file by SHA-256,
parses it itself and adds prior and residual on the common power-of-two step).  Fresh encodes,
dense and pruned, from scratch and from a prior, must give, byte for byte, what both backends of
``nfcodec.decoder`` render; streams and prior files crafted around the rules must be refused by
both.
"""
from __future__ import annotations

import dataclasses
import re
import hashlib
import struct
import zlib

import numpy as np
import pytest

import nfcodec
from exact_reference import PRIOR_SIGNATURE, reference_frames
from nfc_testdata import smooth_image
from nfcodec.bitstream import (Chunk, CodedTensor, FormatError, StreamHeader, decode_tensors, encode_tensors,
                               read_container, write_container)
from nfcodec.bitstream.headers import SirenArch

BACKENDS = ("numpy", "torch")
RECORD = SirenArch(in_features=2, out_features=3, width=8, depth=2, w0_first=30.0, w0_hidden=30.0)
SCRATCH = dict(preset="fast", layout="tiles", tile=16, width=8, depth=2, steps=30, metadata=False)


def _one_thread(fn, *args, **kwargs):
    """Run an encode on one torch thread (the machine is shared; tiny fits are faster so)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth 27 x 40 image: 2 x 3 tiles of 16, the last row and column cut (11 rows, 8 columns)."""
    return smooth_image(27, 40)


def _prior_bytes(seed: int = 0, record: SirenArch = RECORD) -> bytes:
    import torch

    from nfcodec.models.tiled import siren_init
    from nfcodec.priors import pack_prior, prior_from_float

    shapes = [(8, 2), (8,), (8, 8), (8,), (3, 8), (3,)]
    tensors = [t[0].numpy() for t in siren_init(1, shapes, 30.0, torch.Generator().manual_seed(seed))]
    tensors[5] = np.zeros(3)          # an all-zero prior tensor: E comes from the residual alone
    prior = prior_from_float("siren", record, 0, (1, 16, 16), tensors,
                             lrs=[np.full(s, 0.01, np.float32) for s in shapes], meta={"inner_steps": 2})
    return pack_prior(prior)


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("priors") / "tiny.nfp"
    path.write_bytes(_prior_bytes())
    return path


@pytest.fixture(scope="module")
def prior_coded(image, prior_path) -> bytes:
    r = _one_thread(nfcodec.encode, image, preset="fast", width=8, depth=2, steps=30, metadata=False,
                    prior=str(prior_path))
    return r.data


def _chunks(data: bytes) -> list[Chunk]:
    return list(read_container(data).chunks)


def _rewrite(data: bytes, edit) -> bytes:
    container = read_container(data)
    return write_container(edit(list(container.chunks)), version=container.version)


def _assert_matches(data: bytes, ref: np.ndarray, prior=()) -> None:
    assert ref.dtype == np.uint8 and ref.shape[0] == 1
    for backend in BACKENDS:
        got = nfcodec.decode(data, backend=backend, prior=prior).image
        assert got.shape == ref.shape[1:] and got.tobytes() == ref[0].tobytes(), backend


def _refused(data: bytes, prior, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        reference_frames(data, prior=prior)


# --------------------------------------------------------------------------- from scratch

@pytest.mark.parametrize("knobs", [{}, dict(representation="pruned", sparsity=0.3)], ids=["dense", "pruned"])
def test_scratch_tiles(image, knobs):
    r = _one_thread(nfcodec.encode, image, **SCRATCH, **knobs)
    names = [c.ctype for c in _chunks(r.data)]
    h = r.info.header
    assert (h.layout, h.width, h.height, h.representation) == (2, 40, 27, 1 if knobs else 0)
    assert b"TILE" in names and b"PRIR" not in names and (b"MASK" in names) == bool(knobs)
    tile = next(c.data for c in _chunks(r.data) if c.ctype == b"TILE")
    assert struct.unpack("<HH", tile) == (16, 16)
    if not knobs:                     # the payload codes every tensor for the 2 x 3 tiles together
        tdat = decode_tensors(next(c.data for c in _chunks(r.data) if c.ctype == b"TDAT"))
        assert [t.symbols.size for t in tdat] == [6 * 16, 6 * 8, 6 * 64, 6 * 8, 6 * 24, 6 * 3]
    ref = reference_frames(r.data)
    assert ref[0].tobytes() == r.reconstruction.tobytes()
    _assert_matches(r.data, ref)


# --------------------------------------------------------------------------- from a prior

def test_prior_coded_tiles(prior_coded, prior_path):
    h = StreamHeader.unpack(_chunks(prior_coded)[0].data)
    assert (h.layout, h.representation) == (2, 0)           # the API switched the layout to tiles
    digest = next(c.data for c in _chunks(prior_coded) if c.ctype == b"PRIR")
    data = prior_path.read_bytes()
    assert digest == hashlib.sha256(data).digest()
    ref = reference_frames(prior_coded, prior=data)
    _assert_matches(prior_coded, ref, prior=str(prior_path))
    # the same prior named as a path, a directory, or the second of several candidates
    for prior in (str(prior_path), prior_path.parent, [_prior_bytes(seed=1), prior_path]):
        assert reference_frames(prior_coded, prior=prior).tobytes() == ref.tobytes()


def test_prior_coded_pruned_tiles(image, prior_path):
    """Pruned residuals: a pruned position's residual is 0, so its weight is the prior's value."""
    r = _one_thread(nfcodec.encode, image, preset="fast", width=8, depth=2, steps=30, metadata=False,
                    prior=str(prior_path), representation="pruned", sparsity=0.3)
    names = [c.ctype for c in _chunks(r.data)]
    assert r.info.header.representation == 1 and b"MASK" in names and b"PRIR" in names
    ref = reference_frames(r.data, prior=prior_path)
    assert ref[0].tobytes() == r.reconstruction.tobytes()
    _assert_matches(r.data, ref, prior=str(prior_path))


def test_wrong_or_missing_prior_is_refused(prior_coded, prior_path, tmp_path):
    digest = hashlib.sha256(prior_path.read_bytes()).hexdigest()
    other = _prior_bytes(seed=1)
    _refused(prior_coded, other, f"needs prior {digest}; not found in candidate 0 "
                                 f"\\(hash {hashlib.sha256(other).hexdigest()}\\)")
    _refused(prior_coded, None, f"needs prior {digest}; not found in no prior file given")
    _refused(prior_coded, [], f"needs prior {digest}")
    (tmp_path / "other.nfp").write_bytes(other)
    from nfcodec.priors import PriorNotFoundError

    with pytest.raises(PriorNotFoundError):
        nfcodec.decode(prior_coded, prior=str(tmp_path / "other.nfp"))


def test_single_layout_prior(image, prior_path):
    """A one-tile stream rewritten as layout single (its TDAT is the same bytes: records carry no
    shapes): PRIR with layout single, as 4c allows, decodes to the tiles stream's image."""
    r = _one_thread(nfcodec.encode, np.ascontiguousarray(image[:16, 8:24]), preset="fast", width=8, depth=2,
                    steps=30, metadata=False, prior=str(prior_path))
    assert r.info.header.layout == 2
    ref = reference_frames(r.data, prior=prior_path)

    def single(chunks):
        h = StreamHeader.unpack(chunks[0].data)
        return [Chunk(b"NHDR", dataclasses.replace(h, layout=0).pack())] + [c for c in chunks[1:]
                                                                               if c.ctype != b"TILE"]

    data = _rewrite(r.data, single)
    assert StreamHeader.unpack(_chunks(data)[0].data).layout == 0
    got = reference_frames(data, prior=prior_path)
    assert got.tobytes() == ref.tobytes() == r.reconstruction.tobytes()
    _assert_matches(data, got, prior=str(prior_path))


def _with_residual(data: bytes, index: int, step: int, zero: bool = False) -> bytes:
    """``data`` with one residual tensor re-coded on another step (or all zero)."""
    def edit(chunks):
        i = next(k for k, c in enumerate(chunks) if c.ctype == b"TDAT")
        tensors = decode_tensors(chunks[i].data)
        t = tensors[index]
        tensors[index] = CodedTensor(t.index, step, np.zeros_like(t.symbols) if zero else t.symbols)
        chunks[i] = Chunk(b"TDAT", encode_tensors(tensors))
        return chunks
    return _rewrite(data, edit)


def test_crafted_residual_steps(prior_coded, prior_path):
    """Residual steps in other octaves and mantissas than the prior's; an all-zero residual at a step
    >= 160 (not counted); a nonzero residual at step 160 (invalid, 4c rule 2)."""
    tensors = decode_tensors(next(c.data for c in _chunks(prior_coded) if c.ctype == b"TDAT"))
    for index, delta in ((0, 13), (2, 5), (4, 27), (5, 3)):
        assert np.any(tensors[index].symbols) and tensors[index].step + delta < 160
        data = _with_residual(prior_coded, index, tensors[index].step + delta)
        _assert_matches(data, reference_frames(data, prior=prior_path), prior=str(prior_path))
    data = _with_residual(prior_coded, 1, 175, zero=True)
    _assert_matches(data, reference_frames(data, prior=prior_path), prior=str(prior_path))
    bad = _with_residual(prior_coded, 1, 160)
    _refused(bad, prior_path, "tensor 1: nonzero symbols on step index 160")
    for backend in BACKENDS:
        with pytest.raises(FormatError, match="step 160"):
            nfcodec.decode(bad, backend=backend, prior=str(prior_path))


# --------------------------------------------------------------------------- prior files around the rules

def _pack_nfp(chunks: list[tuple[bytes, bytes]], version: bytes = b"\x01\x00") -> bytes:
    out = [PRIOR_SIGNATURE, version]
    for ctype, body in chunks:
        out.append(struct.pack("<I", len(body)) + ctype + body + struct.pack("<I", zlib.crc32(ctype + body)))
    return b"".join(out)


def _nfp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    return [(c.ctype, c.data) for c in read_container(data, signature=PRIOR_SIGNATURE).chunks]


def _edit(chunks, ctype, fn):
    return [(t, fn(d) if t == ctype else d) for t, d in chunks]


PRIOR_EDITS = {
    "arch-differs": (lambda c: _nfp_chunks(_prior_bytes(record=dataclasses.replace(RECORD, w0_first=20.0))),
                     "is not the stream's"),
    "phdr-arch": (lambda c: _edit(c, b"PHDR", lambda d: d[:1] + b"\x01" + d[2:]), "is not the stream's"),
    "pten-step-160": (lambda c: _edit(c, b"PTEN", lambda d: b"\xa0" + d[1:]), "step 160, must be < 160"),
    "pten-extra-byte": (lambda c: _edit(c, b"PTEN", lambda d: d + b"\x00"), "bytes after the last tensor"),
    "pten-symbol": (lambda c: _edit(c, b"PTEN", lambda d: d[:5] + struct.pack("<i", 2**20) + d[9:]),
                    "magnitude >= 2\\^20"),
    "flag-without-chunk": (lambda c: [(t, d) for t, d in c if t != b"pLRS"], "flags=1 does not match"),
    "unknown-critical": (lambda c: c[:-1] + [(b"TDAT", b"")] + c[-1:], "unknown critical chunk"),
    "n-tensors": (lambda c: _edit(c, b"PHDR", lambda d: d[:8] + struct.pack("<H", 5) + d[10:]),
                  "n_tensors=5"),
}


@pytest.mark.parametrize("name", sorted(PRIOR_EDITS))
def test_bad_prior_files_are_refused(prior_coded, prior_path, tmp_path, name):
    """A stream naming (by hash) a prior file that breaks docs/priors.md or 4c rule 1."""
    edit, match = PRIOR_EDITS[name]
    bad = _pack_nfp(edit(_nfp_chunks(prior_path.read_bytes())))
    data = _rewrite(prior_coded, lambda chunks: [Chunk(b"PRIR", hashlib.sha256(bad).digest())
                                                 if c.ctype == b"PRIR" else c for c in chunks])
    _refused(data, bad, match)
    path = tmp_path / "bad.nfp"
    path.write_bytes(bad)
    with pytest.raises(FormatError):
        nfcodec.decode(data, prior=str(path))


def test_tile_outside_the_tiles_layout_is_refused(prior_coded, prior_path):
    """Rule 7: a layout single stream does not read TILE."""
    from nfcodec.errors import UnsupportedFeatureError

    def tile_in_single(chunks):
        h = StreamHeader.unpack(chunks[0].data)
        return [Chunk(b"NHDR", dataclasses.replace(h, layout=0).pack())] + chunks[1:]

    data = _rewrite(prior_coded, tile_in_single)
    _refused(data, prior_path, "a TILE chunk in a stream of layout 0")
    with pytest.raises(UnsupportedFeatureError, match="TILE"):
        nfcodec.decode(data, prior=str(prior_path))


def test_segm_in_a_tiles_stream_is_refused(prior_coded, prior_path):
    """4c: the tiles layout reads TILE and no SEGM (rule 7), unlike layout single."""
    from nfcodec.bitstream import SegmentHeader
    from nfcodec.errors import UnsupportedFeatureError

    data = _rewrite(prior_coded, lambda chunks: chunks[:3] + [Chunk(b"SEGM", SegmentHeader(0, 0, 0, 0).pack())]
                    + chunks[3:])
    _refused(data, prior_path, "critical chunk b'SEGM' is not read by a tiles stream")
    with pytest.raises(UnsupportedFeatureError, match="SEGM"):
        nfcodec.decode(data, prior=str(prior_path))


def _pten_step(pten: bytes, index: int, step: int) -> bytes:
    """A PTEN body (per tensor: u8 step, u32 count, count x i32) with tensor ``index`` on ``step``."""
    out, pos, t = bytearray(pten), 0, 0
    while pos < len(pten):
        count = struct.unpack_from("<I", pten, pos + 1)[0]
        if t == index:
            out[pos] = step
        pos, t = pos + 5 + 4 * count, t + 1
    return bytes(out)


def test_summed_symbol_of_2_53_is_refused(prior_coded, prior_path, tmp_path):
    """4c rule 2: prior + residual must stay below 2^53 on the common step (a bias is not otherwise
    bounded, and beyond 2^53 its value would not be exact in binary64).  The prior's b_2 on step 159
    (E = 23) and a residual of 2^30 + 2^20 on step 0 (times 16 * 2^19) give |q| > 2^53 + 2^42."""
    bad_prior = _pack_nfp(_edit(_nfp_chunks(prior_path.read_bytes()), b"PTEN", lambda d: _pten_step(d, 3, 159)))
    (tmp_path / "p.nfp").write_bytes(bad_prior)

    def edit(chunks):
        chunks = [Chunk(b"PRIR", hashlib.sha256(bad_prior).digest()) if c.ctype == b"PRIR" else c for c in chunks]
        i = next(k for k, c in enumerate(chunks) if c.ctype == b"TDAT")
        tensors = decode_tensors(chunks[i].data)
        t = tensors[3]
        tensors[3] = CodedTensor(t.index, 0, np.full(t.symbols.size, 2**30 + 2**20, np.int64))
        chunks[i] = Chunk(b"TDAT", encode_tensors(tensors))
        return chunks

    data = _rewrite(prior_coded, edit)
    pattern = r"tensor 3: prior \+ residual symbol \d+ on step 2\^-23 is not below 2\^53"
    with pytest.raises(ValueError, match=pattern) as e:
        reference_frames(data, prior=bad_prior)
    top = re.search(r"symbol (\d+)", str(e.value)).group(1)
    assert int(top) > 2**53 + 2**42
    for backend in BACKENDS:
        with pytest.raises(FormatError) as e:
            nfcodec.decode(data, backend=backend, prior=str(tmp_path / "p.nfp"))
        assert str(e.value) == (f"tensor 3: prior + residual has a symbol of magnitude {top} on step 2^-23; "
                                "prior-coded symbols must be below 2^53 (exact in binary64)")
