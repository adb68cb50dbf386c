"""Frozen random weights from a seed (format 2.1, ``docs/format.md`` section 6.7; no torch, no libm).

The supermask representation never stores weights: the decoder regenerates them.  Everything
here is integer arithmetic on the raw output of one counter-based generator, so every machine,
numpy and torch version and device gets the same integers:

* **Generator** (``SEED.rng = 0``): Philox4x64-10 (Salmon et al., Random123 constants).  Tensor
  ``i`` of a stream with seed ``s`` uses the 128-bit key ``(s, i)`` (key word 0 = ``s``, word 1 =
  ``i``) and blocks at counters ``1, 2, 3, ...`` (the counter is incremented *before* each block:
  numpy's ``Philox.random_raw`` convention).  Each block yields four 64-bit words, used in order.
  :func:`raw` uses numpy's ``Philox`` bit generator, whose raw stream numpy guarantees;
  :func:`raw_reference` is a pure-Python implementation the tests compare it with.
* **Samples**: one 64-bit word ``u`` per element, C order:

  - ``normal``: ``Z = NORMAL[u >> 48]``, a 2^16-entry inverse-CDF table,
    ``NORMAL[i] = rhe(2^8 * Phi^-1((2i + 1) / 2^17))`` (|Z| <= 1107, about 4.32 sigma); the
    sample is ``Z / 2^8`` standard deviations;
  - ``uniform``: ``Z = 2 * (u >> 56) - 255``: the 256 odd integers in [-255, 255], the sample is
    ``Z / 2^8`` of the bound (a symmetric discrete U(-1, 1)).

* **Scale**: a tensor drawn with standard deviation (normal) or bound (uniform) ``sigma`` gets
  the quantization step ``STEP_TABLE[k]`` nearest to ``sigma / 2^8`` in log scale, chosen with
  exact rational arithmetic from ``sigma^2`` (a rational: :class:`Law`).  Its values are
  ``Z * STEP_TABLE[k]``: the target law to within half a table step (<= 6.1% in scale: adjacent table steps differ by up to 9/8).

The table is built from binary64 estimates with a 60-digit decimal check near rounding
boundaries (as the activation tables) and pinned by SHA-256 in the tests.
"""
from __future__ import annotations

import decimal
import functools
import statistics
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..quant import N_STEPS, STEP_TABLE
from .tables import _MARGIN, _PI

__all__ = ["RNG_PHILOX", "NORMAL_BITS", "SAMPLE_FRAC", "Law", "raw", "raw_reference", "normal_table",
           "sample_symbols", "law_step", "MAX_SAMPLE"]

#: ``SEED.rng`` of Philox4x64-10.
RNG_PHILOX = 0
#: The normal table has 2**NORMAL_BITS entries (indexed by the top bits of a word).
NORMAL_BITS = 16
#: Samples carry SAMPLE_FRAC fractional bits of their law's scale.
SAMPLE_FRAC = 8
#: Largest |Z| of any law (normal: 1107; uniform: 255).
MAX_SAMPLE = 1107

_M64 = (1 << 64) - 1
_PHILOX_M = (0xD2E7470EE14C6C93, 0xCA5A826395121157)
_PHILOX_W = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)


@dataclass(frozen=True)
class Law:
    """How one frozen tensor is drawn: ``kind`` (``normal`` or ``uniform``) and ``scale2``, the
    exact square of its standard deviation (normal) or bound (uniform)."""

    kind: str
    scale2: Fraction

    def __post_init__(self) -> None:
        if self.kind not in ("normal", "uniform") or not self.scale2 > 0:
            raise ValueError(f"bad law {self.kind!r} with scale^2 {self.scale2}")


def raw(seed: int, index: int, n: int) -> np.ndarray:
    """The first ``n`` 64-bit words (uint64) of tensor ``index``'s stream under ``seed``."""
    if not (0 <= seed <= _M64 and 0 <= index <= _M64):
        raise ValueError(f"seed {seed} / tensor index {index} outside [0, 2**64)")
    gen = np.random.Philox(key=seed | (index << 64), counter=0)
    return gen.random_raw(n).astype(np.uint64, copy=False)


def _philox_block(counter: int, key: tuple[int, int]) -> list[int]:
    c = [(counter >> (64 * j)) & _M64 for j in range(4)]
    k0, k1 = key
    for _ in range(10):
        p0, p1 = _PHILOX_M[0] * c[0], _PHILOX_M[1] * c[2]
        c = [((p1 >> 64) ^ c[1] ^ k0) & _M64, p1 & _M64, ((p0 >> 64) ^ c[3] ^ k1) & _M64, p0 & _M64]
        k0, k1 = (k0 + _PHILOX_W[0]) & _M64, (k1 + _PHILOX_W[1]) & _M64
    return c


def raw_reference(seed: int, index: int, n: int) -> list[int]:
    """Pure-Python Philox4x64-10 words of tensor ``index`` (the specification of :func:`raw`)."""
    out: list[int] = []
    block = 0
    while len(out) < n:
        block += 1
        out += _philox_block(block, (seed, index))
    return out[:n]


def _phi_exact(x: Fraction) -> decimal.Decimal:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 to ~60 digits (|x| <= 5)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 90
        z = decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator) / decimal.Decimal(2).sqrt()
        term, total, n = z, z, 0
        while abs(term) > decimal.Decimal(10) ** -75:
            n += 1
            term = -term * z * z / n
            total += term / (2 * n + 1)
        return +((1 + 2 / _PI.sqrt() * total) / 2)


@functools.lru_cache(maxsize=None)
def normal_table() -> np.ndarray:
    """``NORMAL`` as a read-only (2**16,) int64 array (see the module docstring)."""
    size = 1 << NORMAL_BITS
    dist = statistics.NormalDist()
    est = np.array([dist.inv_cdf((2 * i + 1) / (2 * size)) for i in range(size)]) * (1 << SAMPLE_FRAC)
    out = np.rint(est).astype(np.int64)
    near = np.abs(est - np.floor(est) - 0.5) < _MARGIN
    for i in np.flatnonzero(near):
        # the boundary h = floor(est) + 1/2 (in units of 2^-8 sigma): the value is below h iff
        # Phi(h / 2^8) > p, decided in 60-digit arithmetic
        h = Fraction(2 * int(np.floor(est[i])) + 1, 2 << SAMPLE_FRAC)
        p = decimal.Decimal(2 * int(i) + 1) / decimal.Decimal(2 * size)
        out[i] = int(np.floor(est[i])) + (0 if _phi_exact(h) > p else 1)
    out.flags.writeable = False
    return out


def law_step(law: Law) -> int:
    """The step index nearest (log scale) to ``sigma / 2^8``; ties go to the lower index."""
    target2 = law.scale2 / (1 << (2 * SAMPLE_FRAC))
    best, best_key = 0, None
    for k in range(N_STEPS):
        s2 = Fraction(STEP_TABLE[k]) ** 2
        key = max(s2 / target2, target2 / s2)        # exp(2 |log(step / target)|), exact
        if best_key is None or key < best_key:
            best, best_key = k, key
    return best


def sample_symbols(seed: int, index: int, law: Law, n: int) -> np.ndarray:
    """``n`` integer samples ``Z`` (int64) of tensor ``index`` under ``law`` (values ``Z * step``)."""
    u = raw(seed, index, n)
    if law.kind == "normal":
        return normal_table()[(u >> np.uint64(64 - NORMAL_BITS)).astype(np.int64)]
    return 2 * (u >> np.uint64(56)).astype(np.int64) - 255
