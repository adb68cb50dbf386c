"""The gaussian entropy model (wire id 3): normative counts, round trips, choice, malformed params."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from nfcodec.bitstream import CodedTensor, FormatError, decode_tensors, encode_tensors, tensor_report
from nfcodec.bitstream.entropy import gaussian_counts
from nfcodec.bitstream.fields import write_uvarint, zigzag


def _reference(lo, size, mu, j):
    """The normative definition in plain Python floats: r_0 = rho, r_m = r_{m-1} (rho rho), g_m = g_{m-1} r_{m-1}."""
    rho = 1.0 - j / 2**32
    rho2 = rho * rho
    top = max(abs(k - mu) for k in range(lo, lo + size))
    g, r = [1.0], rho
    for _ in range(top):
        g.append(g[-1] * r)
        r = r * rho2
    return [int(g[abs(k - mu)] * 2.0**20) + 1 for k in range(lo, lo + size)]


@pytest.mark.parametrize("lo,size,mu,j", [(-3, 7, 0, 2**31), (-40, 81, 2, 1 << 20), (5, 300, 100, 12345),
                                          (-2000, 4001, 0, 700), (0, 2, 1, 2**32 - 1)])
def test_counts_follow_the_spec(lo, size, mu, j):
    assert gaussian_counts(lo, size, mu, j).tolist() == _reference(lo, size, mu, j)


def test_counts_golden_values():
    # rho = 1/2: g = 1, 1/2, 1/16, 1/512 at distances 0..3
    assert gaussian_counts(-3, 7, 0, 2**31).tolist() == [2049, 65537, 524289, 1048577, 524289, 65537, 2049]


@pytest.mark.parametrize("values", [[3, 1, 2, 1, 1, 1, 0, 0], [-5, -9, -7, -5, -6],
                                    np.arange(-(2**15), 2**15)], ids=["small", "negative", "wide"])
def test_round_trip(values):
    t = CodedTensor(3, 90, np.asarray(values, dtype=np.int32))
    payload = encode_tensors([t], models=["gaussian"])
    assert tensor_report(payload)[0]["model"] == "gaussian"
    (out,) = decode_tensors(payload)
    assert np.array_equal(out.symbols, t.symbols)


def test_gaussian_shaped_tensor_picks_gaussian_and_beats_laplace():
    values = np.round(np.random.default_rng(5).normal(3, 40, 4000)).astype(np.int32)
    t = CodedTensor(0, 0, values)
    best = tensor_report(encode_tensors([t]))[0]
    lap = tensor_report(encode_tensors([t], models=["laplace"]))[0]
    assert best["model"] == "gaussian"
    assert best["bits_per_symbol"] < lap["bits_per_symbol"] - 0.03
    # within 2% of the empirical entropy
    _, counts = np.unique(values, return_counts=True)
    h = -(counts * np.log2(counts / counts.sum())).sum() / values.size
    assert best["bits_per_symbol"] < 1.02 * h + 0.05


def _payload(lo, size, mu, j):
    rec = (write_uvarint(0) + bytes((0,)) + write_uvarint(4) + bytes((3,)) + write_uvarint(zigzag(lo))
           + write_uvarint(size) + write_uvarint(zigzag(mu)) + struct.pack("<I", j) + write_uvarint(0))
    return write_uvarint(1) + rec


@pytest.mark.parametrize("args,match", [((0, 8, 9, 100), "gaussian mu=9 outside"),
                                        ((0, 8, 2, 0), "gaussian j=0 outside"),
                                        ((0, 1, 0, 5), "K=1 outside")])
def test_malformed_params(args, match):
    with pytest.raises(FormatError, match=match):
        decode_tensors(_payload(*args))
