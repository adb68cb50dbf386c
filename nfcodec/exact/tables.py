"""The constants and pinned tables of the exact decoding arithmetic (format 2.0, no torch).

Two activation tables are part of the file format:

* :func:`sine_table` -- ``SIN[k] = rhe(2^SIN_FRAC * sin(2 pi k / SIN_SIZE))`` for
  ``k = 0 .. SIN_SIZE - 1``: the sine of phase ``k / SIN_SIZE`` turns, in fixed point.
* :func:`gelu_table` -- ``GELU[j] = rhe(2^GELU_FRAC * gelu((j - GELU_HALF) / 2^GELU_IN_FRAC))`` for
  ``j = 0 .. 2 * GELU_HALF - 1``, ``gelu(z) = z * (1 + erf(z / sqrt 2)) / 2``.

``rhe`` rounds the *exact real value* to the nearest integer (ties cannot occur except at 0).
Each entry is a function of its index alone, so every implementation must produce the same
integers.  They are computed here in binary64 (``math.sin``/``math.erf`` may differ by an ulp
between math libraries); any value closer than :data:`_MARGIN` to a rounding boundary is
recomputed with 60-digit decimal arithmetic, so the table does not depend on the platform's
libm.  ``tests/test_exact_tables.py`` pins the SHA-256 of both tables (golden vectors).
"""
from __future__ import annotations

import decimal
import functools
import hashlib
import math
from typing import Callable

import numpy as np

__all__ = ["SIN_BITS", "SIN_SIZE", "SIN_FRAC", "COORD_FRAC", "GELU_IN_FRAC", "GELU_FRAC", "GELU_RANGE_BITS",
           "GELU_HALF", "TURN", "ROUND_MAGIC", "MAX_INDEX", "sine_table", "gelu_table", "sine_table_f64",
           "gelu_table_f64", "gelu_table_f32", "table_digest"]

#: The sine table has 2**SIN_BITS entries over one turn.
SIN_BITS = 16
SIN_SIZE = 1 << SIN_BITS
#: Sine outputs (and NeRV positional encodings) carry SIN_FRAC fractional bits: |X| <= 2**15.
SIN_FRAC = 15
#: SIREN input coordinates carry COORD_FRAC fractional bits: |X| <= 2**20.
COORD_FRAC = 20
#: NeRV pre-activations are rounded to GELU_IN_FRAC fractional bits ...
GELU_IN_FRAC = 11
#: ... and clamped to [-2**GELU_RANGE_BITS, 2**GELU_RANGE_BITS); outputs carry GELU_FRAC bits.
GELU_RANGE_BITS = 5
GELU_FRAC = 11
GELU_HALF = 1 << (GELU_RANGE_BITS + GELU_IN_FRAC)
#: fl(1 / (2 pi)) in binary64 = 0x1.45f306dc9c883p-3: turns per radian.
TURN = float.fromhex("0x1.45f306dc9c883p-3")
#: 1.5 * 2**52: a binary64 sum ``x + ROUND_MAGIC`` with |x| < 2**51 is ``ROUND_MAGIC + rne(x)``, an
#: integer whose low significand bits are ``rne(x)`` modulo a power of two (the table index).
ROUND_MAGIC = 1.5 * 2.0**52
#: Sine layers whose phase could reach 2**50 bins are refused (the index trick needs < 2**51).
MAX_INDEX = 2.0**50

assert TURN == 1 / (2 * math.pi)

# A value whose binary64 estimate lies closer than this to a rounding boundary is recomputed
# exactly.  The binary64 estimates are within ~1e-10 of the true value (|value| < 2**16).
_MARGIN = 1e-6
_PI = decimal.Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


def _rhe_checked(estimates: np.ndarray, exact: Callable[[int], decimal.Decimal]) -> np.ndarray:
    """Round binary64 estimates to integers; recompute those near a .5 boundary with ``exact``."""
    out = np.rint(estimates).astype(np.int64)
    frac = np.abs(estimates - np.floor(estimates) - 0.5)
    for i in np.flatnonzero(frac < _MARGIN):
        value = exact(int(i))
        out[i] = int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    return out


def _sin_exact(k: int) -> decimal.Decimal:
    """2**SIN_FRAC * sin(2 pi k / SIN_SIZE) to ~60 digits (Taylor series after reduction)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 70
        x = 2 * _PI * (decimal.Decimal(k) / SIN_SIZE)                  # in [0, 2 pi)
        if x > _PI:
            x -= 2 * _PI                                              # in (-pi, pi]
        term, total, n = x, x, 1
        while abs(term) > decimal.Decimal(10) ** -65:
            term = -term * x * x / ((n + 1) * (n + 2))
            total += term
            n += 2
        return +(total * (1 << SIN_FRAC))


def _gelu_exact(j: int) -> decimal.Decimal:
    """2**GELU_FRAC * gelu(z), z = (j - GELU_HALF) / 2**GELU_IN_FRAC, to ~60 digits (|z| <= 8 only)."""
    z = decimal.Decimal(j - GELU_HALF) / (1 << GELU_IN_FRAC)
    if abs(z) > 8:  # gelu(z) is within 1e-14 of max(z, 0) there: never near a boundary
        raise AssertionError(f"exact GELU requested far in the tail (z={z})")
    with decimal.localcontext() as ctx:
        ctx.prec = 90
        x = z / decimal.Decimal(2).sqrt()
        term, total, n = x, x, 0                                     # erf(x) = 2/sqrt(pi) sum ...
        while abs(term) > decimal.Decimal(10) ** -75:
            n += 1
            term = -term * x * x / n
            total += term / (2 * n + 1)
        erf = 2 / _PI.sqrt() * total
        return +(z * (1 + erf) / 2 * (1 << GELU_FRAC))


@functools.lru_cache(maxsize=None)
def sine_table() -> np.ndarray:
    """``SIN`` as a read-only (SIN_SIZE,) int64 array (values in [-2**15, 2**15])."""
    k = np.arange(SIN_SIZE, dtype=np.float64)
    est = np.sin((2 * math.pi) * (k / SIN_SIZE)) * (1 << SIN_FRAC)
    table = _rhe_checked(est, _sin_exact)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def gelu_table() -> np.ndarray:
    """``GELU`` as a read-only (2 * GELU_HALF,) int64 array."""
    z = (np.arange(2 * GELU_HALF, dtype=np.float64) - GELU_HALF) / (1 << GELU_IN_FRAC)
    erf = np.fromiter(map(math.erf, (z / math.sqrt(2)).tolist()), dtype=np.float64, count=z.size)
    est = z * (1.0 + erf) * (0.5 * (1 << GELU_FRAC))
    table = _rhe_checked(est, _gelu_exact)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def _as_float(name: str, dtype: str) -> np.ndarray:
    t = (sine_table if name == "sin" else gelu_table)().astype(dtype)   # exact: |entries| < 2**17
    t.flags.writeable = False
    return t


def sine_table_f64() -> np.ndarray:
    """:func:`sine_table` as float64 (exact integers): the backends gather straight into GEMM input."""
    return _as_float("sin", "float64")


def gelu_table_f64() -> np.ndarray:
    """:func:`gelu_table` as float64 (exact integers)."""
    return _as_float("gelu", "float64")


def gelu_table_f32() -> np.ndarray:
    """:func:`gelu_table` as float32 (every entry, |v| < 2**16, is exact)."""
    return _as_float("gelu", "float32")


def table_digest(table: np.ndarray) -> str:
    """SHA-256 of a table as little-endian int32 values (the golden vectors pin these)."""
    return hashlib.sha256(np.asarray(table, dtype="<i4").tobytes()).hexdigest()
