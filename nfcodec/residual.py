"""Weights coded as residuals from a prior (format.md section 4c): ``w = prior + residual``, exactly.

A stream with a ``PRIR`` chunk codes every parameter tensor as a residual from the tensor of the
shared prior the chunk names.  Both are integer symbols on a table step; the decoder adds them on
the common power-of-two step ``2^-E``, ``E`` the largest exponent ``i // 8 + 4`` of the two steps
(only a tensor with a nonzero symbol counts), as the width-chunks layout assembles its parts:

    q = q_prior * (16 - i_p % 8) * 2^(E - e_p) + q_res * (16 - i_r % 8) * 2^(E - e_r),  step index 8E

so the decoded values are ``prior + residual`` with no rounding at all.  Both steps of a tensor
with nonzero symbols must be finer than index :data:`MAX_STEP` (so ``E <= 23``), and every summed
symbol must stay below :data:`SYMBOL_LIMIT` = ``2^53`` in magnitude: then it is an exact binary64
integer and ``q * 2^-E`` an exact binary64 value, as section 6.1 assumes of every weight and bias
(the sum itself may reach ``2^54 + 2^43``: residual symbols are int32, the prior's below ``2^20``).
A residual of shape ``(n, *s)`` (the tiles layout: one network per tile) adds the prior's
``s``-shaped tensor to each of its ``n`` slices.
No torch here: the decoder uses it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .bitstream import FormatError
from .exact.layers import QTensor

__all__ = ["MAX_STEP", "SYMBOL_LIMIT", "add_prior", "exponent"]

#: Steps with nonzero symbols in a prior-coded tensor must have an index below this.
MAX_STEP = 160
#: Every symbol of ``prior + residual`` (on the common step) must be below this in magnitude.
SYMBOL_LIMIT = 2**53


def exponent(step: int) -> int:
    """``e`` with ``STEP_TABLE[step] = (16 - step % 8) * 2^-e``: ``step // 8 + 4``."""
    return step // 8 + 4


def add_prior(prior: Sequence[QTensor], residual: Sequence[QTensor]) -> list[QTensor]:
    """``prior[i] + residual[i]`` for every tensor, exactly (see the module docstring)."""
    if len(prior) != len(residual):
        raise FormatError(f"the prior has {len(prior)} tensors, the stream {len(residual)}")
    out = []
    for i, (p, r) in enumerate(zip(prior, residual)):
        if r.q.shape != p.q.shape and r.q.shape[1:] != p.q.shape:
            raise FormatError(f"tensor {i}: shape {r.q.shape} does not match the prior's {p.q.shape}")
        live = [t for t in (p, r) if t.q.size and np.any(t.q)]
        for t, what in ((p, "prior"), (r, "residual")):
            if t in live and t.step >= MAX_STEP:
                raise FormatError(f"tensor {i}: the {what} has nonzero symbols on step {t.step}; "
                                  f"prior-coded tensors need steps below {MAX_STEP}")
        big_e = max((exponent(t.step) for t in live), default=4)
        q = np.zeros(r.q.shape, np.int64)
        for t in live:
            q = q + t.q * ((16 - t.step % 8) << (big_e - exponent(t.step)))    # int64: |q| < 2^55
        top = int(np.abs(q).max(initial=0))
        if top >= SYMBOL_LIMIT:
            raise FormatError(f"tensor {i}: prior + residual has a symbol of magnitude {top} on step 2^-{big_e}; "
                              f"prior-coded symbols must be below 2^53 (exact in binary64)")
        out.append(QTensor(q, 8 * big_e))
    return out
