"""An independent implementation of docs/format.md section 6, written from the text alone.

It shares nothing with ``nfcodec.exact``, ``nfcodec.reps`` or ``nfcodec.archs``: it reads the
container, the records and the entropy-coded tensors and masks with ``nfcodec.bitstream``
(sections 1 to 4a, already normative and tested) and then does every step of section 6 itself,
with Python integers, int64 dot products and binary64 scalar/elementwise operations.  For a
supermask stream (format 2.1, sections 4.3, 5d and 6.7) it parses SCAL, computes the laws from
the ARCH record with exact fractions, picks the step by the exact rule and regenerates the
weights with its own pure-Python Philox4x64-10 and its own NORMAL table.  For a width-chunks
stream (format 2.2, section 4b) it splits the segments, decodes every level's parts as streams of
their own, assembles the tensors of the requested level with the common power-of-two step and
the structural zeros, and crops the level's output.  For a tiles stream (format 2.3, section 4c)
it reads TILE, decodes the payload as tensors of shape (tiles, *shape) and renders each tile as a
tile_height x tile_width image placed (and cropped) in the frame; for a PRIR stream it takes the
prior file(s) from the caller, picks the one whose SHA-256 is the digest, parses it from the text
of docs/priors.md (its own container walk, PHDR, ARCH, PTEN, pLRS, pMSK) and adds prior and
residual exactly on the common power-of-two step.  For an XFRM stream (format 2.3, sections 3.6
and 4d, transforms from docs/transforms.md) it builds the permutation with its own Philox words and
a sort, and the gamma tables with Python integers, and inverts every rendered frame before a
level's crop.  It is slow (tiny files only) and exists to prove that the specification is complete:
the tests require its bytes to equal both backends'.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import statistics
import struct
import zlib
from fractions import Fraction
from types import SimpleNamespace
from typing import Sequence, Union

import numpy as np

from nfcodec.bitstream import (GrowRecord, NervArch, SeedRecord, SegmentHeader, SirenArch, StreamHeader,
                               decode_masks, decode_tensors, read_container, unpack_arch)
from nfcodec.bitstream.masks import decode_nested_masks

TURN = float.fromhex("0x1.45f306dc9c883p-3")
M = 1.5 * 2.0**52


def step(i: int) -> float:                       # section 5
    return math.ldexp(16 - i % 8, -(i // 8) - 4)


def _rhe(x: float) -> int:
    return int(round(x))                          # Python's round is half to even


SIN = np.array([_rhe(2**15 * math.sin(2 * math.pi * k / 2**16)) for k in range(2**16)], dtype=np.int64)
GELU = np.array([_rhe(2**11 * (z := (j - 2**16) / 2**11) * (1 + math.erf(z / math.sqrt(2))) / 2)
                 for j in range(2**17)], dtype=np.int64)


# --------------------------------------------------------------------------- section 6.7 (format 2.1)

N_STEPS = 192
_M64 = 2**64 - 1
_M0, _M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157
_W0, _W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B
NORMAL_SHA256 = "f6cbe9b59f70b3509943ab2362fc0479bb1390a65d06806f1605cd62ab22439c"


def philox_block(j: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """Philox4x64-10 of the counter words (j, 0, 0, 0) under the key (k0, k1)."""
    c0, c1, c2, c3 = j, 0, 0, 0
    for _ in range(10):
        p0, p1 = _M0 * c0, _M1 * c2                    # full 128-bit products
        c0, c1, c2, c3 = (p1 >> 64) ^ c1 ^ k0, p1 & _M64, (p0 >> 64) ^ c3 ^ k1, p0 & _M64
        k0, k1 = (k0 + _W0) & _M64, (k1 + _W1) & _M64
    return c0, c1, c2, c3


def words(seed: int, index: int, n: int) -> np.ndarray:
    """u_0 .. u_(n-1) of tensor ``index``: the words of blocks 1, 2, 3, ... in order (uint64)."""
    out: list[int] = []
    for j in range(1, (n + 3) // 4 + 1):
        out += philox_block(j, seed, index)
    return np.array(out[:n], dtype=np.uint64)


# the golden values of section 6.7 (and Random123's known answer for counter 0, key 0)
assert philox_block(0, 0, 0) == (0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B)
assert words(0, 0, 4).tolist() == [0x02F4BA6408E4D89B, 0x3DD62B0B9CA8C5B2, 0x1C8667A55D902E79, 0x907D7A052FD5B4DC]
assert words(7, 3, 4).tolist() == [0x7B6CC7B1862CC5F2, 0xB960F2EA4B3F8D9F, 0x0CDD72E015DEB1A6, 0x50EDB0D22A6A6FD5]


@functools.lru_cache(maxsize=None)
def normal_table() -> np.ndarray:
    """NORMAL[i] = rhe(2^8 Phi^-1((2i + 1) / 2^17)), checked against the pinned SHA-256."""
    inv = statistics.NormalDist().inv_cdf
    est = [2**8 * inv((2 * i + 1) / 2**17) for i in range(2**16)]     # (2i + 1) / 2^17 is exact
    # the text: no entry lies within 2e-5 of a tie, so a faithful inv_cdf rounds correctly
    assert min(abs(x - math.floor(x) - 0.5) for x in est) > 1e-6
    table = np.array([_rhe(x) for x in est], dtype=np.int64)
    assert hashlib.sha256(table.astype("<i4").tobytes()).hexdigest() == NORMAL_SHA256
    return table


def law_step(scale2: Fraction) -> int:
    """The k minimising max(step(k)^2 / t^2, t^2 / step(k)^2), t^2 = scale^2 / 2^16; ties: lower k."""
    t2 = Fraction(scale2) / 2**16
    best, best_d = 0, None
    for k in range(N_STEPS):
        s2 = Fraction(step(k)) ** 2
        d = max(s2 / t2, t2 / s2)
        if best_d is None or d < best_d:
            best, best_d = k, d
    return best


def samples(seed: int, index: int, kind: str, n: int) -> np.ndarray:
    u = words(seed, index, n)
    if kind == "normal":
        return normal_table()[(u >> np.uint64(48)).astype(np.int64)]
    return 2 * (u >> np.uint64(56)).astype(np.int64) - 255


def laws(h: StreamHeader, r, shapes: list[tuple[int, ...]]) -> list[tuple[str, Fraction]]:
    """(kind, scale^2) of every tensor (section 5d); a bias has its weight's fan_in."""
    out = []
    for i in range(0, len(shapes), 2):
        fan = math.prod(shapes[i][1:])
        if h.arch == 0:
            w0 = Fraction(r.w0_hidden)                 # the exact binary32 value
            if i == 0:
                weight = ("uniform", Fraction(1, fan * fan))
            elif i == len(shapes) - 2:                 # the RGB head: sqrt(6 / fan_in) / 6
                weight = ("uniform", Fraction(6, fan) / 36)
            else:
                weight = ("uniform", Fraction(6, fan) / (w0 * w0))
        else:
            weight = ("normal", Fraction(2, fan))
        out += [weight, ("uniform", Fraction(1, fan))]
    return out


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def scales(data: bytes) -> tuple[int, int, list[int]]:
    """SCAL (section 4.3): (N, F, [a_1 .. a_N])."""
    n, f = data[0], data[1]
    assert 1 <= n <= 8 and f <= 16, (n, f)
    pos, a = 2, []
    for _ in range(n):
        v, pos = _uvarint(data, pos)
        assert 1 <= v <= 2**16, v
        a.append(v)
    assert pos == len(data)
    return n, f, a


def _supermask(chunks, h: StreamHeader, r, shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, float]]:
    one = {t: [c for c in chunks if c.ctype == t] for t in (b"SEED", b"MASK", b"SCAL")}
    assert all(len(v) == 1 for v in one.values()), {t: len(v) for t, v in one.items()}
    seed = SeedRecord.unpack(one[b"SEED"][0].data)
    assert seed.rng == 0
    n_levels, frac, a = scales(one[b"SCAL"][0].data)
    cum = np.cumsum([0] + a).astype(np.int64)          # A_0 .. A_N
    sizes = [math.prod(s) for s in shapes]
    levels = decode_nested_masks(one[b"MASK"][0].data, sizes=sizes)
    assert len(levels) == n_levels
    counts: dict[int, np.ndarray] = {}                 # level count c_e of every masked tensor
    kept: dict[int, np.ndarray] = {}                   # positions the previous level kept
    for masks in levels:
        for m in masks:
            if m.index not in counts:
                counts[m.index], kept[m.index] = np.zeros(sizes[m.index], np.int64), np.arange(sizes[m.index])
            kept[m.index] = kept[m.index][np.asarray(m.flat, dtype=bool)]
            counts[m.index][kept[m.index]] += 1
    out = []
    for i, (shape, (kind, scale2)) in enumerate(zip(shapes, laws(h, r, shapes))):
        z = samples(seed.seed, i, kind, sizes[i])
        k = law_step(scale2)
        if i in counts:
            q, k = z * cum[counts[i]], k + 8 * frac
            if k >= N_STEPS:
                raise ValueError(f"tensor {i}: step index {k} beyond the table")
        else:
            q = z
        out.append((q.reshape(shape), step(k)))
    return out


def _coded(tdat: bytes, mask: bytes | None, shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, int]]:
    """Dense (section 4, 5a) or pruned (4a, 5c) payload of tensors ``shapes``: (symbols, step index)."""
    masks = {}
    if mask is not None:
        for m in decode_masks(mask):
            assert 0 <= m.index < len(shapes) and m.flat.size == math.prod(shapes[m.index]), (m.index, m.flat.size)
            masks[m.index] = np.asarray(m.flat, dtype=bool)
    records = decode_tensors(tdat)
    assert [t.index for t in records] == list(range(len(shapes))), [t.index for t in records]
    out = []
    for t, shape in zip(records, shapes):
        assert t.step < N_STEPS, t.step
        q = np.asarray(t.symbols, dtype=np.int64)
        if t.index in masks:
            assert q.size == int(masks[t.index].sum()), (t.index, q.size)
            full = np.zeros(masks[t.index].size, np.int64)
            full[masks[t.index]] = q
            q = full
        assert q.size == math.prod(shape), (t.index, q.size, shape)
        out.append((q.reshape(shape), t.step))
    return out


def _tensors(data: bytes, h: StreamHeader, r, shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, float]]:
    chunks = read_container(data).chunks
    representation = h.representation
    if representation == 2:
        return _supermask(chunks, h, r, shapes)
    tdat = next(c for c in chunks if c.ctype == b"TDAT").data
    mask = next(c for c in chunks if c.ctype == b"MASK").data if representation == 1 else None
    return [(q, step(i)) for q, i in _coded(tdat, mask, shapes)]


# --------------------------------------------------------------------------- section 4b (format 2.2)

def _segments(chunks, h: StreamHeader, g: GrowRecord) -> list[dict[bytes, bytes]]:
    """The payload chunks of every segment, in order, with the section 4b chunk-order rules."""
    reads = (b"TDAT",) if h.representation == 0 else (b"MASK", b"TDAT")
    segs: list[dict[bytes, bytes]] = []
    for c in chunks:
        ancillary = bool(c.ctype[0] & 0x20)
        if c.ctype == b"SEGM":
            sh = SegmentHeader.unpack(c.data)
            k = len(segs)
            assert k < g.levels, "more segments than GROW levels"
            a = g.widths[k - 1] if k else 0
            assert (sh.index, sh.kind, sh.start, sh.stop) == (k, 1, a, g.widths[k]), (sh, k)
            segs.append({})
        elif ancillary or c.ctype == b"NEND":
            continue
        elif not segs:
            assert c.ctype in (b"NHDR", b"ARCH", b"GROW", b"XFRM"), f"critical {c.ctype!r} before the first SEGM"
        else:
            assert c.ctype in reads, f"{c.ctype!r} in a segment of representation {h.representation}"
            assert c.ctype not in segs[-1], f"a second {c.ctype!r} in segment {len(segs) - 1}"
            segs[-1][c.ctype] = c.data
    assert len(segs) == g.levels == h.n_segments, (len(segs), g.levels, h.n_segments)
    for k, seg in enumerate(segs):
        assert set(seg) == set(reads), f"segment {k} holds {sorted(seg)}, needs {sorted(reads)}"
    return segs


def _part_shapes(r: SirenArch, a: int, b: int, first: bool) -> list[tuple[int, ...]]:
    """Shapes of the parts of the level adding units [a, b) (section 4b table)."""
    n = b - a
    shapes: list[tuple[int, ...]] = [(n, r.in_features), (n,)]
    for _ in range(2, r.depth + 1):
        shapes += [(n, b), (n,)]
    shapes.append((3, n))
    if first:
        shapes.append((3,))
    return shapes


def _part_places(r: SirenArch, a: int, b: int, first: bool) -> list[tuple[int, tuple]]:
    """(tensor index, index expression in that tensor) of every part, parallel to _part_shapes."""
    places: list[tuple[int, tuple]] = [(0, (slice(a, b), slice(None))), (1, (slice(a, b),))]
    for l in range(2, r.depth + 1):
        places += [(2 * l - 2, (slice(a, b), slice(0, b))), (2 * l - 1, (slice(a, b),))]
    places.append((2 * r.depth, (slice(None), slice(a, b))))
    if first:
        places.append((2 * r.depth + 1, (slice(None),)))
    return places


def _level_tensors(h: StreamHeader, r: SirenArch, g: GrowRecord, segs: list[dict[bytes, bytes]],
                   level: int) -> list[tuple[np.ndarray, float]]:
    """The tensors of the width-w_k SIREN of level ``level`` (1-based): (symbols Q_t, 2^-E)."""
    w = g.widths[level - 1]
    dims = [r.in_features] + [w] * r.depth
    shapes = [s for a, o in zip(dims[:-1], dims[1:]) for s in ((o, a), (o,))] + [(3, w), (3,)]
    parts: list[list[tuple[tuple, np.ndarray, int]]] = [[] for _ in shapes]   # (place, q_p, i_p)
    for j in range(1, level + 1):
        a, b = (g.widths[j - 2] if j > 1 else 0), g.widths[j - 1]
        pshapes = _part_shapes(r, a, b, j == 1)
        coded = _coded(segs[j - 1][b"TDAT"], segs[j - 1].get(b"MASK"), pshapes)
        for (t, place), (q, i) in zip(_part_places(r, a, b, j == 1), coded):
            parts[t].append((place, q, i))
    out = []
    for t, shape in enumerate(shapes):
        nonzero = [(place, q, i) for place, q, i in parts[t] if np.any(q)]
        for _, _, i in nonzero:
            if i >= 160:
                raise ValueError(f"tensor {t}: a part with step index {i} >= 160")
        e_max = max([i // 8 + 4 for _, _, i in nonzero], default=4)
        full = np.zeros(shape, np.int64)                       # structural zeros stay 0
        seen = np.zeros(shape, bool)
        for place, q, i in parts[t]:
            assert not seen[place].any(), f"tensor {t}: two parts hold one position"
            seen[place] = True
            m_p, e_p = 16 - i % 8, i // 8 + 4
            # an all-zero part contributes zeros whatever its step (it is not in P)
            full[place] = q * (m_p * 2 ** (e_max - e_p)) if np.any(q) else 0
        assert step(8 * e_max) == math.ldexp(1.0, -e_max)
        out.append((full, step(8 * e_max)))
    return out


def _grid_level_tensors(r, g: GrowRecord, segs: list[dict[bytes, bytes]], level: int) -> list[tuple[np.ndarray, float]]:
    """Section 4b "Latent levels" (format 2.8): the grid's tensors at level ``level``; segment j
    holds planes L-1-a .. L-b (coarse to fine) and, the first, the synthesis; every tensor at its
    own step; planes no segment up to ``level`` holds are zeros."""
    shapes = _grid_shapes(r)
    L = r.levels
    ts: list = [None] * len(shapes)
    for j in range(1, level + 1):
        a, b = (g.widths[j - 2] if j > 1 else 0), g.widths[j - 1]
        idx = [L - 1 - m for m in range(a, b)] + (list(range(L, len(shapes))) if j == 1 else [])
        for t, (q, i) in zip(idx, _coded(segs[j - 1][b"TDAT"], None, [shapes[t] for t in idx])):
            ts[t] = (q, step(i))
    return [t if t is not None else (np.zeros(shapes[n], np.int64), 1.0) for n, t in enumerate(ts)]


def _grid_widthchunks_frames(chunks, h: StreamHeader, r, level: int | None, inverse) -> np.ndarray:
    g = GrowRecord.unpack(next(c.data for c in chunks if c.ctype == b"GROW"))
    assert g.growing == 0, "a grid grows spectrally"
    assert g.widths[-1] <= r.levels and g.levels == h.n_segments, (g, r.levels, h.n_segments)
    assert h.representation == 0, "dense only"
    segs = _segments(chunks, h, g)
    level = g.levels if level is None else level
    assert 1 <= level <= g.levels, level
    return inverse(_grid_frame(r, h, _grid_level_tensors(r, g, segs, level), 0)[None])


def _widthchunks_frames(chunks, h: StreamHeader, r, frames: list[int] | None, level: int | None,
                        inverse) -> np.ndarray:
    if h.arch == 2:
        return _grid_widthchunks_frames(chunks, h, r, level, inverse)
    assert h.arch == 0, "only SIREN and the grid grow (section 4b)"
    assert h.representation in (0, 1), "the supermask representation is not allowed in width-chunks"
    grows = [c for c in chunks if c.ctype == b"GROW"]
    assert len(grows) == 1, len(grows)
    g = GrowRecord.unpack(grows[0].data)
    assert g.widths[-1] == r.width and g.levels == h.n_segments, (g, r.width, h.n_segments)
    if g.growing == 1:
        assert g.covers[-1] <= h.width, g.covers
    if g.growing == 2:
        assert h.media == 1 and g.covers[-1] <= h.frames, g.covers
    names = [c.ctype for c in chunks]
    assert names.index(b"GROW") < names.index(b"SEGM"), "GROW after a SEGM"
    assert b"XFRM" not in names or names.index(b"XFRM") < names.index(b"SEGM"), "XFRM after a SEGM (4d)"
    segs = _segments(chunks, h, g)
    level = g.levels if level is None else level
    assert 1 <= level <= g.levels, level
    ts = _level_tensors(h, r, g, segs, level)
    cover = g.covers[level - 1]
    if frames is None:
        frames = range(cover if g.growing == 2 else h.frames)
    if g.growing == 2:
        assert all(0 <= k < cover for k in frames), (list(frames), cover)
    out = inverse(np.stack([_siren_frame(r, h, ts, k) for k in frames]))   # 4d: invert, then crop
    if g.growing == 1:
        out = np.ascontiguousarray(out[:, :, :cover])
    return out


# --------------------------------------------------------------------------- section 4c (format 2.3)

PRIOR_SIGNATURE = b"\x89NFP\r\n\x1a\n"
PRIOR_STEP_LIMIT = 160        # steps of a prior's tensors; of a prior-coded tensor's nonzero symbols
PRIOR_MAX_VALUES = 2**26
PRIOR_MAX_SYMBOL = 2**20
MAX_TILES = 2**16
PriorSource = Union[bytes, str, os.PathLike]


def _siren_shapes(r: SirenArch) -> list[tuple[int, ...]]:
    """Section 5a order: W_1, b_1, ..., W_depth, b_depth, W_out, b_out."""
    dims = [r.in_features] + [r.width] * r.depth
    return [s for a, o in zip(dims[:-1], dims[1:]) for s in ((o, a), (o,))] + [(3, r.width), (3,)]


def _nerv_shapes(r: NervArch) -> list[tuple[int, ...]]:
    shapes = [(r.mlp_hidden, 2 * r.pe_l), (r.mlp_hidden,), (r.c1 * r.h0 * r.w0, r.mlp_hidden), (r.c1 * r.h0 * r.w0,)]
    cin = r.c1
    for f, c in r.blocks:
        shapes += [(c * f * f, cin, r.kernel, r.kernel), (c * f * f,)]
        cin = c
    return shapes + [(3, cin, r.head_kernel, r.head_kernel), (3,)]


def _prior_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """priors.md sections 1-2: (type, data) of the chunks of a prior file, after the container rules."""
    if data[:8] != PRIOR_SIGNATURE[:len(data[:8])]:
        raise ValueError(f"not an nfc prior file: signature {bytes(data[:8])!r}")
    if len(data) < 10:
        raise ValueError("prior file: truncated in its signature or version")
    if data[8] != 1:
        raise ValueError(f"prior file: major version {data[8]}, this reader reads 1")
    known, once = {b"PHDR", b"ARCH", b"PTEN", b"NEND"}, {b"PHDR", b"ARCH", b"PTEN", b"NEND", b"pLRS", b"pMSK", b"meTA"}
    pos, out, seen, first = 10, [], set(), True
    while True:
        if pos + 8 > len(data):
            raise ValueError(f"prior file: truncated at byte {pos} (no NEND)")
        (length,), ctype = struct.unpack_from("<I", data, pos), bytes(data[pos + 4:pos + 8])
        if not all(65 <= b <= 90 or 97 <= b <= 122 for b in ctype) or length > 2**31 - 1:
            raise ValueError(f"prior file: bad chunk at byte {pos}: type {ctype!r}, length {length}")
        if pos + 12 + length > len(data):
            raise ValueError(f"prior file: chunk {ctype!r} at byte {pos} is cut off")
        body = bytes(data[pos + 8:pos + 8 + length])
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        critical = not ctype[0] & 0x20
        if first and ctype != b"PHDR":
            raise ValueError(f"prior file: first chunk {ctype!r}, must be PHDR")
        first = False
        pos += 12 + length
        if zlib.crc32(ctype + body) != crc:
            if critical:
                raise ValueError(f"prior file: CRC mismatch in critical chunk {ctype!r}")
            continue                                    # a damaged ancillary chunk is skipped
        if critical and ctype not in known:
            raise ValueError(f"prior file: unknown critical chunk {ctype!r}")
        if ctype in once and ctype in seen:
            raise ValueError(f"prior file: a second {ctype!r} chunk")
        seen.add(ctype)
        out.append((ctype, body))
        if ctype == b"NEND":
            if length or pos != len(data):
                raise ValueError("prior file: NEND not empty, or bytes after it")
            return out


def _read_prior(data: bytes, h: StreamHeader, r, arch_payload: bytes,
                shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, int]]:
    """docs/priors.md section 3 and format.md 4c rule 1: the prior's (symbols p, step index i_p) per tensor."""
    chunks = {t: d for t, d in _prior_chunks(data) if t in (b"PHDR", b"ARCH", b"PTEN", b"pLRS", b"pMSK")}
    if len(chunks[b"PHDR"]) != 11:
        raise ValueError(f"PHDR: {len(chunks[b'PHDR'])} bytes, must be 11")
    media, arch, frames, height, width, n_tensors, flags = struct.unpack("<BBHHHHB", chunks[b"PHDR"])
    if media > 1 or arch > 1 or not (frames and height and width and n_tensors) or flags > 3:
        raise ValueError(f"PHDR: a field out of range {(media, arch, frames, height, width, n_tensors, flags)}")
    if media == 0 and frames != 1:
        raise ValueError(f"PHDR.frames={frames} for an image, must be 1")
    if width * height > 2**26:
        raise ValueError(f"PHDR: {width}x{height} exceeds 2^26 pixels")
    for need in (b"ARCH", b"PTEN"):
        if need not in chunks:
            raise ValueError(f"prior file has no {need.decode()} chunk")
    # format.md 4c rule 1: the same architecture id and a byte-identical ARCH record
    if arch != h.arch or chunks[b"ARCH"] != arch_payload:
        raise ValueError(f"the prior's network (PHDR.arch={arch}, ARCH {chunks[b'ARCH'].hex()}) is not the "
                         f"stream's (NHDR.arch={h.arch}, ARCH {arch_payload.hex()})")
    # priors.md 3.1 cross-field rule: the record fits the media and size
    if arch == 0 and (r.in_features != 2 + media or r.out_features != 3):
        raise ValueError(f"prior ARCH: SIREN in {r.in_features} out {r.out_features} for media {media}")
    if arch == 1:
        p = math.prod(f for f, _ in r.blocks)
        if media != 1 or r.h0 * p < height or r.w0 * p < width:
            raise ValueError("prior ARCH: the NeRV does not fit PHDR's media and size")
    if n_tensors != len(shapes):
        raise ValueError(f"PHDR.n_tensors={n_tensors}, the ARCH record has {len(shapes)} tensors")
    pten, pos, total, heads = chunks[b"PTEN"], 0, 0, []
    for t in range(n_tensors):                         # counts against the bytes, before allocating
        if pos + 5 > len(pten):
            raise ValueError(f"PTEN: tensor {t} is cut off")
        i_p, count = struct.unpack_from("<BI", pten, pos)
        if i_p >= PRIOR_STEP_LIMIT:
            raise ValueError(f"PTEN: tensor {t} has step {i_p}, must be < {PRIOR_STEP_LIMIT}")
        if 4 * count > len(pten) - pos - 5:
            raise ValueError(f"PTEN: tensor {t} counts {count} values, more than the bytes left")
        total += count
        if total > PRIOR_MAX_VALUES:
            raise ValueError(f"PTEN: more than {PRIOR_MAX_VALUES} values")
        heads.append((pos + 5, i_p, count))
        pos += 5 + 4 * count
    if pos != len(pten):
        raise ValueError(f"PTEN: {len(pten) - pos} bytes after the last tensor")
    out = []
    for t, ((start, i_p, count), shape) in enumerate(zip(heads, shapes)):
        if count != math.prod(shape):
            raise ValueError(f"PTEN: tensor {t} has {count} values, its shape {shape} needs {math.prod(shape)}")
        p = np.frombuffer(pten, "<i4", count, start).astype(np.int64)
        if count and np.abs(p).max() >= PRIOR_MAX_SYMBOL:
            raise ValueError(f"PTEN: tensor {t} has a symbol of magnitude >= 2^20")
        out.append((p.reshape(shape), i_p))
    # the ancillary chunks are for encoders, but a flag makes its chunk mandatory (and vice versa)
    if bool(flags & 1) != (b"pLRS" in chunks) or bool(flags & 2) != (b"pMSK" in chunks):
        raise ValueError(f"PHDR.flags={flags} does not match the chunks present")
    if flags & 1:
        lrs = chunks[b"pLRS"]
        if len(lrs) != 4 * total or not np.isfinite(np.frombuffer(lrs, "<f4")).all():
            raise ValueError("pLRS: wrong length or a value that is not finite")
    if flags & 2:
        msk, pos = chunks[b"pMSK"], 0
        for t, (p, _) in enumerate(out):
            nb = (p.size + 7) // 8
            bits = np.unpackbits(np.frombuffer(msk[pos:pos + nb], np.uint8), bitorder="little")
            if bits.size != 8 * nb or bits[p.size:].any():
                raise ValueError(f"pMSK: tensor {t}: cut off, or padding bits set")
            if np.any(p.reshape(-1)[bits[:p.size] == 0]):
                raise ValueError(f"pMSK: tensor {t}: a masked-out value is not 0")
            pos += nb
        if pos != len(msk):
            raise ValueError("pMSK: bytes after the last tensor's mask")
    return out


def _prior_candidates(prior) -> list[tuple[str, bytes]]:
    """The caller's prior files, in order: bytes, paths, or directories (their ``*.nfp``, by name)."""
    if prior is None:
        return []
    if isinstance(prior, (bytes, bytearray, memoryview, str, os.PathLike)):
        prior = [prior]
    out = []
    for k, p in enumerate(prior):
        if isinstance(p, (bytes, bytearray, memoryview)):
            out.append((f"candidate {k}", bytes(p)))
        elif os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith(".nfp") and os.path.isfile(os.path.join(p, name)):
                    with open(os.path.join(p, name), "rb") as f:
                        out.append((os.path.join(p, name), f.read()))
        else:
            with open(p, "rb") as f:
                out.append((os.fspath(p), f.read()))
    return out


def _find_prior(digest: bytes, prior) -> bytes:
    """4c rule 1: the first candidate whose SHA-256 is the digest; none: the stream cannot be decoded."""
    candidates = _prior_candidates(prior)
    for _, data in candidates:
        if hashlib.sha256(data).digest() == digest:
            return data
    tried = ", ".join(f"{name} (hash {hashlib.sha256(data).hexdigest()})" for name, data in candidates)
    raise ValueError(f"this stream needs prior {digest.hex()}; not found in {tried or 'no prior file given'}")


def _e(i: int) -> int:
    """STEP_TABLE[i] = (16 - i % 8) * 2^-e(i)."""
    return i // 8 + 4


def _add_prior(prior: list[tuple[np.ndarray, int]],
               residual: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
    """4c rule 2: prior + residual on the common step 2^-E, exactly; (symbols, step index 8E).

    A residual of shape (tiles, *shape) gets the prior's tensor added to each tile's slice."""
    assert len(prior) == len(residual), (len(prior), len(residual))
    out = []
    for t, ((p, i_p), (q_r, i_r)) in enumerate(zip(prior, residual)):
        assert q_r.shape == p.shape or q_r.shape[1:] == p.shape, (t, q_r.shape, p.shape)
        live = [(x, i) for x, i in ((p, i_p), (q_r, i_r)) if np.any(x)]
        for _, i in live:
            if i >= PRIOR_STEP_LIMIT:
                raise ValueError(f"tensor {t}: nonzero symbols on step index {i} >= {PRIOR_STEP_LIMIT}")
        big_e = max((_e(i) for _, i in live), default=4)
        q = np.zeros(q_r.shape, np.int64)
        for x, i in live:
            q = q + x * ((16 - i % 8) * 2 ** (big_e - _e(i)))      # exact in int64: |q| < 2^55
        if q.size and int(np.abs(q).max()) >= 2**53:                 # rule 2: exact in binary64
            raise ValueError(f"tensor {t}: prior + residual symbol {int(np.abs(q).max())} on step 2^-{big_e} "
                             f"is not below 2^53")
        assert step(8 * big_e) == math.ldexp(1.0, -big_e)
        out.append((q, 8 * big_e))
    return out


def _siren_bounds(r: SirenArch, ts: list[tuple[np.ndarray, float]], where: str) -> None:
    """Section 6.3's two validity bounds for one SIREN, in exact rational arithmetic."""
    x_max, f_in = 2**20, 20
    for l in range(r.depth + 1):
        (q, s), (qb, sb) = ts[2 * l], ts[2 * l + 1]
        row = max((sum(abs(int(v)) for v in u) for u in q.reshape(q.shape[0], -1)), default=0)
        bound = row * x_max
        if bound >= 2**53:
            raise ValueError(f"{where}: layer {l + 1}: accumulator bound {bound} >= 2^53")
        if l < r.depth:
            w0 = r.w0_first if l == 0 else r.w0_hidden
            alpha = math.ldexp((w0 * s) * TURN, 16 - f_in)
            beta = np.ldexp((w0 * (qb * sb)) * TURN, 16) + M
            phase = bound * abs(Fraction(alpha)) + max(abs(Fraction(float(b)) - Fraction(M)) for b in beta)
            if phase >= 2**50:
                raise ValueError(f"{where}: layer {l + 1}: sine phase bound {float(phase):.4g} >= 2^50")
        x_max, f_in = 2**15, 15


def _one(chunks, ctype: bytes) -> bytes:
    found = [c.data for c in chunks if c.ctype == ctype]
    if len(found) != 1:
        raise ValueError(f"stream has {len(found)} {ctype.decode()} chunks, needs exactly one")
    return found[0]


def _tile_geometry(chunks, h: StreamHeader) -> tuple[int, int, int, int]:
    """The TILE chunk and rule 12's checks against NHDR: (tile_height, tile_width, R, C)."""
    tile = _one(chunks, b"TILE")
    if len(tile) != 4:
        raise ValueError(f"TILE: {len(tile)} bytes, must be 4")
    th, tw = struct.unpack("<HH", tile)
    if not (8 <= th <= 4096 and 8 <= tw <= 4096):
        raise ValueError(f"TILE: {th}x{tw} outside 8..4096")
    if h.media != 0 or h.n_segments != 1 or h.arch != 0:
        raise ValueError(f"layout tiles needs an image, one segment and SIREN (media {h.media}, "
                         f"n_segments {h.n_segments}, arch {h.arch})")
    if h.representation not in (0, 1):
        raise ValueError("the supermask representation is not allowed in the tiles layout")
    rows, cols = -(-h.height // th), -(-h.width // tw)
    if rows * cols > MAX_TILES:
        raise ValueError(f"TILE {th}x{tw}: {rows * cols} tiles, more than {MAX_TILES}")
    return th, tw, rows, cols


def _tiles_frames(chunks, h: StreamHeader, r: SirenArch, frames: list[int] | None,
                  prior: list[tuple[np.ndarray, int]] | None) -> np.ndarray:
    th, tw, rows, cols = _tile_geometry(chunks, h)
    # rule 7: the layout reads TILE (and PRIR), the representation its payload; nothing else (no SEGM)
    reads = {b"NHDR", b"ARCH", b"NEND", b"TILE", b"PRIR", b"XFRM", b"TDAT"}
    reads |= {b"MASK"} if h.representation == 1 else set()
    for c in chunks:
        if not c.ctype[0] & 0x20 and c.ctype not in reads:
            raise ValueError(f"critical chunk {c.ctype!r} is not read by a tiles stream")
    n_tiles = rows * cols
    shapes = [(n_tiles, *s) for s in _siren_shapes(r)]           # all tiles together, tile n = slice n
    mask = _one(chunks, b"MASK") if h.representation == 1 else None
    coded = _coded(_one(chunks, b"TDAT"), mask, shapes)
    if prior is not None:
        coded = _add_prior(prior, coded)
    ts = [(q, step(i)) for q, i in coded]
    nets = [[(q[n], s) for q, s in ts] for n in range(n_tiles)]
    for n, net in enumerate(nets):                                # every tile is checked before rendering
        _siren_bounds(r, net, f"tile {n}")
    grid = SimpleNamespace(height=th, width=tw, frames=1)         # a tile's network sees a th x tw image
    out = np.zeros((h.height, h.width, 3), np.uint8)
    for n, net in enumerate(nets):
        r0, c0 = (n // cols) * th, (n % cols) * tw
        r1, c1 = min(r0 + th, h.height), min(c0 + tw, h.width)
        out[r0:r1, c0:c1] = _siren_frame(r, grid, net, 0)[:r1 - r0, :c1 - c0]
    ks = [0] if frames is None else list(frames)
    assert all(k == 0 for k in ks), ks
    return np.stack([out for _ in ks])


# --------------------------------------------------------------------------- sections 3.6, 4d (format 2.3)

XFRM_PERMUTE_STREAM = 0x5846524D00000001      # ASCII "XFRM", then the transform id 1
GAMMA_MIN, GAMMA_MAX = 250, 4000


def _xfrm_inverse(chunks):
    """The XFRM chunk (at most one, 5 bytes: u8 transform, u32 param) as the map from rendered frames
    (n, H, W, 3) to output frames; the identity without one."""
    found = [c.data for c in chunks if c.ctype == b"XFRM"]
    if not found:
        return lambda out: out
    if len(found) != 1 or len(found[0]) != 5:
        raise ValueError("XFRM: one 5-byte chunk expected")
    transform, param = struct.unpack("<BI", found[0])
    if transform == 0:
        if param != 0:
            raise ValueError(f"XFRM: identity with param {param}, must be 0")
        return lambda out: out
    if transform == 1:
        return lambda out: _unpermute(out, param)
    if transform == 2:
        if not GAMMA_MIN <= param <= GAMMA_MAX:
            raise ValueError(f"XFRM: gamma exponent {param} thousandths outside [{GAMMA_MIN}, {GAMMA_MAX}]")
        table = np.array(_gamma_inverse_table(param), np.uint8)
        return lambda out: table[out]
    raise ValueError(f"XFRM: transform id {transform} is not defined")


def _unpermute(out: np.ndarray, seed: int) -> np.ndarray:
    """permute's inverse: ``original[perm[p]] = fitted[p]``, perm sorting the positions by (key, position)."""
    n, hh, ww, _ = out.shape
    keys = words(seed, XFRM_PERMUTE_STREAM, hh * ww).tolist()
    perm = np.array(sorted(range(hh * ww), key=lambda p: (keys[p], p)), np.int64)
    flat = out.reshape(n, hh * ww, 3)
    orig = np.empty_like(flat)
    orig[:, perm] = flat
    return orig.reshape(out.shape)


def _power(r: Fraction) -> list[int]:
    """table_r[x]: how many k in 0..254 have x^a 510^b >= (2k+1)^b 255^a (r = a/b in lowest terms)."""
    a, b = r.numerator, r.denominator
    rhs = [(2 * k + 1) ** b * 255**a for k in range(255)]
    return [sum(1 for t in rhs if x**a * 510**b >= t) for x in range(256)]


@functools.lru_cache(maxsize=None)
def _gamma_inverse_table(param: int) -> tuple[int, ...]:
    """G[y]: the rounded-half-up mean of {x : F[x] = y}, else table_(1/e)[y]; F = table_e, e = param/1000."""
    e = Fraction(param, 1000)
    fwd, back = _power(e), _power(1 / e)
    out = []
    for y in range(256):
        pre = [x for x in range(256) if fwd[x] == y]
        out.append((2 * sum(pre) + len(pre)) // (2 * len(pre)) if pre else back[y])
    return tuple(out)


def _affine(acc: np.ndarray, alpha: float, beta: np.ndarray) -> np.ndarray:
    v = acc.astype(np.float64) * alpha            # elementwise binary64 multiply ...
    return v + beta                               # ... then add: two roundings, never fused


def _layer(act: str, acc: np.ndarray, s: float, b: np.ndarray, f_in: int, w0: float = 0.0) -> np.ndarray:
    """Section 6.3 steps 2-3 for acc of shape (units, positions); b: bias values (units,)."""
    b = b.reshape(-1, 1)
    if act == "sine":
        alpha = math.ldexp((w0 * s) * TURN, 16 - f_in)
        beta = np.ldexp((w0 * b) * TURN, 16) + M
        v = _affine(acc, alpha, beta)
        return SIN[(v - M).astype(np.int64) % 2**16]
    if act == "gelu":
        alpha = math.ldexp(s, 11 - f_in)
        beta = np.ldexp(b, 11) + (M + 2**16)
        v = _affine(acc, alpha, beta)
        return GELU[np.clip(v - M, 0, 2**17 - 1).astype(np.int64)]
    alpha = math.ldexp(s * 127.5, -f_in)
    beta = (b * 127.5) + 127.5
    return np.rint(np.clip(_affine(acc, alpha, beta), 0, 255)).astype(np.uint8)


def _coord(i: np.ndarray, n: int) -> np.ndarray:
    return ((2 * i + 1 - n) * 2**21 + n) // (2 * n)


def _siren_frame(r: SirenArch, h: StreamHeader, ts: list, k: int) -> np.ndarray:
    rows, cols = np.divmod(np.arange(h.height * h.width), h.width)
    x = [_coord(rows, h.height), _coord(cols, h.width)]
    if r.in_features == 3:
        x.insert(0, np.full(rows.shape, _coord(np.int64(k), h.frames)))
    x = np.stack(x).astype(np.int64)
    f_in = 20
    for l in range(r.depth):
        (q, s), (qb, sb) = ts[2 * l], ts[2 * l + 1]
        x = _layer("sine", q @ x, s, qb * sb, f_in, r.w0_first if l == 0 else r.w0_hidden)
        f_in = 15
    (q, s), (qb, sb) = ts[-2], ts[-1]
    return _layer("out8", q @ x, s, qb * sb, 15).T.reshape(h.height, h.width, 3)


def _conv(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Direct zero-padded cross-correlation with int64 accumulation (no im2col, no GEMM)."""
    c, hh, ww = x.shape
    o, _, k, _ = q.shape
    p = k // 2
    xp = np.zeros((c, hh + 2 * p, ww + 2 * p), np.int64)
    xp[:, p:p + hh, p:p + ww] = x
    acc = np.zeros((o, hh, ww), np.int64)
    for dy in range(k):
        for dx in range(k):
            acc += np.einsum("oc,cyx->oyx", q[:, :, dy, dx], xp[:, dy:dy + hh, dx:dx + ww])
    return acc.reshape(o, -1)


def _nerv_frame(r: NervArch, h: StreamHeader, ts: list, k: int) -> np.ndarray:
    b = Fraction(r.pe_b)
    e = []
    for i in range(r.pe_l):
        n = math.floor(b**i * k * 2**16 / (2 * h.frames)) % 2**16
        e += [SIN[n], SIN[(n + 2**14) % 2**16]]
    x = np.array(e, np.int64).reshape(-1, 1)
    (q, s), (qb, sb) = ts[0], ts[1]
    x = _layer("gelu", q @ x, s, qb * sb, 15)
    (q, s), (qb, sb) = ts[2], ts[3]
    x = _layer("gelu", q @ x, s, qb * sb, 11).reshape(r.c1, r.h0, r.w0)
    for i, (f, c) in enumerate(r.blocks):
        (q, s), (qb, sb) = ts[4 + 2 * i], ts[5 + 2 * i]
        hh, ww = x.shape[1:]
        y = _layer("gelu", _conv(x, q), s, qb * sb, 11).reshape(c, f, f, hh, ww)
        x = y.transpose(0, 3, 1, 4, 2).reshape(c, hh * f, ww * f)      # pixel shuffle
    (q, s), (qb, sb) = ts[-2], ts[-1]
    hh, ww = x.shape[1:]
    y = _layer("out8", _conv(x, q), s, qb * sb, 11).reshape(3, hh, ww)
    return y[:, :h.height, :h.width].transpose(1, 2, 0)


def _grid_shapes(r) -> list[tuple[int, ...]]:
    shapes = [(-(-r.height // 2**l), -(-r.width // 2**l)) for l in range(r.levels)]
    if hasattr(r, "frames"):                      # arch 3 (section 6.8, video grids): ceil(T/2^l) planes
        shapes = [(-(-r.frames // 2**l), a, b) for l, (a, b) in enumerate(shapes)]
    dims = [r.levels, r.hidden1] + ([r.hidden2] if r.hidden2 else []) + [3]
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(b, a), (b,)]
    if r.head_kernel > 1:
        shapes[-2] = (3, dims[-2], r.head_kernel, r.head_kernel)
    return shapes


def _grid_up(q: np.ndarray, f: int, n: int) -> np.ndarray:
    """Section 6.8: rows of the bilinear x f upsampling, in units of 1/(2f) (one loop per output row)."""
    rows = []
    for i in range(n):
        m = max(0, 2 * i + 1 - f)
        i0, rr = divmod(m, 2 * f)
        i1 = min(i0 + 1, q.shape[0] - 1)
        rows.append((2 * f - rr) * q[i0] + rr * q[i1])
    return np.stack(rows)


def _grid_frame(r, h: StreamHeader, ts: list, k: int) -> np.ndarray:
    L = r.levels
    axes = 3 if h.arch == 3 else 2                # fractional bits per level: one per upsampled axis
    x, lat = [], []
    for l in range(L):
        q, s = ts[l]
        assert s == 1.0 or not q.any(), "latent step must be 1.0"
        q = q.astype(np.int64)
        if h.arch == 3 and (r.tdelta >> l) & 1:   # stored as plane 0, then differences along time
            for j in range(1, q.shape[0]):
                q[j] += q[j - 1]
        assert int(np.abs(q).max(initial=0)) <= 2**15, "latent symbol out of range"
        lat.append(q)
        if h.arch == 3:                           # frame k's plane: the row rule along the planes
            q = _grid_up(q, 2**l, k + 1)[k]
        u = _grid_up(_grid_up(q, 2**l, h.height).T, 2**l, h.width).T
        x.append((u * 2 ** (axes * (L - 1 - l))).reshape(-1))
    x = np.stack(x)                               # (L, H*W), axes * L fractional bits
    top = max(int(np.abs(q).max(initial=0)) for q in lat)
    f_in, x_max = axes * L, max(1, top) * 2 ** (axes * L)
    n_hidden = 2 if r.hidden2 else 1
    for i in range(n_hidden):
        (q, s), (qb, sb) = ts[L + 2 * i], ts[L + 2 * i + 1]
        assert int(np.abs(q).sum(axis=1).max()) * x_max < 2**53, "accumulator bound"
        x = _layer("gelu", q @ x, s, qb * sb, f_in)
        f_in, x_max = 11, int(np.abs(GELU).max())
    (q, s), (qb, sb) = ts[-2], ts[-1]
    assert int(np.abs(q).reshape(3, -1).sum(axis=1).max()) * x_max < 2**53, "accumulator bound"
    if r.head_kernel > 1:                         # zero-padded k x k convolution of the hidden maps
        acc = _conv(x.reshape(-1, h.height, h.width), q)
    else:
        acc = q @ x
    return _layer("out8", acc, s, qb * sb, f_in).T.reshape(h.height, h.width, 3)


def reference_frames(data: bytes, frames: list[int] | None = None, level: int | None = None,
                     prior: PriorSource | Sequence[PriorSource] | None = None) -> np.ndarray:
    """Decode frames (all by default) of a format 2.x stream: (n, H, W, 3) uint8.

    A width-chunks stream (NHDR.layout = 1) decodes ``level`` (1-based; default: the last, K) and
    returns that level's extent (section 4b): every frame (spectral), columns ``[0, cover_k)``
    of every frame, (n, H, cover_k, 3) (spatial), or frames ``[0, cover_k)`` by default
    (temporal).  ``level`` is only for width-chunks streams.

    A stream with a PRIR chunk (section 4c) needs ``prior``: the prior file's bytes, a path, a
    directory (its ``*.nfp`` files), or a list of these; the first whose SHA-256 is the digest is
    used, and it must be a valid prior file (docs/priors.md) of the stream's architecture.
    """
    chunks = read_container(data).chunks
    h = StreamHeader.unpack(next(c for c in chunks if c.ctype == b"NHDR").data)
    arch_payload = next(c for c in chunks if c.ctype == b"ARCH").data
    r = unpack_arch(h.arch, arch_payload)
    shapes = _siren_shapes(r) if h.arch == 0 else _nerv_shapes(r) if h.arch == 1 else _grid_shapes(r)
    # rule 7: TILE is read by layout tiles only; PRIR by layouts single and tiles, dense and pruned
    if h.layout != 2 and any(c.ctype == b"TILE" for c in chunks):
        raise ValueError(f"a TILE chunk in a stream of layout {h.layout}")
    prirs = [c.data for c in chunks if c.ctype == b"PRIR"]
    prior_tensors = None
    if prirs:
        if len(prirs) != 1 or len(prirs[0]) != 32:
            raise ValueError("PRIR: one 32-byte chunk expected")
        if h.layout not in (0, 2) or h.representation not in (0, 1):
            raise ValueError(f"PRIR in a stream of layout {h.layout}, representation {h.representation}")
        prior_tensors = _read_prior(_find_prior(prirs[0], prior), h, r, arch_payload, shapes)
    inverse = _xfrm_inverse(chunks)
    if h.layout == 1:
        return _widthchunks_frames(chunks, h, r, frames, level, inverse)
    assert level is None, "level is for width-chunks streams only"
    if h.layout == 2:
        return inverse(_tiles_frames(chunks, h, r, frames, prior_tensors))
    render = {0: _siren_frame, 1: _nerv_frame, 2: _grid_frame, 3: _grid_frame}[h.arch]
    if prior_tensors is not None:
        tdat = _one(chunks, b"TDAT")
        mask = _one(chunks, b"MASK") if h.representation == 1 else None
        ts = [(q, step(i)) for q, i in _add_prior(prior_tensors, _coded(tdat, mask, shapes))]
        if h.arch == 0:
            _siren_bounds(r, ts, "network")
    else:
        ts = _tensors(data, h, r, shapes)
    ks = range(h.frames) if frames is None else frames
    return inverse(np.stack([render(r, h, ts, k) for k in ks]))
