"""An independent implementation of docs/format.md section 6, written from the text alone.

It shares nothing with ``nfcodec.exact`` or ``nfcodec.archs``: it reads the container and the
entropy-coded tensors with ``nfcodec.bitstream`` (sections 1 to 5, already normative and
tested) and then does every step of section 6 itself, with Python integers, int64 dot products
and binary64 scalar/elementwise operations.  It is slow (tiny files only) and exists to prove
that the specification is complete: the tests require its bytes to equal both backends'.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from nfcodec.bitstream import (NervArch, SirenArch, StreamHeader, decode_masks, decode_tensors, read_container,
                               unpack_arch)

TURN = float.fromhex("0x1.45f306dc9c883p-3")
M = 1.5 * 2.0**52


def step(i: int) -> float:                       # section 5
    return math.ldexp(16 - i % 8, -(i // 8) - 4)


def _rhe(x: float) -> int:
    return int(round(x))                          # Python's round is half to even


SIN = np.array([_rhe(2**15 * math.sin(2 * math.pi * k / 2**16)) for k in range(2**16)], dtype=np.int64)
GELU = np.array([_rhe(2**11 * (z := (j - 2**16) / 2**11) * (1 + math.erf(z / math.sqrt(2))) / 2)
                 for j in range(2**17)], dtype=np.int64)


def _tensors(data: bytes, shapes: list[tuple[int, ...]], representation: int) -> list[tuple[np.ndarray, float]]:
    chunks = read_container(data).chunks
    tdat = next(c for c in chunks if c.ctype == b"TDAT")
    masks = {}
    if representation == 1:
        for m in decode_masks(next(c for c in chunks if c.ctype == b"MASK").data):
            masks[m.index] = m.flat
    out = []
    for t, shape in zip(decode_tensors(tdat.data), shapes):
        q = np.asarray(t.symbols, dtype=np.int64)
        if t.index in masks:
            full = np.zeros(masks[t.index].size, np.int64)
            full[masks[t.index]] = q
            q = full
        out.append((q.reshape(shape), step(t.step)))
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


def reference_frames(data: bytes, frames: list[int] | None = None) -> np.ndarray:
    """Decode frames (all by default) of a format 2.x stream: (n, H, W, 3) uint8."""
    chunks = read_container(data).chunks
    h = StreamHeader.unpack(next(c for c in chunks if c.ctype == b"NHDR").data)
    r = unpack_arch(h.arch, next(c for c in chunks if c.ctype == b"ARCH").data)
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
    ts = _tensors(data, shapes, h.representation)
    ks = range(h.frames) if frames is None else frames
    return np.stack([render(r, h, ts, k) for k in ks])
