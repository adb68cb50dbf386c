"""Prior files (.nfp): byte format, checks, lookup and ``nfc prior info`` (docs/priors.md)."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfcodec import priors as P
from nfcodec.archs import ARCHS
from nfcodec.bitstream import (
    SIGNATURE,
    BadSignatureError,
    ChecksumError,
    Chunk,
    FieldRangeError,
    FormatError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
    iter_chunks,
    pack_chunk,
    read_container,
    write_container,
)
from nfcodec.bitstream.headers import NervArch, SirenArch
from nfcodec.bitstream.priorfile import (
    MAX_PRIOR_VALUES,
    PRIOR_SIGNATURE,
    PriorHeader,
    RawTensor,
    read_prior_file,
    write_prior_file,
)
from nfcodec.cli.prior_cmd import prior_group
from nfcodec.errors import InputError
from nfcodec.quant import STEP_TABLE

ROOT = Path(__file__).resolve().parents[1]
TINY = SirenArch(2, 3, 1, 1, 30.0, 30.0)      # shapes (1, 2) (1,) (3, 1) (3,): 9 values
SMALL = SirenArch(2, 3, 8, 2, 30.0, 30.0)
NERV = NervArch(pe_b=1.25, pe_l=4, mlp_hidden=8, c1=4, h0=2, w0=2, kernel=3, head_kernel=3, act=0, crop=0,
                factor0=2, channels0=4, factor1=0, channels1=0, factor2=0, channels2=0, factor3=0, channels3=0,
                factor4=0, channels4=0, factor5=0, channels5=0)
TINY_FLOATS = [np.array([[0.5, -0.25]]), np.array([0.125]), np.array([[1.0], [-1.0], [0.0]]), np.array([0.0, 0.75, -0.5])]
#: The exact bytes of the tiny prior (a change here is a format change: bump the version).
TINY_HEX = (
    "894e46500d0a1a0a0100"                                         # signature, version 1.0
    "0b000000504844520000010008000800040000858833950d"             # PHDR (11 bytes) + CRC
    "0000004152434802030100010000f0410000f041ad1ec151"             # ARCH: SirenArch.pack()
    "380000005054454e"                                             # PTEN, 56 bytes
    "9f02000000721c0700c771fcff"                                   # step 159, 2 symbols
    "9f010000001cc70100"
    "9f03000000e4380e001cc7f1ff00000000"
    "9f0300000000000000abaa0a008ee3f8ff"
    "bd0fb84c"                                                     # PTEN CRC
    "140000006d6554417b22616c676f726974686d223a2274657374227d107a34f3"  # meTA {"algorithm":"test"}
    "000000004e454e443b589533"                                     # NEND
)


def _shapes(record):
    return [tuple(s) for s in ARCHS.by_id(record.ARCH_ID).param_shapes(record)]


def _floats(record, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) * scale for s in _shapes(record)]


def _tiny() -> P.Prior:
    return P.prior_from_float("siren", TINY, 0, (1, 8, 8), TINY_FLOATS, meta={"algorithm": "test"})


def _full(seed: int = 0) -> P.Prior:
    """A SIREN prior with step sizes, masks and meta."""
    rng = np.random.default_rng(seed)
    shapes = _shapes(SMALL)
    masks = [rng.random(s) < 0.7 for s in shapes]
    tensors = [x * m for x, m in zip(_floats(SMALL, seed), masks)]
    lrs = [rng.uniform(1e-4, 1e-2, s) for s in shapes]
    return P.prior_from_float("siren", SMALL, 0, (1, 32, 32), tensors, lrs=lrs, masks=masks,
                              meta={"algorithm": "meta-sgd", "steps": 1000, "psnr": [30.5, 31.0]})


@pytest.fixture(scope="module")
def full_bytes() -> bytes:
    return P.pack_prior(_full())


def _raw_file(chunks: list[Chunk], version=(1, 0), signature=PRIOR_SIGNATURE) -> bytes:
    """A file with exactly these chunks, bypassing the writer's checks."""
    return signature + bytes(version) + b"".join(pack_chunk(c) for c in chunks)


def _chunks(data: bytes) -> list[Chunk]:
    return [c for c, _ in iter_chunks(data)]


def _replace(data: bytes, ctype: bytes, payload: bytes) -> bytes:
    """``data`` with the chunk ``ctype``'s data replaced (CRC recomputed)."""
    return _raw_file([Chunk(c.ctype, payload if c.ctype == ctype else c.data) for c in _chunks(data)],
                     version=tuple(data[8:10]))


def _drop(data: bytes, ctype: bytes) -> bytes:
    return _raw_file([c for c in _chunks(data) if c.ctype != ctype])


def _phdr(data: bytes, **changes) -> bytes:
    header = PriorHeader.unpack(_chunks(data)[0].data)
    fields = {f.name: getattr(header, f.name) for f in PriorHeader.FIELDS}
    fields.update(changes)
    raw = struct.pack("<BBHHHHB", *fields.values())      # no validation: the reader's job
    return _replace(data, b"PHDR", raw)


def _pten(tensors: list[tuple[int, list[int]]]) -> bytes:
    return b"".join(struct.pack("<BI", step, len(q)) + np.asarray(q, "<i4").tobytes() for step, q in tensors)


# --------------------------------------------------------------------------- round trip and bytes


def test_round_trip_is_byte_exact_and_digest_is_sha256(full_bytes):
    prior = P.read_prior(full_bytes, name="x")
    assert prior.digest == hashlib.sha256(full_bytes).digest() and prior.hexdigest == prior.digest.hex()
    assert P.pack_prior(prior) == full_bytes                       # deterministic: read + pack = same bytes
    assert P.pack_prior(_full()) == full_bytes
    assert (prior.name, prior.nbytes, prior.arch, prior.media, prior.size) == ("x", len(full_bytes), "siren", 0, (1, 32, 32))
    assert prior.record == SMALL
    assert prior.meta == {"algorithm": "meta-sgd", "steps": 1000, "psnr": [30.5, 31.0]}
    source = _full()
    for i, (t, shape) in enumerate(zip(prior.tensors, _shapes(SMALL))):
        assert t.q.shape == shape and t.q.dtype == np.int64 and 0 <= t.step < 160
        assert np.array_equal(t.q, source.tensors[i].q) and t.step == source.tensors[i].step
        v = prior.values(i)
        assert v.dtype == np.float64 and np.array_equal(v, t.q * STEP_TABLE[t.step])
        assert np.array_equal(v.astype(np.float32).astype(np.float64), v)      # exact in float32 too
        assert np.array_equal(prior.lrs[i], source.lrs[i]) and prior.lrs[i].dtype == np.float32
        assert np.array_equal(prior.masks[i], source.masks[i]) and prior.masks[i].dtype == bool
        assert not t.q[~prior.masks[i]].any()


def test_quantization_is_the_finest_step_below_160_with_symbols_under_2_pow_20():
    floats = _floats(SMALL, 1, scale=1.0)
    floats[0] = floats[0] * 1000.0          # needs a coarse step
    floats[1] = np.zeros_like(floats[1])    # all zero: the finest step
    prior = P.prior_from_float("siren", SMALL, 0, (1, 16, 16), floats)
    for x, t in zip(floats, prior.tensors):
        assert np.abs(t.q).max(initial=0) < 2**20
        assert np.array_equal(t.q, np.rint(x / STEP_TABLE[t.step]))
        if t.step < 159:
            assert np.abs(np.rint(x / STEP_TABLE[t.step + 1])).max() >= 2**20
        assert np.abs(prior.values(list(prior.tensors).index(t)) - x).max() <= STEP_TABLE[t.step] / 2
    assert prior.tensors[1].step == 159 and prior.tensors[0].step < 100
    with pytest.raises(ValueError, match="too large"):
        P.prior_from_float("siren", TINY, 0, (1, 8, 8), [np.full((1, 2), 2e6)] + TINY_FLOATS[1:])


def test_tiny_prior_exact_bytes():
    data = P.pack_prior(_tiny())
    assert data.hex() == TINY_HEX
    assert data[:8] == b"\x89NFP\r\n\x1a\n" and data[8:10] == b"\x01\x00"
    # PHDR: media 0, arch 0, frames 1, height 8, width 8, n_tensors 4, flags 0
    assert data[10:18] == struct.pack("<I", 11) + b"PHDR"
    assert struct.unpack("<BBHHHHB", data[18:29]) == (0, 0, 1, 8, 8, 4, 0)
    chunks = read_container(data, signature=PRIOR_SIGNATURE).chunks
    assert [c.name for c in chunks] == ["PHDR", "ARCH", "PTEN", "meTA", "NEND"]
    assert chunks[1].data == TINY.pack()
    assert chunks[2].data[:5] == struct.pack("<BI", 159, 2)
    assert struct.unpack_from("<2i", chunks[2].data, 5) == (466034, -233017)     # rint(0.5 / (9 * 2**-23)) ...
    assert P.read_prior(data).hexdigest == hashlib.sha256(bytes.fromhex(TINY_HEX)).hexdigest()


def test_video_nerv_prior_round_trips():
    prior = P.prior_from_float("nerv", NERV, 1, (4, 4, 4), _floats(NERV, 3))
    data = P.pack_prior(prior)
    back = P.read_prior(data)
    assert (back.arch, back.media, back.size, back.record) == ("nerv", 1, (4, 4, 4), NERV)
    assert all(np.array_equal(a.q, b.q) for a, b in zip(prior.tensors, back.tensors))
    assert back.lrs is None and back.masks is None and back.meta == {}
    assert [c.name for c in _chunks(data)] == ["PHDR", "ARCH", "PTEN", "NEND"]


def test_bitstream_layer_reads_raw_tensors(full_bytes):
    pf = read_prior_file(full_bytes)
    assert pf.version == (1, 0) and pf.header.flags == 3 and pf.nbytes == len(full_bytes)
    assert [t.count for t in pf.tensors] == [int(np.prod(s)) for s in _shapes(SMALL)]
    assert pf.lrs.dtype == np.float32 and pf.lrs.size == sum(t.count for t in pf.tensors)
    assert all(m.dtype == bool and m.ndim == 1 for m in pf.masks)


def test_priors_module_and_bitstream_never_import_torch():
    code = ("import sys, nfcodec.priors, nfcodec.bitstream.priorfile, nfcodec.cli.prior_cmd; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- error paths


def test_bad_signature_and_version(full_bytes):
    with pytest.raises(BadSignatureError, match="not an nfc prior file"):
        P.read_prior(SIGNATURE + full_bytes[8:])
    with pytest.raises(BadSignatureError, match="not an nfc file"):
        read_container(full_bytes)                 # a stream reader refuses a prior file
    with pytest.raises(UnsupportedVersionError, match=r"prior file version 2\.0 not supported"):
        P.read_prior(full_bytes[:8] + b"\x02\x00" + full_bytes[10:])
    assert P.read_prior(full_bytes[:9] + b"\x07" + full_bytes[10:]).meta["steps"] == 1000   # any minor of 1


def test_crc_mismatch_and_truncation(full_bytes):
    pten = next(c for c in _chunks(full_bytes) if c.ctype == b"PTEN")
    bad = bytearray(full_bytes)
    bad[pten.offset + 8 + 3] ^= 1
    with pytest.raises(ChecksumError, match="chunk PTEN at offset .*CRC mismatch"):
        P.read_prior(bytes(bad))
    for cut in (0, 5, 12, pten.offset + 20, len(full_bytes) - 1):
        with pytest.raises(TruncatedError):
            P.read_prior(full_bytes[:cut])


def test_missing_critical_chunks(full_bytes):
    for ctype in (b"ARCH", b"PTEN"):
        with pytest.raises(FormatError, match=f"prior file has no {ctype.decode()} chunk"):
            P.read_prior(_drop(full_bytes, ctype))
    with pytest.raises(FormatError, match="the first chunk must be PHDR"):
        P.read_prior(_drop(full_bytes, b"PHDR"))
    with pytest.raises(TruncatedError, match="before NEND"):
        P.read_prior(_drop(full_bytes, b"NEND"))


def test_flag_and_chunk_must_agree(full_bytes):
    with pytest.raises(FormatError, match=r"PHDR.flags=3 has bit 0 .* no pLRS chunk"):
        P.read_prior(_drop(full_bytes, b"pLRS"))
    with pytest.raises(FormatError, match=r"PHDR.flags=3 has bit 1 .* no pMSK chunk"):
        P.read_prior(_drop(full_bytes, b"pMSK"))
    with pytest.raises(FormatError, match=r"chunk pLRS at offset \d+ but PHDR.flags=2 lacks bit 0"):
        P.read_prior(_phdr(full_bytes, flags=2))
    with pytest.raises(FormatError, match=r"chunk pMSK at offset \d+ but PHDR.flags=1 lacks bit 1"):
        P.read_prior(_phdr(full_bytes, flags=1))
    with pytest.raises(FieldRangeError, match=r"PHDR.flags=4 outside \[0, 3\]"):
        P.read_prior(_phdr(full_bytes, flags=4))
    # a damaged (CRC) ancillary pLRS is skipped by the container, so the flag finds no chunk
    lrs = next(c for c in _chunks(full_bytes) if c.ctype == b"pLRS")
    bad = bytearray(full_bytes)
    bad[lrs.offset + 9] ^= 0x40
    with pytest.raises(FormatError, match=r"no pLRS chunk \(it is damaged: CRC mismatch\)"):
        P.read_prior(bytes(bad))


def test_pten_counts_steps_and_symbols(full_bytes):
    tiny = P.pack_prior(_tiny())
    good = [(159, [1, 2]), (159, [3]), (159, [4, 5, 6]), (159, [7, 8, 9])]
    assert [t.count for t in read_prior_file(_replace(tiny, b"PTEN", _pten(good))).tensors] == [2, 1, 3, 3]
    with pytest.raises(FieldRangeError, match=r"PTEN tensor 1: step=160 outside \[0, 159\]"):
        P.read_prior(_replace(tiny, b"PTEN", _pten([good[0], (160, [3]), *good[2:]])))
    with pytest.raises(FieldRangeError, match=r"PTEN tensor 2: symbol -1048576 outside"):
        P.read_prior(_replace(tiny, b"PTEN", _pten([*good[:2], (159, [4, -2**20, 6]), good[3]])))
    huge = _pten(good[:1]) + struct.pack("<BI", 159, MAX_PRIOR_VALUES)       # oversize: refused before allocating
    with pytest.raises(FieldRangeError, match=rf"PTEN tensor 1: count={MAX_PRIOR_VALUES} brings the total to "
                                              rf"{MAX_PRIOR_VALUES + 2} values, more than {MAX_PRIOR_VALUES}"):
        P.read_prior(_replace(tiny, b"PTEN", huge))
    with pytest.raises(FormatError, match=r"PTEN tensor 1: count=1000 needs 4000 bytes, 0 left"):
        P.read_prior(_replace(tiny, b"PTEN", _pten(good[:1]) + struct.pack("<BI", 159, 1000)))
    with pytest.raises(FormatError, match="PTEN tensor 3 at offset 39: data ends inside the tensor header"):
        P.read_prior(_replace(tiny, b"PTEN", _pten(good[:3])))
    with pytest.raises(FormatError, match="PTEN: 1 bytes after the last of its 4 tensors"):
        P.read_prior(_replace(tiny, b"PTEN", _pten(good) + b"\x00"))


def test_tensors_must_match_the_arch_shapes(full_bytes):
    tiny = P.pack_prior(_tiny())
    five = [(159, [1, 2]), (159, [3]), (159, [4, 5, 6]), (159, [7, 8, 9]), (159, [1])]
    with pytest.raises(FormatError, match=r"PHDR.n_tensors=5 but the ARCH record \(siren\) has 4 parameter tensors"):
        P.read_prior(_phdr(_replace(tiny, b"PTEN", _pten(five)), n_tensors=5))
    wrong = [(159, [1, 2]), (159, [3, 3]), (159, [4, 5]), (159, [7, 8, 9])]          # same total, wrong split
    with pytest.raises(FormatError, match=r"PTEN tensor 1: 2 values, the ARCH record \(siren\) gives it shape \(1,\)"):
        P.read_prior(_replace(tiny, b"PTEN", _pten(wrong)))
    # the record must fit the media: a 3-input SIREN is a video network
    with pytest.raises(FormatError, match="ARCH.in_features=3"):
        P.read_prior(_replace(tiny, b"ARCH", SirenArch(3, 3, 1, 1, 30.0, 30.0).pack()))
    with pytest.raises(FieldRangeError, match="PHDR.frames=2 for an image"):
        P.read_prior(_phdr(tiny, frames=2))
    with pytest.raises(FieldRangeError, match="PHDR.arch=7 not in"):
        P.read_prior(_phdr(tiny, arch=7))
    with pytest.raises(FormatError, match="ARCH: 13 bytes, expected 35"):
        P.read_prior(_phdr(tiny, arch=1, media=1))          # NeRV header, SIREN record


def test_masks_lrs_and_meta_payloads(full_bytes):
    pmsk = next(c for c in _chunks(full_bytes) if c.ctype == b"pMSK").data
    # clear a keep bit of a nonzero value: that value is masked out but not 0
    prior = P.read_prior(full_bytes)
    k = int(np.flatnonzero(prior.tensors[0].q.reshape(-1))[0])
    bits = bytearray(pmsk)
    bits[k // 8] &= ~(1 << (k % 8))
    with pytest.raises(FormatError, match=rf"PTEN tensor 0: value {k} is masked out by pMSK but its symbol is"):
        P.read_prior(_replace(full_bytes, b"pMSK", bytes(bits)))
    with pytest.raises(FormatError, match="pMSK: .* bytes, expected"):
        P.read_prior(_replace(full_bytes, b"pMSK", pmsk[:-1]))
    # SMALL's first tensor has 16 values (2 bytes, no padding); the second 8; the bias of the last has 3
    last = bytearray(pmsk)
    last[-1] |= 0x80
    with pytest.raises(FormatError, match="pMSK tensor 5: padding bits after its 3 values must be 0"):
        P.read_prior(_replace(full_bytes, b"pMSK", bytes(last)))
    plrs = bytearray(next(c for c in _chunks(full_bytes) if c.ctype == b"pLRS").data)
    with pytest.raises(FormatError, match="pLRS: .* bytes, expected"):
        P.read_prior(_replace(full_bytes, b"pLRS", bytes(plrs[:-4])))
    plrs[4:8] = struct.pack("<f", float("nan"))
    with pytest.raises(FormatError, match="pLRS: step size 1 is nan, must be finite"):
        P.read_prior(_replace(full_bytes, b"pLRS", bytes(plrs)))
    # meTA is ancillary: a broken one is ignored, never an error
    for junk in (b"\xff\xfe", b"[1, 2]", b"{", b"[" * 100000):
        assert P.read_prior(_replace(full_bytes, b"meTA", junk)).meta == {}


def test_unknown_chunks(full_bytes):
    chunks = _chunks(full_bytes)
    with_extra = _raw_file([*chunks[:2], Chunk(b"zzZZ", b"future"), *chunks[2:]])
    assert [c.data for c in read_prior_file(with_extra).extra] == [b"future"]
    assert P.read_prior(with_extra).digest == hashlib.sha256(with_extra).digest()
    with pytest.raises(UnknownCriticalChunkError, match="chunk ZZZZ at offset"):
        P.read_prior(_raw_file([*chunks[:2], Chunk(b"ZZZZ", b"future"), *chunks[2:]]))
    with pytest.raises(UnknownCriticalChunkError):       # a stream chunk means nothing in a prior file
        P.read_prior(_raw_file([*chunks[:2], Chunk(b"TDAT", b""), *chunks[2:]]))
    with pytest.raises(FormatError, match="PTEN may appear only once"):
        P.read_prior(_raw_file([*chunks[:3], chunks[2], *chunks[3:]]))


def test_writer_refuses_inconsistent_priors():
    tiny = _tiny()
    with pytest.raises(ValueError, match="4 tensors, the siren record has 6"):
        P.pack_prior(P.Prior("siren", SMALL, 0, (1, 8, 8), tiny.tensors))
    with pytest.raises(ValueError, match="masked-out values are not 0"):
        P.prior_from_float("siren", TINY, 0, (1, 8, 8), TINY_FLOATS, masks=[np.zeros(s, bool) for s in _shapes(TINY)])
    with pytest.raises(ValueError, match=r"tensor 2 has shape \(1, 3\)"):
        P.prior_from_float("siren", TINY, 0, (1, 8, 8), [*TINY_FLOATS[:2], np.zeros((1, 3)), TINY_FLOATS[3]])
    with pytest.raises(ValueError, match="not finite"):
        P.prior_from_float("siren", TINY, 0, (1, 8, 8), [np.full((1, 2), np.nan), *TINY_FLOATS[1:]])
    with pytest.raises(ValueError, match="not the ARCH record of nerv"):
        P.prior_from_float("nerv", TINY, 1, (1, 8, 8), TINY_FLOATS)
    with pytest.raises(FormatError, match="ARCH.in_features=2"):      # an image SIREN for a video prior
        P.prior_from_float("siren", TINY, 1, (4, 8, 8), TINY_FLOATS)
    with pytest.raises(ValueError, match="JSON"):
        P.prior_from_float("siren", TINY, 0, (1, 8, 8), TINY_FLOATS, meta={"x": object()})
    header = PriorHeader(0, 0, 1, 8, 8, 4, 1)
    raw = [RawTensor(t.step, t.q) for t in tiny.tensors]
    with pytest.raises(ValueError, match="flags"):
        write_prior_file(header, TINY, raw)
    with pytest.raises(ValueError, match="step=160"):
        write_prior_file(PriorHeader(0, 0, 1, 8, 8, 4, 0), TINY, [RawTensor(160, raw[0].symbols), *raw[1:]])
    with pytest.raises(ValueError, match="chunks must start with PHDR and end with NEND"):
        write_container([Chunk(b"NEND", b"")], signature=PRIOR_SIGNATURE)
    with pytest.raises(ValueError, match="no container format registered"):
        read_container(b"", signature=b"12345678")


# --------------------------------------------------------------------------- fuzz


def _mutate(data: bytes, ops: list, fix_crc: bool) -> bytes:
    """Apply byte operations to the file or (fix_crc) to one chunk's data with its CRC recomputed."""
    if not fix_crc:
        buf = bytearray(data)
        for kind, pos, value in ops:
            pos %= len(buf) + 1
            if kind == "set" and pos < len(buf):
                buf[pos] = value
            elif kind == "insert":
                buf[pos:pos] = bytes([value])
            elif kind == "delete":
                del buf[pos:pos + 1 + value % 8]
            elif kind == "cut":
                del buf[pos:]
        return bytes(buf)
    chunks = _chunks(data)
    out = []
    for i, c in enumerate(chunks):
        body = bytearray(c.data)
        for kind, pos, value in ops:
            if pos % len(chunks) != i:
                continue
            p = (pos // 7) % (len(body) + 1)
            if kind == "set" and p < len(body):
                body[p] = value
            elif kind == "insert":
                body[p:p] = bytes([value])
            elif kind == "delete":
                del body[p:p + 1 + value % 8]
            elif kind == "cut":
                del body[p:]
        out.append(pack_chunk(Chunk(c.ctype, bytes(body))))
    return data[:10] + b"".join(out)


OPS = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "cut"]), st.integers(0, 10_000),
                         st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, fix_crc=st.booleans(), which=st.sampled_from(["tiny", "full"]))
def test_fuzzed_prior_files_raise_only_format_errors(ops, fix_crc, which, full_bytes):
    data = _mutate(P.pack_prior(_tiny()) if which == "tiny" else full_bytes, ops, fix_crc)
    try:
        prior = P.read_prior(data)
    except FormatError:
        return
    # whatever is accepted is a consistent prior that packs again (same content)
    assert len(prior.tensors) == len(_shapes(prior.record))
    P.describe(prior)
    assert P.read_prior(P.pack_prior(prior)).tensors[0].step == prior.tensors[0].step


def test_truncation_at_every_offset_and_every_byte_flipped():
    data = P.pack_prior(_tiny())
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            P.read_prior(data[:cut])
    meta = next(c for c in _chunks(data) if c.ctype == b"meTA")
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        if pos == 9 or meta.offset + 8 <= pos < meta.offset + 12 + len(meta.data):
            P.read_prior(bytes(bad))      # a minor version, or a damaged ancillary chunk (skipped)
            continue
        with pytest.raises(FormatError):
            P.read_prior(bytes(bad))


# --------------------------------------------------------------------------- lookup


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty packaged dir and no NFC_PRIOR_PATH; returns a factory of directories."""
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    monkeypatch.setattr(P, "PACKAGED_DIR", packaged)
    monkeypatch.delenv("NFC_PRIOR_PATH", raising=False)

    def make(name: str) -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        return d

    make.packaged = packaged
    return make


def test_find_prior_search_order(places, monkeypatch, full_bytes):
    digest = hashlib.sha256(full_bytes).digest()
    explicit, env1, env2 = places("explicit"), places("env1"), places("env2")
    for d, stem in ((places.packaged, "packaged"), (env2, "env2"), (env1, "env1"), (explicit, "explicit")):
        (d / f"{stem}.nfp").write_bytes(full_bytes)
        (d / "other.nfp").write_bytes(P.pack_prior(_tiny()))
        (d / "ignored.bin").write_bytes(full_bytes)
    assert P.find_prior(digest).name == "packaged"
    monkeypatch.setenv("NFC_PRIOR_PATH", os.pathsep.join([str(env1), "", str(env1 / "missing"), str(env2)]))
    assert P.find_prior(digest).name == "env1"
    assert P.find_prior(digest, [explicit]).name == "explicit"                  # a directory
    assert P.find_prior(digest.hex(), [str(explicit / "explicit.nfp")]).name == "explicit"   # a file, a hex digest
    (env1 / "env1.nfp").unlink()
    assert P.find_prior(digest).name == "env2"
    prior = P.find_prior(digest)
    assert prior.digest == digest and prior.meta["steps"] == 1000
    tiny = P.find_prior(hashlib.sha256(P.pack_prior(_tiny())).digest())
    assert tiny.name == "other" and tiny.record == TINY


def test_find_prior_not_found_and_mismatch_messages(places, monkeypatch, full_bytes):
    env = places("env")
    monkeypatch.setenv("NFC_PRIOR_PATH", str(env))
    digest = hashlib.sha256(b"nothing").digest()
    with pytest.raises(P.PriorNotFoundError) as e:
        P.find_prior(digest, [str(env)])
    msg = str(e.value)
    assert msg == (f"this stream needs prior {digest.hex()}; not found in {env}, {env} ($NFC_PRIOR_PATH), "
                   f"{places.packaged} (packaged) (pass --prior PATH or set NFC_PRIOR_PATH)")
    assert "\n" not in msg and isinstance(e.value, InputError) and e.value.digest == digest
    wrong = env / "wrong.nfp"
    wrong.write_bytes(full_bytes)
    with pytest.raises(P.PriorMismatchError, match=rf"^prior {wrong} has hash {hashlib.sha256(full_bytes).hexdigest()}, "
                                                   rf"the stream needs {digest.hex()}$"):
        P.find_prior(digest, [wrong])
    with pytest.raises(P.PriorNotFoundError, match="prior path .*nope.nfp does not exist"):
        P.find_prior(digest, [env / "nope.nfp"])
    with pytest.raises(ValueError, match="32 bytes"):
        P.find_prior(b"short")


def test_find_prior_names_a_broken_matching_file(places, full_bytes):
    d = places("d")
    bad = full_bytes[:-12]                               # no NEND
    (d / "cut.nfp").write_bytes(bad)
    with pytest.raises(TruncatedError, match=r"^prior .*cut.nfp: file ends at offset \d+ before NEND$"):
        P.find_prior(hashlib.sha256(bad).digest(), [d])


def test_hash_cache_follows_file_changes(places, full_bytes):
    d = places("d")
    path = d / "p.nfp"
    path.write_bytes(P.pack_prior(_tiny()))
    assert P.find_prior(hashlib.sha256(P.pack_prior(_tiny())).digest(), [d]).name == "p"
    path.write_bytes(full_bytes)
    os.utime(path, ns=(1, 1))                            # a new mtime and size: hashed again
    assert P.find_prior(hashlib.sha256(full_bytes).digest(), [d]).size == (1, 32, 32)


def test_load_prior_by_path_and_name(places, monkeypatch, full_bytes):
    env = places("env")
    (env / "mine.nfp").write_bytes(full_bytes)
    (places.packaged / "default-image.nfp").write_bytes(P.pack_prior(_tiny()))
    (places.packaged / "mine.nfp").write_bytes(P.pack_prior(_tiny()))
    assert P.packaged_priors() == {"default-image": places.packaged / "default-image.nfp",
                                   "mine": places.packaged / "mine.nfp"}
    assert P.load_prior(str(env / "mine.nfp")).size == (1, 32, 32)
    assert P.load_prior("mine").record == TINY                      # packaged (no NFC_PRIOR_PATH)
    monkeypatch.setenv("NFC_PRIOR_PATH", str(env))
    assert P.load_prior("mine").size == (1, 32, 32)                 # NFC_PRIOR_PATH first
    assert P.default_prior(0).name == "default-image" and P.default_prior(1) is None
    with pytest.raises(P.PriorNotFoundError, match=r"no prior file or prior named 'zzz' .*packaged priors: default-image, mine"):
        P.load_prior("zzz")
    with pytest.raises(P.PriorNotFoundError, match="prior file .*zzz.nfp does not exist"):
        P.load_prior("zzz.nfp")
    with pytest.raises(P.PriorNotFoundError, match="is a directory"):
        P.load_prior(str(env))
    (env / "bad.nfp").write_bytes(full_bytes[:40])
    with pytest.raises(TruncatedError, match=r"^prior .*bad.nfp: file ends inside a chunk header at offset 33"):
        P.load_prior(str(env / "bad.nfp"))


def test_default_prior_absent(places):
    assert P.packaged_priors() == {} and P.default_prior(0) is None
    with pytest.raises(ValueError):
        P.default_prior(2)


# --------------------------------------------------------------------------- describe and CLI


def test_describe(full_bytes):
    d = P.describe(P.read_prior(full_bytes, name="x"))
    assert (d["name"], d["hash"], d["bytes"], d["media"], d["arch"]) == (
        "x", hashlib.sha256(full_bytes).hexdigest(), len(full_bytes), "image", "siren")
    assert d["record"]["width"] == 8 and d["size"] == {"frames": 1, "height": 32, "width": 32}
    assert d["parameters"] == sum(t["count"] for t in d["tensors"]) == 2 * 8 + 8 + 64 + 8 + 24 + 3
    assert d["masks"]["kept"] == d["nonzero"] <= d["parameters"]
    assert 1e-4 <= d["lrs"]["min"] <= d["lrs"]["median"] <= d["lrs"]["max"] <= 1e-2
    t0 = d["tensors"][0]
    assert t0["shape"] == [8, 2] and t0["step_value"] == STEP_TABLE[t0["step"]]
    json.dumps(d)


def test_cli_prior_info(tmp_path, full_bytes):
    path = tmp_path / "image-siren.nfp"
    path.write_bytes(full_bytes)
    runner = CliRunner()
    res = runner.invoke(prior_group, ["info", str(path)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"{path}: nfc prior 'image-siren', {len(full_bytes)} bytes" in out
    assert hashlib.sha256(full_bytes).hexdigest() in out
    assert "architecture (siren):" in out and "    width        8" in out
    assert "step sizes     Meta-SGD, min" in out and "masks          keep" in out
    assert "tensor   0: shape 8x2" in out and "algorithm    meta-sgd" in out
    res = runner.invoke(prior_group, ["info", "--json", str(path)])
    assert res.exit_code == 0 and json.loads(res.output)["hash"] == hashlib.sha256(full_bytes).hexdigest()


@pytest.mark.parametrize("content, message", [
    (None, "prior file .*missing.nfp does not exist"),
    (b"\x89PNG\r\n\x1a\n" + bytes(20), "not an nfc prior file"),
    (b"", "file ends inside the signature"),
])
def test_cli_prior_info_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "missing.nfp"
    if content is not None:
        path.write_bytes(content)
    res = CliRunner().invoke(prior_group, ["info", str(path)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nfc: error: ")
    assert __import__("re").search(message, lines[0]), lines[0]


def test_docs_worked_example_is_the_tiny_prior():
    import re

    doc = (ROOT / "docs" / "priors.md").read_text(encoding="utf-8").split("## 9. Worked example", 1)[1]
    rows = re.findall(r"^[0-9a-f]{8}  ((?:[0-9a-f]{2} ?)+)$", doc.split("```", 2)[1], flags=re.M)
    data = bytes.fromhex("".join(rows))
    assert data == P.pack_prior(_tiny()) == bytes.fromhex(TINY_HEX)
    assert hashlib.sha256(data).hexdigest() in doc and f"{len(data)} bytes" in doc
    assert f"0x{struct.unpack_from('<I', data, 29)[0]:08x}" in doc          # the PHDR CRC quoted
