"""Checks shared by the tests of the plane entropy models (``checkerboard``, ``causal``, ``causal4``)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from nfcodec.bitstream import FormatError, decode_tensors, tensor_report, write_uvarint, zigzag

#: (c, h, w) plane stacks the fuzz tests draw from.
N_SHAPES = [(1, 1, 1), (1, 2, 3), (2, 2, 2), (1, 4, 5), (3, 1, 4), (1, 3, 7)]


def smooth(h: int, w: int, c: int = 1, amp: int = 30) -> np.ndarray:
    """A deterministic, RNG-free smooth image-like stack of planes."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [(amp * (y * y + 2 * x * y + k * x * x)) // (h * h + 2 * h * w + k * w * w)
              + ((3 * x + 5 * y + k) % 7 == 0) for k in range(c)]
    return np.stack(planes).astype(np.int32)


#: (c, h, w) stacks and kinds the plane models' round-trip tests code.
ROUND_TRIP_SHAPES = [(1, 4, 4), (1, 16, 24), (3, 9, 5), (2, 2, 40), (1, 40, 2)]


def round_trip_values(shape: tuple, kind: str) -> np.ndarray:
    """``smooth`` planes, or rounded Laplace(0, 3) noise (seed 1), of ``shape``."""
    if kind == "smooth":
        return smooth(*shape[1:], c=shape[0])
    return np.round(np.random.default_rng(1).laplace(0, 3, shape)).astype(np.int32)


def decodes_or_refuses(payload: bytes, n: int) -> None:
    """``payload`` either decodes to ``n`` symbols or raises a FormatError (nothing else)."""
    try:
        (out,) = decode_tensors(payload)
    except FormatError:
        return
    assert out.symbols.size == n


def check_word_tampering(payload: bytes, n: int) -> bytes:
    """An extra word is refused; every single-bit flip of the words decodes to ``n`` symbols or is
    a FormatError.  Returns the words."""
    (row,) = tensor_report(payload)
    words = payload[-row["word_bytes"]:]
    head = payload[: -row["word_bytes"] - 1]  # up to n_words
    assert head + bytes((len(words) // 4,)) + words == payload
    with pytest.raises(FormatError, match="left over|corrupt"):
        decode_tensors(head + bytes((len(words) // 4 + 1,)) + words + b"\x01\x02\x03\x04")
    for i in range(len(payload) - len(words), len(payload)):
        for flip in (0x01, 0x80):
            bad = bytearray(payload)
            bad[i] ^= flip
            decodes_or_refuses(bytes(bad), n)
    return words


def sv(v: int) -> bytes:
    """An svarint."""
    return write_uvarint(zigzag(v))


def one_record(model: int, n: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    """A one-tensor payload (index 0, step 0) of entropy model ``model``."""
    n_words = len(words) // 4 if n_words is None else n_words
    return b"\x01\x00\x00" + write_uvarint(n) + bytes((model,)) + params + write_uvarint(n_words) + words


def check_every_truncation(payload: bytes) -> None:
    for cut in range(len(payload)):
        with pytest.raises(FormatError):
            decode_tensors(payload[:cut])


def causal_params(c=1, h=4, w=5, coefs=(32, 32, 0, 0, 0, 0), lo_r=-2, K_r=5, js=(1000,), B=None) -> bytes:
    """The params of a ``causal`` or ``causal4`` record (the same wire), built by hand (``B``
    overrides the bin count written)."""
    B = len(js) if B is None else B
    return (write_uvarint(c) + write_uvarint(h) + write_uvarint(w) + struct.pack("<6b", *coefs)
            + sv(lo_r) + write_uvarint(K_r) + bytes((B,)) + b"".join(struct.pack("<H", j) for j in js))


#: The planes the plane models' pinned-bytes tests code (4 x 5, small values, every phase and bin).
GOLDEN_PLANES = np.array([[[0, 1, 0, -1, 0],
                           [1, 2, 1, 0, -1],
                           [0, 1, 3, 1, 0],
                           [-1, 0, 1, 2, 1]]], dtype=np.int32)


def check_golden_bytes(model, params, golden_hex: str) -> None:
    """``GOLDEN_PLANES`` coded by ``model`` with ``params`` is exactly ``golden_hex`` (any change to
    the wire layout, the context, the tables or the coding order shows here) and decodes back."""
    from nfcodec.bitstream import CodedTensor

    words = model.encode_words(params, GOLDEN_PLANES.reshape(-1))
    payload = one_record(model.wire_id, 20, model.write_params(params), np.asarray(words, "<u4").tobytes())
    assert payload.hex() == golden_hex
    assert decode_tensors(payload) == [CodedTensor(0, 0, GOLDEN_PLANES)]


def check_residuals_in_range(payload: bytes, dims: tuple, mu_of, lo_r: int, K_r: int) -> None:
    """``payload`` decodes or is a FormatError; what decodes obeys its params: every residual from
    ``mu_of(planes)`` lies in ``[lo_r, lo_r + K_r)``."""
    try:
        (out,) = decode_tensors(payload)
    except FormatError:
        return
    planes = out.symbols.reshape(dims).astype(np.int64)
    residuals = planes - mu_of(planes)
    assert lo_r <= residuals.min() and residuals.max() < lo_r + K_r
