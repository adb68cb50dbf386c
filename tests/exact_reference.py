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
the structural zeros, and crops the level's output.  It is slow (tiny files
only) and exists to prove that the specification is complete: the tests require its bytes to
equal both backends'.
"""
from __future__ import annotations

import functools
import hashlib
import math
import statistics
from fractions import Fraction

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
            assert c.ctype in (b"NHDR", b"ARCH", b"GROW"), f"critical {c.ctype!r} before the first SEGM"
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


def _widthchunks_frames(chunks, h: StreamHeader, r, frames: list[int] | None, level: int | None) -> np.ndarray:
    assert h.arch == 0, "only SIREN grows (section 4b)"
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
    segs = _segments(chunks, h, g)
    level = g.levels if level is None else level
    assert 1 <= level <= g.levels, level
    ts = _level_tensors(h, r, g, segs, level)
    cover = g.covers[level - 1]
    if frames is None:
        frames = range(cover if g.growing == 2 else h.frames)
    if g.growing == 2:
        assert all(0 <= k < cover for k in frames), (list(frames), cover)
    out = np.stack([_siren_frame(r, h, ts, k) for k in frames])
    if g.growing == 1:
        out = np.ascontiguousarray(out[:, :, :cover])
    return out


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


def reference_frames(data: bytes, frames: list[int] | None = None, level: int | None = None) -> np.ndarray:
    """Decode frames (all by default) of a format 2.x stream: (n, H, W, 3) uint8.

    A width-chunks stream (NHDR.layout = 1) decodes ``level`` (1-based; default: the last, K) and
    returns that level's extent (section 4b): every frame (spectral), columns ``[0, cover_k)``
    of every frame, (n, H, cover_k, 3) (spatial), or frames ``[0, cover_k)`` by default
    (temporal).  ``level`` is only for width-chunks streams.
    """
    chunks = read_container(data).chunks
    h = StreamHeader.unpack(next(c for c in chunks if c.ctype == b"NHDR").data)
    r = unpack_arch(h.arch, next(c for c in chunks if c.ctype == b"ARCH").data)
    if h.layout == 1:
        return _widthchunks_frames(chunks, h, r, frames, level)
    assert level is None, "level is for width-chunks streams only"
    if h.arch == 0:
        dims = [r.in_features] + [r.width] * r.depth
        shapes = [s for a, o in zip(dims[:-1], dims[1:]) for s in ((o, a), (o,))] + [(3, r.width), (3,)]
        render = _siren_frame
    else:
        shapes = [(r.mlp_hidden, 2 * r.pe_l), (r.mlp_hidden,), (r.c1 * r.h0 * r.w0, r.mlp_hidden),
                  (r.c1 * r.h0 * r.w0,)]
        cin = r.c1
        for f, c in r.blocks:
            shapes += [(c * f * f, cin, r.kernel, r.kernel), (c * f * f,)]
            cin = c
        shapes += [(3, cin, r.head_kernel, r.head_kernel), (3,)]
        render = _nerv_frame
    ts = _tensors(data, h, r, shapes)
    ks = range(h.frames) if frames is None else frames
    return np.stack([render(r, h, ts, k) for k in ks])
