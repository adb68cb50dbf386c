"""The ``arm`` entropy model (wire id 7, format 2.7): latent planes coded with a small integer
network over twelve decoded neighbours (Cool-chic's "ARM", in exact integer arithmetic).

Every symbol ``s`` of a plane is coded after twelve causal neighbours (one outside the plane
counts as 0), in the wavefront order of ``causal`` (``t = x + 2y``; every neighbour below lies
on an earlier wavefront)::

        NNWW NNW NN NNE NNEE        x = clamp(n, -4096, 4096)       (12 ints, in ARM_NEIGHBOURS order)
         NWW NW  N  NE              a1 = W1 x + b1                  (H ints, scale 2**F)
    WWW  WW  W   s                  h1 = clamp(a1, 0, 2**(F+8))
                                    a2 = W2 h1 + (b2 << F)          (scale 2**2F)
                                    h2 = clamp(a2 >> F, 0, 2**(F+8))
                                    o  = W3 h2 + (b3 << F)          (2 ints, scale 2**2F)
                                    m  = (o_0 + 2**(2F-3)) >> (2F-2)  (the mean, in quarters)
                                    mu = m >> 2,  phi = m & 3,  r = s - mu
                                    bin = clamp((o_1 >> (2F-2)) + off, 0, B-1)

``o_1`` is the network's log2 of the Laplace scale; ``bin`` keeps it to the quarter octave, and
the residual is coded under row ``4 bin + phi`` of the ``causal4`` tables
(:func:`~.causal.quarter_laplace_counts`, one ``j`` per bin, fitted by the encoder).  ``>>`` is
the floor shift; all values are int64 and bounded (``|x| <= 2**12``, ``|w| < 2**15``, ``H <= 32``:
``|a1| < 2**31``, ``|a2|, |o| < 2**45``), so every machine computes the same bins.

The network (``W1``: H x 12, ``b1``: H, ``W2``: H x H, ``b2``: H, ``W3``: 2 x H, ``b3``: 2) is
carried by the first ``arm`` record of a tensor payload that needs it ("inline") and reused by
later ``arm`` records of the same payload ("inherited"): a grid file pays for one network for
all its levels.

Wire (after the common record head)::

    uvarint c, uvarint h, uvarint w    planes; c * h * w MUST equal n (as causal)
    u8 net                             1: a network follows; 0: the last inline one of this payload
    [u8 H, u8 F,                       1 <= H <= 32, 2 <= F <= 15
     (16 H + H*H + 2) x svarint        W1 b1 W2 b2 W3 b3 in that order, row-major, each |v| < 2**15]
    svarint lo_r, uvarint K_r          residual range, 1 <= K_r <= CAUSAL_MAX_ALPHABET
    u8 off, u8 B, B x u16 j_b          1 <= B <= 32, j in [1, 16383]

The words are coded as for ``causal4``: one ``AnsCoder``, the wavefronts in pieces, each symbol
``r - lo_r`` under its table row.  Every decoded ``mu + r`` MUST lie in int32.  Why the model
exists and what it buys: docs/grid.md ("The entropy model").
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple, Optional

import numpy as np

from .causal import (
    CAUSAL_MAX_ALPHABET,
    CAUSAL_MAX_WAVEFRONTS,
    Causal4Model,
    _flat_index,
    _offsets,
    _padded,
    _QuarterCosts,
)
from .entropy import _I32, _planes_shape, _register, _span
from .errors import FormatError
from .fields import ByteReader, write_uvarint, zigzag

__all__ = ["ArmNet", "ArmParams", "ArmModel", "arm_context", "ARM_NEIGHBOURS", "ARM_MAX_HIDDEN", "ARM_MAX_BINS"]

#: (dy, dx) of the twelve inputs, in wire order.
ARM_NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0),
                  (-1, -2), (-2, -1), (-2, 1), (0, -3), (-2, -2), (-2, 2))
ARM_INPUTS = len(ARM_NEIGHBOURS)
ARM_MAX_HIDDEN = 32
ARM_MAX_BINS = 32
#: Inputs are clamped to [-ARM_CLAMP, ARM_CLAMP]; hidden values to [0, 2**(F + ARM_HIDDEN_BITS)].
ARM_CLAMP, ARM_HIDDEN_BITS = 4096, 8
ARM_F_RANGE = (2, 15)
_WMAX = 2**15
_PAD = 3


class ArmNet(NamedTuple):
    """The integer network: ``F`` fractional bits, int64 arrays ``w1`` (H, 12), ``b1`` (H),
    ``w2`` (H, H), ``b2`` (H), ``w3`` (2, H), ``b3`` (2)."""

    F: int
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray

    @property
    def hidden(self) -> int:
        return int(self.w1.shape[0])

    def values(self) -> np.ndarray:
        return np.concatenate([a.reshape(-1) for a in (self.w1, self.b1, self.w2, self.b2, self.w3, self.b3)])

    @classmethod
    def from_values(cls, F: int, H: int, v) -> "ArmNet":
        """The network from its wire values (``16 H + H*H + 2`` ints, wire order); checks ranges."""
        v = np.asarray(v, dtype=np.int64).reshape(-1)
        if not ARM_F_RANGE[0] <= F <= ARM_F_RANGE[1] or not 1 <= H <= ARM_MAX_HIDDEN:
            raise ValueError(f"arm network F={F} H={H} outside [{ARM_F_RANGE[0]}, {ARM_F_RANGE[1]}] x [1, {ARM_MAX_HIDDEN}]")
        if v.size != _n_values(H) or (v.size and np.abs(v).max() >= _WMAX):
            raise ValueError(f"arm network needs {_n_values(H)} values in (-2**15, 2**15), got {v.size}")
        sizes = (H * ARM_INPUTS, H, H * H, H, 2 * H, 2)
        parts = np.split(v, np.cumsum(sizes)[:-1])
        return cls(int(F), parts[0].reshape(H, ARM_INPUTS), parts[1], parts[2].reshape(H, H), parts[3],
                   parts[4].reshape(2, H), parts[5])


def _n_values(H: int) -> int:
    return (ARM_INPUTS + 4) * H + H * H + 2


class ArmParams(NamedTuple):
    c: int
    h: int
    w: int
    net: ArmNet
    inline: bool  # the record carries the network (else it reuses the payload's last one)
    lo_r: int
    size_r: int
    off: int
    js: tuple  # one j per bin (B = len(js))


def _outputs(x: np.ndarray, net: ArmNet) -> tuple[np.ndarray, np.ndarray]:
    """``(o_0, o_1)`` for ``(m, 12)`` int64 neighbours (module doc; int64 throughout)."""
    F, top = net.F, 1 << (net.F + ARM_HIDDEN_BITS)
    x = np.clip(x, -ARM_CLAMP, ARM_CLAMP)
    h1 = np.clip(x @ net.w1.T + net.b1, 0, top)
    h2 = np.clip((h1 @ net.w2.T + (net.b2 << F)) >> F, 0, top)
    o = h2 @ net.w3.T + (net.b3 << F)
    return o[:, 0], o[:, 1]


def _context_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, net: ArmNet
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, phi, q)`` at flat positions: ``q = o_1 >> (2F - 2)`` is the bin before ``off``."""
    o0, o1 = _outputs(flat[at[:, None] + offsets[None, :]], net)
    s = 2 * net.F - 2
    m = (o0 + (1 << (s - 1))) >> s
    return m >> 2, m & 3, o1 >> s


def arm_context(planes: np.ndarray, net: ArmNet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, phi, q)`` of every position of ``(c, h, w)`` int planes, exactly as coder and decoder
    compute them (``bin = clamp(q + off, 0, B - 1)``); three int64 ``(c, h, w)`` arrays."""
    planes = np.asarray(planes)
    if planes.ndim != 3:
        raise ValueError(f"arm_context needs (c, h, w) planes, got shape {planes.shape}")
    c, h, w = planes.shape
    flat = _padded(planes.astype(np.int64), _PAD).reshape(-1)
    at = _flat_index(c, h, w, _PAD).reshape(-1)
    return tuple(v.reshape(c, h, w) for v in _context_at(flat, at, _offsets(w, ARM_NEIGHBOURS, _PAD), net))


def _write_net(net: ArmNet) -> bytes:
    return bytes((net.hidden, net.F)) + b"".join(write_uvarint(zigzag(int(v))) for v in net.values())


@_register
class ArmModel(Causal4Model):
    """Planes coded with an integer context network (see the module doc).  The encoder supplies
    the network (``encode_tensors(..., hints={"arm": net})``); without one :meth:`fit` returns
    None, so the model is never chosen.  Decoding order, pieces and words are ``causal``'s
    (inherited); the context and the params are this model's."""

    wire_id, name = 7, "arm"
    hinted = True
    neighbours, pad = ARM_NEIGHBOURS, _PAD

    def fit(self, symbols: np.ndarray, shape: tuple = (), hint: Optional[ArmNet] = None) -> Optional[ArmParams]:
        dims = _planes_shape(tuple(shape), symbols.size)
        if hint is None or dims is None or (dims[2] - 1) + 2 * (dims[1] - 1) + 1 > CAUSAL_MAX_WAVEFRONTS:
            return None
        planes = symbols.astype(np.int64).reshape(dims)
        mu, phi, q = arm_context(planes, hint)
        residuals = (planes - mu).reshape(-1)
        lo_r, size_r = _span(residuals)
        if size_r > CAUSAL_MAX_ALPHABET or lo_r < _I32.min or lo_r + size_r - 1 > _I32.max:
            return None
        q = q.reshape(-1)
        q_lo, q_hi = int(q.min()), int(q.max())
        off = min(max(-q_lo, 0), 255)
        n_bins = min(ARM_MAX_BINS, max(1, q_hi + off + 1))
        bins = np.clip(q + off, 0, n_bins - 1)
        key = (bins * 4 + phi.reshape(-1)) * size_r + (residuals - lo_r)
        hists = np.bincount(key, minlength=n_bins * 4 * size_r).reshape(n_bins, 4, size_r)
        costs = _QuarterCosts(lo_r, size_r)
        js = tuple(costs.best(hists[b])[0] for b in range(n_bins))
        return ArmParams(*dims, hint, True, lo_r, size_r, off, js)

    @staticmethod
    def reused(params: ArmParams) -> ArmParams:
        """The same record reusing the payload's network (``net = 0``) instead of carrying it."""
        return params._replace(inline=False)

    def write_params(self, params: ArmParams) -> bytes:
        p = params
        return b"".join([
            write_uvarint(p.c), write_uvarint(p.h), write_uvarint(p.w), bytes((int(p.inline),)),
            _write_net(p.net) if p.inline else b"",
            write_uvarint(zigzag(p.lo_r)), write_uvarint(p.size_r), bytes((p.off, len(p.js))),
            struct.pack(f"<{len(p.js)}H", *p.js),
        ])

    def read_params(self, reader: ByteReader, n: int) -> ArmParams:
        name = self.name
        c, h, w = self._read_planes(reader, n)
        flag = reader.u8("net")
        if flag > 1:
            raise FormatError(f"{reader.context} {name} net={flag}, must be 0 or 1")
        if flag:
            H, F = reader.u8("H"), reader.u8("F")
            if not 1 <= H <= ARM_MAX_HIDDEN or not ARM_F_RANGE[0] <= F <= ARM_F_RANGE[1]:
                raise FormatError(f"{reader.context} {name} H={H} F={F}: H must be in [1, {ARM_MAX_HIDDEN}], "
                                  f"F in [{ARM_F_RANGE[0]}, {ARM_F_RANGE[1]}]")
            values = []
            for i in range(_n_values(H)):
                v = reader.svarint(f"weight {i}")
                if not -_WMAX < v < _WMAX:
                    raise FormatError(f"{reader.context} {name} weight {i}={v} outside (-2**15, 2**15)")
                values.append(v)
            net = ArmNet.from_values(F, H, values)
            reader.shared["arm"] = net
        else:
            net = reader.shared.get("arm")
            if net is None:
                raise FormatError(f"{reader.context} {name} reuses a network, but no earlier arm record of the "
                                  f"payload carries one")
        lo_r, size_r = self._read_residual_range(reader)
        off = reader.u8("off")
        js = self._read_js(reader, reader.u8("B"), ARM_MAX_BINS)
        return ArmParams(c, h, w, net, bool(flag), lo_r, size_r, off, js)

    def probabilities(self, params: ArmParams) -> tuple[int, np.ndarray]:
        raise NotImplementedError("the arm model has a table per position; use encode_words/decode_symbols")

    @staticmethod
    def _rows_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray]:
        mu, phi, q = _context_at(flat, at, offsets, p.net)
        return mu, 4 * np.clip(q + p.off, 0, len(p.js) - 1) + phi
