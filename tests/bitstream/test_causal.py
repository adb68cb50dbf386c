"""The causal entropy model (wire id 5): context, order, round trips, pinned bytes, malformed input."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfcodec.bitstream import (
    ENTROPY_MODELS,
    CodedTensor,
    FormatError,
    decode_tensors,
    encode_tensors,
    tensor_report,
    write_uvarint,
)
from nfcodec.bitstream import causal
from nfcodec.bitstream.causal import CausalParams, causal_context, causal_order

from plane_model_checks import (GOLDEN_PLANES, ROUND_TRIP_SHAPES, round_trip_values, check_golden_bytes, N_SHAPES, causal_params, check_every_truncation, check_residuals_in_range,
                               check_word_tampering, decodes_or_refuses, one_record, smooth)

MODEL = ENTROPY_MODELS["causal"]


_params = causal_params


def _record(n: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    return one_record(5, n, params, words, n_words)


def _reference_context(planes, coefs, B):
    """The normative definition in plain Python integers."""
    c, h, w = len(planes), len(planes[0]), len(planes[0][0])
    mu = [[[0] * w for _ in range(h)] for _ in range(c)]
    bins = [[[0] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        def at(y, x):
            return int(planes[k][y][x]) if 0 <= y < h and 0 <= x < w else 0

        for y in range(h):
            for x in range(w):
                n = [at(y, x - 1), at(y - 1, x), at(y - 1, x - 1), at(y - 1, x + 1), at(y, x - 2), at(y - 2, x)]
                m = (sum(ci * ni for ci, ni in zip(coefs, n)) + 32) // 64
                a = 2 * sum(abs(v - m) for v in n[:4]) + abs(n[4] - m) + abs(n[5] - m)
                mu[k][y][x] = m
                bins[k][y][x] = min(B - 1, a.bit_length())
    return mu, bins


def _round_trip(values: np.ndarray, shape=None, models=("causal",)) -> bytes:
    t = CodedTensor(3, 17, values, shape=values.shape if shape is None else shape)
    payload = encode_tensors([t], models=None if models is None else list(models))
    (out,) = decode_tensors(payload)
    assert out == t and np.array_equal(out.symbols, values.reshape(-1))
    return payload


# --------------------------------------------------------------------------- context and order


def test_context_hand_computed():
    planes = np.array([[[4, 8, -2], [6, 10, 0]]])
    mu, bins = causal_context(planes, (32, 32, 0, 0, 0, 0), 16)   # mu = (W + N + 1) // 2
    # (1, 1): W = 6, N = 8, NW = 4, NE = -2, WW = 0, NN = 0 -> mu = 7,
    # A = 2 * (1 + 1 + 3 + 9) + 7 + 7 = 42 -> bit_length 6
    assert mu[0, 1, 1] == 7 and bins[0, 1, 1] == 6
    assert mu[0, 0, 0] == 0 and bins[0, 0, 0] == 0                 # every neighbour outside: 0
    assert mu.tolist() == [[[0, 2, 4], [2, 7, 4]]]            # (1, 2): (32 * 10 - 32 * 2 + 32) >> 6 = 4
    _, capped = causal_context(planes, (32, 32, 0, 0, 0, 0), 3)
    assert capped.max() == 2


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 7), (2, 5, 4), (1, 9, 2)])
@pytest.mark.parametrize("coefs", [(0,) * 6, (26, 24, -3, 8, 6, 3), (127, -128, 5, -7, 64, -1)])
def test_context_matches_the_reference(shape, coefs):
    planes = np.random.default_rng(sum(shape)).integers(-40, 41, shape)
    for B in (1, 5, 16):
        mu, bins = causal_context(planes, coefs, B)
        assert (mu.tolist(), bins.tolist()) == _reference_context(planes.tolist(), coefs, B)


def test_context_at_the_int32_extremes_does_not_overflow():
    planes = np.array([[[2**31 - 1, -(2**31), 2**31 - 1], [-(2**31), 2**31 - 1, -(2**31)]]])
    coefs = (127, -128, 127, -128, 127, -128)
    mu, bins = causal_context(planes, coefs, 16)
    assert (mu.tolist(), bins.tolist()) == _reference_context(planes.tolist(), coefs, 16)


def test_context_misuse():
    with pytest.raises(ValueError, match="six coefficients"):
        causal_context(np.zeros((2, 3)), (0,) * 6, 1)
    with pytest.raises(ValueError, match="six coefficients"):
        causal_context(np.zeros((1, 2, 3)), (0,) * 5, 1)
    with pytest.raises(ValueError, match="six coefficients"):
        causal_context(np.zeros((1, 2, 3)), (128, 0, 0, 0, 0, 0), 1)
    with pytest.raises(ValueError, match="B >= 1"):
        causal_context(np.zeros((1, 2, 3)), (0,) * 6, 0)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 6), (6, 1), (3, 4), (5, 2)])
def test_wavefronts_cover_every_position_once_after_its_neighbours(h, w):
    seen = {}
    for t, (ys, xs) in enumerate(causal_order(h, w)):
        assert list(ys) == sorted(ys) and all(x + 2 * y == t for y, x in zip(ys, xs))
        for y, x in zip(ys.tolist(), xs.tolist()):
            assert (y, x) not in seen
            seen[(y, x)] = t
    assert len(seen) == h * w
    for (y, x), t in seen.items():
        for dy, dx in causal.CAUSAL_NEIGHBOURS:
            if (y + dy, x + dx) in seen:
                assert seen[(y + dy, x + dx)] < t


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", ROUND_TRIP_SHAPES)
@pytest.mark.parametrize("kind", ["smooth", "laplace"])
def test_round_trip(shape, kind):
    values = round_trip_values(shape, kind)
    payload = _round_trip(values)
    assert tensor_report(payload)[0]["model"] == "causal"


@pytest.mark.parametrize("values", [
    np.full((1, 4, 4), 9),                                   # one residual value: K_r = 1, no words
    np.array([[[2**31 - 1, -(2**31)] * 4] * 4]),             # int32 extremes
    np.array([[[0, 1] * 4, [1, 0] * 4] * 2]) * 1000,         # a wide residual alphabet
], ids=["flat", "int32", "wide"])
def test_round_trip_edge_values(values):
    values = values.astype(np.int32)
    t = CodedTensor(0, 0, values, shape=values.shape)
    params = MODEL.fit(t.symbols, t.shape)
    if params is None:                                       # residuals wider than CAUSAL_MAX_ALPHABET
        assert np.ptp(values.astype(np.int64)) > causal.CAUSAL_MAX_ALPHABET
        return
    words = MODEL.encode_words(params, t.symbols)
    payload = _record(values.size, MODEL.write_params(params), np.asarray(words, "<u4").tobytes())
    assert np.array_equal(decode_tensors(payload)[0].symbols, values.reshape(-1))


def test_small_pieces_code_the_same_symbols(monkeypatch):
    """A wavefront split into many constriction calls (the memory bound) still round-trips."""
    values = np.round(np.random.default_rng(5).laplace(0, 4, (2, 12, 20))).astype(np.int32)
    whole = _round_trip(values)
    monkeypatch.setattr(causal, "CAUSAL_PIECE_FLOATS", 1)       # one symbol per call
    split = _round_trip(values)
    assert len(split) == len(whole)


def test_fit_needs_a_usable_shape_hint():
    values = smooth(8, 8)
    assert MODEL.fit(values.reshape(-1)) is None
    assert MODEL.fit(values.reshape(-1), (63,)) is None
    assert MODEL.fit(values.reshape(-1), (1, 8, 8)) is not None
    wide = np.zeros((1, 2, 2**17), dtype=np.int32)              # too many wavefronts for a decoder
    assert MODEL.fit(wide.reshape(-1), wide.shape) is None


def test_correlated_plane_beats_checkerboard_and_laplace():
    rng = np.random.default_rng(2)
    values = np.round(np.cumsum(np.cumsum(rng.laplace(0, 1, (64, 96)), axis=0), axis=1) / 6).astype(np.int32)
    t = CodedTensor(0, 0, values, shape=values.shape)
    sizes = {m: len(encode_tensors([t], models=[m])) for m in ("laplace", "checkerboard", "causal")}
    assert sizes["causal"] < 0.8 * sizes["checkerboard"] < 0.8 * sizes["laplace"], sizes
    best = encode_tensors([t])     # every model offered: causal4 (format 2.6) codes it smaller still
    assert tensor_report(best)[0]["model"] == "causal4" and len(best) < sizes["causal"]


# --------------------------------------------------------------------------- pinned bytes

def test_golden_bytes():
    params = CausalParams(1, 4, 5, (32, 32, -8, 4, 0, 0), -2, 5, (3000, 1500, 400))
    check_golden_bytes(MODEL, params, GOLDEN_HEX)


GOLDEN_HEX = (
    "01" "00" "00" "14" "05"          # count, index 0, step 0, n = 20, model 5
    "01" "04" "05"                    # c, h, w
    "2020f8040000"                    # coefs 32 32 -8 4 0 0
    "03" "05"                         # lo_r = -2, K_r = 5
    "03" "b80b" "dc05" "9001"         # B = 3, j = 3000 1500 400
    "02" "46f33cd8" "27fe42e7")       # 2 words


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("payload, match", [
    (_record(20, _params(c=1, h=4, w=4)), r"c=1 h=4 w=4: c\*h\*w must equal n=20"),
    (_record(0, _params(c=0, h=4, w=5)), "c=0 h=4 w=5"),
    (_record(20, _params(c=2**40, h=2**40, w=1)), "must equal n=20"),
    (_record(2**18, _params(c=1, h=1, w=2**18)), "wavefronts"),
    (_record(20, _params(B=0, js=())), r"B=0 outside \[1, 16\]"),
    (_record(20, _params(js=(1000,) * 17)), r"B=17 outside \[1, 16\]"),
    (_record(20, _params(js=(1000, 0))), r"j_1=0 outside \[1, 4095\]"),
    (_record(20, _params(js=(4096,))), r"j_0=4096 outside \[1, 4095\]"),
    (_record(20, _params(K_r=0)), r"K_r=0 outside \[1, 65536\]"),
    (_record(20, _params(K_r=4097)), r"K_r=4097 outside \[1, 4096\]"),
    (_record(20, _params(lo_r=-(2**31) - 1)), "outside int32"),
    (_record(20, _params(K_r=1), b"\x01\x00\x00\x00"), "must be 0 when nothing is coded"),
    (_record(20, _params(), bytes(4)), "corrupt ANS words"),  # ends in a zero word
    # every residual 2**31 - 1: the second symbol's mu = (64 * (2**31 - 1) + 32) >> 6 overflows
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
@settings(max_examples=300, deadline=None)
def test_fuzz_random_params(data, n):
    decodes_or_refuses(b"\x01\x00\x00" + write_uvarint(n) + b"\x05" + data, n)


@given(
    dims=st.sampled_from(N_SHAPES),
    coefs=st.lists(st.integers(-128, 127), min_size=6, max_size=6),
    lo_r=st.integers(-(2**31), 2**31 - 20),
    K_r=st.integers(1, 20),
    js=st.lists(st.integers(1, 4095), min_size=1, max_size=16),
    words=st.lists(st.integers(0, 2**32 - 1), max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_fuzz_valid_params_random_words(dims, coefs, lo_r, K_r, js, words):
    c, h, w = dims
    payload = _record(c * h * w, _params(c, h, w, tuple(coefs), lo_r, K_r, tuple(js)),
                      struct.pack(f"<{len(words)}I", *words))
    # whatever the words, what decodes obeys the params: every residual in its range
    check_residuals_in_range(payload, dims, lambda planes: causal_context(planes, coefs, 1)[0], lo_r, K_r)
