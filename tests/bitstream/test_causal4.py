"""The causal4 entropy model (wire id 6): quarter contexts, quarter tables, round trips, pinned
bytes, malformed input."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfcodec.bitstream import ENTROPY_MODELS, CodedTensor, FormatError, decode_tensors, encode_tensors, tensor_report, write_uvarint
from nfcodec.bitstream import causal
from nfcodec.bitstream.causal import CausalParams, causal4_context, quarter_laplace_counts

from plane_model_checks import (GOLDEN_PLANES, ROUND_TRIP_SHAPES, round_trip_values, check_golden_bytes, N_SHAPES, causal_params, check_every_truncation, check_residuals_in_range,
                               check_word_tampering, decodes_or_refuses, one_record, smooth)

MODEL = ENTROPY_MODELS["causal4"]


_params = causal_params      # the causal wire


def _record(n: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    return one_record(6, n, params, words, n_words)


def _reference_context(planes, coefs, B):
    """The normative definition (docs/format.md §4.1, causal4) in plain Python integers."""
    c, h, w = len(planes), len(planes[0]), len(planes[0][0])
    out = [[[None] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        def at(y, x):
            return int(planes[k][y][x]) if 0 <= y < h and 0 <= x < w else 0

        for y in range(h):
            for x in range(w):
                n = [at(y, x - 1), at(y - 1, x), at(y - 1, x - 1), at(y - 1, x + 1), at(y, x - 2), at(y - 2, x)]
                m = (sum(ci * ni for ci, ni in zip(coefs, n)) + 8) // 16
                a = 2 * sum(abs(4 * v - m) for v in n[:4]) + abs(4 * n[4] - m) + abs(4 * n[5] - m)
                out[k][y][x] = (m // 4, m % 4, min(B - 1, (a // 4).bit_length()))
    return out


def _reference_counts(lo, size, j):
    rho = 1.0 - j / 16384
    rows = []
    for phi in range(4):
        row = []
        for k in range(lo, lo + size):
            u = 1.0
            for _ in range(abs(4 * k - phi)):
                u = u * rho
            row.append(int(u * 2.0**20) + 1)
        rows.append(row)
    return rows


def _round_trip(values: np.ndarray, models=("causal4",)) -> bytes:
    t = CodedTensor(3, 17, values, shape=values.shape)
    payload = encode_tensors([t], models=list(models))
    (out,) = decode_tensors(payload)
    assert out == t and np.array_equal(out.symbols, values.reshape(-1))
    return payload


def test_context_hand_computed():
    planes = np.array([[[4, 8, -2], [6, 10, 0]]])
    mu, phi, bins = causal4_context(planes, (32, 32, 0, 0, 0, 0), 16)
    # (1, 1): W = 6, N = 8: P = 32 * 14 = 448, m = (448 + 8) >> 4 = 28 quarters = 7.0;
    # A = 2 * (|24-28| + |32-28| + |16-28| + |-8-28|) + |0-28| + |0-28| = 168, bit_length(42) = 6
    assert (mu[0, 1, 1], phi[0, 1, 1], bins[0, 1, 1]) == (7, 0, 6)
    # (0, 1): W = 4 only: P = 128, m = 8 quarters = 2.0; (1, 0): N = 4: also 2.0;
    # (0, 2): W = 8, WW = 4 (coef 0): m = 16 -> 4.0; (1, 2): W = 10, N = -2: P = 256, m = 16 -> 4.0
    assert mu.tolist() == [[[0, 2, 4], [2, 7, 4]]] and phi.tolist() == [[[0, 0, 0], [0, 0, 0]]]
    mu, phi, _ = causal4_context(np.array([[[3, 0], [0, 0]]]), (20, 0, 0, 0, 0, 0), 1)
    # (0, 1): P = 60, m = (60 + 8) >> 4 = 4 -> 1.0; with W = 3 and c_W = 26: P = 78, m = 5 -> 1.25
    assert (mu[0, 0, 1], phi[0, 0, 1]) == (1, 0)
    mu, phi, _ = causal4_context(np.array([[[3, 0], [0, 0]]]), (26, 0, 0, 0, 0, 0), 1)
    assert (mu[0, 0, 1], phi[0, 0, 1]) == (1, 1)
    mu, phi, _ = causal4_context(np.array([[[-3, 0], [0, 0]]]), (26, 0, 0, 0, 0, 0), 1)
    assert (mu[0, 0, 1], phi[0, 0, 1]) == (-2, 3)          # m = (-78 + 8) >> 4 = -5 quarters = -2 + 3/4


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 7), (2, 5, 4), (1, 9, 2)])
@pytest.mark.parametrize("coefs", [(0,) * 6, (26, 24, -3, 8, 6, 3), (127, -128, 5, -7, 64, -1)])
def test_context_matches_the_reference(shape, coefs):
    planes = np.random.default_rng(sum(shape)).integers(-40, 41, shape)
    for B in (1, 5, 16):
        mu, phi, bins = causal4_context(planes, coefs, B)
        got = np.stack([mu, phi, bins], axis=-1).tolist()
        assert got == [[[list(t) for t in row] for row in plane] for plane in _reference_context(planes.tolist(), coefs, B)]


def test_context_at_the_int32_extremes_does_not_overflow():
    planes = np.array([[[2**31 - 1, -(2**31), 2**31 - 1], [-(2**31), 2**31 - 1, -(2**31)]]])
    coefs = (127, -128, 127, -128, 127, -128)
    mu, phi, bins = causal4_context(planes, coefs, 16)
    ref = _reference_context(planes.tolist(), coefs, 16)
    assert np.stack([mu, phi, bins], axis=-1).tolist() == [[[list(t) for t in r] for r in p] for p in ref]


@pytest.mark.parametrize("lo, size, j", [(-3, 7, 1), (-2, 5, 4000), (0, 4, 16383), (-40, 81, 37)])
def test_quarter_tables_match_the_reference(lo, size, j):
    assert quarter_laplace_counts(lo, size, j).tolist() == _reference_counts(lo, size, j)


def test_quarter_tables_are_centred_on_the_quarter():
    t = quarter_laplace_counts(-3, 7, 3000)
    assert [int(np.argmax(row)) - 3 for row in t] == [0, 0, 0, 1]      # centres 0, 1/4, 1/2 (tie -> 0), 3/4
    assert t[2, 3] == t[2, 4]                                         # 1/2: symbols 0 and 1 equally likely
    assert t[0, 3] == 2**20 + 1


@pytest.mark.parametrize("shape", ROUND_TRIP_SHAPES)
@pytest.mark.parametrize("kind", ["smooth", "laplace"])
def test_round_trip(shape, kind):
    values = round_trip_values(shape, kind)
    assert tensor_report(_round_trip(values))[0]["model"] == "causal4"


def test_round_trip_edge_values():
    for values in (np.full((1, 4, 4), 9), np.array([[[0, 1] * 4, [1, 0] * 4] * 2]) * 1000):
        values = values.astype(np.int32)
        params = MODEL.fit(values.reshape(-1), values.shape)
        words = MODEL.encode_words(params, values.reshape(-1))
        payload = _record(values.size, MODEL.write_params(params), np.asarray(words, "<u4").tobytes())
        assert np.array_equal(decode_tensors(payload)[0].symbols, values.reshape(-1))


def test_small_pieces_code_the_same_symbols(monkeypatch):
    values = np.round(np.random.default_rng(5).laplace(0, 4, (2, 12, 20))).astype(np.int32)
    whole = _round_trip(values)
    monkeypatch.setattr(causal, "CAUSAL_PIECE_FLOATS", 1)
    assert len(_round_trip(values)) == len(whole)


def test_quarter_prediction_beats_causal_on_a_correlated_plane():
    """A plane whose best linear prediction is fractional: the quarter tables save bits (>= 3%)."""
    rng = np.random.default_rng(2)
    values = np.round(np.cumsum(np.cumsum(rng.laplace(0, 1, (64, 96)), axis=0), axis=1) / 6).astype(np.int32)
    t = CodedTensor(0, 0, values, shape=values.shape)
    sizes = {m: len(encode_tensors([t], models=[m])) for m in ("causal", "causal4")}
    assert sizes["causal4"] < 0.97 * sizes["causal"], sizes
    best = encode_tensors([t])
    assert tensor_report(best)[0]["model"] == "causal4" and len(best) == sizes["causal4"]


def test_golden_bytes():
    params = CausalParams(1, 4, 5, (26, 24, -8, 4, 0, 0), -3, 7, (9000, 5000, 1500))
    check_golden_bytes(MODEL, params, GOLDEN_HEX)


GOLDEN_HEX = (
    "01" "00" "00" "14" "06"          # count, index 0, step 0, n = 20, model 6
    "01" "04" "05"                    # c, h, w
    "1a18f8040000"                    # coefs 26 24 -8 4 0 0
    "05" "07"                         # lo_r = -3, K_r = 7
    "03" "2823" "8813" "dc05"         # B = 3, j = 9000 5000 1500
    "03" "54fe6a11" "e2809246" "0e000000")   # 3 words (phases 0-3 and bins 0-2 all occur)


@pytest.mark.parametrize("payload, match", [
    (_record(20, _params(c=1, h=4, w=4)), r"c=1 h=4 w=4: c\*h\*w must equal n=20"),
    (_record(2**18, _params(c=1, h=1, w=2**18)), "wavefronts"),
    (_record(20, _params(B=0, js=())), r"B=0 outside \[1, 16\]"),
    (_record(20, _params(js=(1000,) * 17)), r"B=17 outside \[1, 16\]"),
    (_record(20, _params(js=(1000, 0))), r"causal4 j_1=0 outside \[1, 16383\]"),
    (_record(20, _params(js=(16384,))), r"causal4 j_0=16384 outside \[1, 16383\]"),
    (_record(20, _params(K_r=4097)), r"K_r=4097 outside \[1, 4096\]"),
    (_record(20, _params(K_r=1), b"\x01\x00\x00\x00"), "must be 0 when nothing is coded"),
    (_record(20, _params(), bytes(4)), "corrupt ANS words"),
    (_record(4, _params(c=1, h=2, w=2, coefs=(64, 0, 0, 0, 0, 0), lo_r=2**31 - 1, K_r=1)),
     "outside the int32 range"),
])
def test_malformed(payload, match):
    with pytest.raises(FormatError, match=match):
        decode_tensors(payload)


def test_every_truncation_is_a_format_error():
    check_every_truncation(_round_trip(GOLDEN_PLANES))


def test_words_left_over_and_corrupt_words():
    check_word_tampering(_round_trip(smooth(6, 7, amp=12)), 42)


@given(data=st.binary(max_size=64), n=st.sampled_from([0, 1, 2, 4, 6, 8, 12, 20, 21]))
@settings(max_examples=200, deadline=None)
def test_fuzz_random_params(data, n):
    decodes_or_refuses(b"\x01\x00\x00" + write_uvarint(n) + b"\x06" + data, n)


@given(
    dims=st.sampled_from(N_SHAPES),
    coefs=st.lists(st.integers(-128, 127), min_size=6, max_size=6),
    lo_r=st.integers(-(2**31), 2**31 - 20),
    K_r=st.integers(1, 20),
    js=st.lists(st.integers(1, 16383), min_size=1, max_size=16),
    words=st.lists(st.integers(0, 2**32 - 1), max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_fuzz_valid_params_random_words(dims, coefs, lo_r, K_r, js, words):
    c, h, w = dims
    payload = _record(c * h * w, _params(c, h, w, tuple(coefs), lo_r, K_r, tuple(js)),
                      struct.pack(f"<{len(words)}I", *words))
    check_residuals_in_range(payload, dims, lambda planes: causal4_context(planes, coefs, 1)[0], lo_r, K_r)
