"""The checkerboard entropy model (wire id 4): context, round trips, rate, pinned bytes, malformed input."""
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
from nfcodec.bitstream.entropy import CheckerboardParams, checkerboard_context

from plane_model_checks import (N_SHAPES, check_every_truncation, check_word_tampering, decodes_or_refuses,
                               one_record, smooth, sv)

MODEL = ENTROPY_MODELS["checkerboard"]


def _params(c=1, h=4, w=5, lo_a=-2, K_a=5, j_a=1000, lo_r=-2, K_r=5, js=(1000,), B=None) -> bytes:
    """Model-4 params built by hand (``B`` overrides the bin count written)."""
    B = len(js) if B is None else B
    return (write_uvarint(c) + write_uvarint(h) + write_uvarint(w) + sv(lo_a) + write_uvarint(K_a)
            + struct.pack("<H", j_a) + sv(lo_r) + write_uvarint(K_r) + bytes((B,))
            + b"".join(struct.pack("<H", j) for j in js))


def _record(n: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    return one_record(4, n, params, words, n_words)


def _reference_context(planes, B):
    """The normative definition in plain Python integers."""
    c, h, w = len(planes), len(planes[0]), len(planes[0][0])
    mu = [[[0] * w for _ in range(h)] for _ in range(c)]
    bins = [[[0] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        def at(y, x):
            return int(planes[k][y][x]) if 0 <= y < h and 0 <= x < w else 0

        for y in range(h):
            for x in range(w):
                if (y + x) % 2:
                    nb = [at(y - 1, x), at(y + 1, x), at(y, x - 1), at(y, x + 1)]
                    m = (sum(nb) + 2) // 4
                    mu[k][y][x] = m
                    bins[k][y][x] = min(B - 1, sum(abs(v - m) for v in nb).bit_length())
    return mu, bins


def _laplacian(shape, scale, seed) -> np.ndarray:
    return np.round(np.random.default_rng(seed).laplace(0, scale, shape)).astype(np.int32)


def _round_trip(values: np.ndarray, shape=None, models=("checkerboard",)) -> bytes:
    t = CodedTensor(3, 17, values, shape=values.shape if shape is None else shape)
    payload = encode_tensors([t], models=None if models is None else list(models))
    (out,) = decode_tensors(payload)
    assert out == t and np.array_equal(out.symbols, values.reshape(-1))
    return payload


# --------------------------------------------------------------------------- context


def test_context_hand_computed():
    planes = np.array([[[4, 0, 8, 0], [0, 2, 0, -9], [6, 0, 0, 0]],
                       [[1, 7, 1, 7], [7, 1, 7, 1], [1, 7, 1, 7]]])
    anchor, mu, bins = checkerboard_context(planes, 16)
    assert anchor.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]
    # plane 0: (0,3): N+S+W+E = 0-9+8+0 = -1 -> mu = 1 // 4 = 0; (2,3): -9 -> mu = -7 // 4 = -2 (floor)
    assert mu.tolist() == [[[0, 4, 0, 0], [3, 0, 0, 0], [0, 2, 0, -2]],
                           [[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]]
    # A = 10, 17 | 8, 19 | 8, 13 -> bit lengths 4 5 4 5 4 4; plane 1: A = 1 2 1 0 1 2
    assert bins.tolist() == [[[0, 4, 0, 5], [4, 0, 5, 0], [0, 4, 0, 4]],
                             [[0, 1, 0, 2], [1, 0, 0, 0], [0, 1, 0, 2]]]
    _, _, bins3 = checkerboard_context(planes, 3)
    assert bins3.tolist() == np.minimum(bins, 2).tolist()
    _, _, bins1 = checkerboard_context(planes, 1)
    assert not bins1.any()
    # only anchors are read
    other = planes.copy()
    other[:, ~anchor] = 12345
    assert all(np.array_equal(a, b) for a, b in zip(checkerboard_context(other, 16), (anchor, mu, bins)))


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 7), (2, 6, 1), (1, 2, 2), (3, 5, 8)])
@pytest.mark.parametrize("B", [1, 4, 16])
def test_context_matches_the_reference(shape, B):
    rng = np.random.default_rng(sum(shape) * B)
    planes = rng.integers(-(2**31), 2**31, shape) if B == 16 else rng.integers(-40, 40, shape)
    anchor, mu, bins = checkerboard_context(planes, B)
    ref_mu, ref_bins = _reference_context(planes.tolist(), B)
    assert mu.dtype == bins.dtype == np.int64 and anchor.shape == shape[1:]
    assert mu.tolist() == ref_mu and bins.tolist() == ref_bins


def test_context_misuse():
    with pytest.raises(ValueError):
        checkerboard_context(np.zeros((4, 4)), 4)
    with pytest.raises(ValueError):
        checkerboard_context(np.zeros((1, 4, 4)), 0)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", [(1, 2, 8), (1, 8, 2), (1, 2, 2 * 9), (1, 7, 9), (3, 5, 7), (3, 16, 16),
                                   (2, 31, 2), (1, 64, 48)])
@pytest.mark.parametrize("kind", ["laplace1", "laplace8", "smooth"])
def test_round_trip(shape, kind):
    if kind == "smooth":
        values = smooth(*shape[1:], c=shape[0])
    else:
        values = _laplacian(shape, float(kind[7:]), sum(shape))
    payload = _round_trip(values)
    assert tensor_report(payload)[0]["model"] == "checkerboard"


@pytest.mark.parametrize("hint", [lambda s: s[1:], lambda s: s])  # (h, w) or (c, h, w)
def test_round_trip_2d_hint_and_default_choice(hint):
    values = smooth(24, 40, c=1)
    payload = _round_trip(values, shape=hint(values.shape), models=None)
    assert tensor_report(payload)[0]["model"] in ("checkerboard", "causal", "causal4")  # the plane models win


@pytest.mark.parametrize("values", [
    np.full((1, 4, 4), 9),                                   # constant: const wins, nothing to code
    np.tile([[3, 5], [5, 3]], (3, 4)),                       # K_a = 1 and residuals K_r = 1 or more
    np.array([[[2**31 - 1, -(2**31)] * 4] * 4]),             # int32 extremes
    np.array([[[0, 1] * 4, [1, 0] * 4] * 2]) * 65535,        # residual range at the alphabet limit
], ids=["const", "two-valued", "int32", "wide"])
def test_round_trip_edge_values(values):
    values = values.astype(np.int64)
    t = CodedTensor(0, 0, values, shape=values.shape)
    for models in (None, ["checkerboard"]):
        try:
            payload = encode_tensors([t], models=models)
        except ValueError:  # no model can code it (alphabet too large): fine, but never a wrong stream
            continue
        assert decode_tensors(payload) == [t]


def test_nothing_coded_round_trip():
    # anchors all 3, non-anchors all 5: the residuals vary at the border (zero padding) only ...
    values = np.tile([[3, 5], [5, 3]], (4, 4))[None].astype(np.int32)
    params = MODEL.fit(values.reshape(-1), values.shape)
    assert params.size_a == 1
    assert decode_tensors(_round_trip(values)) == [CodedTensor(3, 17, values)]
    # ... and a hand-made record with K_a = K_r = 1 codes nothing at all
    payload = _record(16, _params(c=1, h=4, w=4, lo_a=3, K_a=1, lo_r=-1, K_r=1))
    (out,) = decode_tensors(payload)
    _, mu, _ = checkerboard_context(np.full((1, 4, 4), 3), 1)
    anchor = np.add.outer(np.arange(4), np.arange(4)) % 2 == 0
    assert out.symbols.tolist() == np.where(anchor, 3, mu - 1).reshape(-1).tolist()


@pytest.mark.parametrize("c,h,w", [(1, 1, 20), (2, 9, 1), (1, 1, 1), (3, 3, 3)])
def test_decoder_accepts_thin_planes(c, h, w):
    # The encoder never makes these (h, w >= 2), but the format allows h, w >= 1.
    values = _laplacian((c, h, w), 2.0, c * h * w)
    anchor, mu, _ = checkerboard_context(values, 2)
    residuals = (values - mu)[:, ~anchor]
    lo_a, lo_r = int(values[:, anchor].min()), int(residuals.min()) if residuals.size else 0
    p = CheckerboardParams(c, h, w, lo_a, int(values[:, anchor].max()) - lo_a + 1, 700,
                           lo_r, (int(residuals.max()) - lo_r + 1) if residuals.size else 1, (900, 1200))
    words = MODEL.encode_words(p, values.reshape(-1))
    payload = _record(c * h * w, MODEL.write_params(p), np.asarray(words, "<u4").tobytes())
    (out,) = decode_tensors(payload)
    assert np.array_equal(out.symbols, values.reshape(-1))


def test_fit_needs_a_usable_shape_hint():
    values = smooth(4, 8).reshape(-1)
    for shape in [(), (32,), (1, 4, 8, 1), (4, 4), (1, 1, 32), (32, 1), (0, 4, 8), (1, 2, 2)]:
        n = values.size if shape != (1, 2, 2) else 4
        assert MODEL.fit(values[:n], shape) is None, shape
    assert MODEL.fit(values) is None
    assert MODEL.fit(values, (4, 8)) is not None and MODEL.fit(values, (1, 4, 8)) is not None
    assert MODEL.fit(values, (2, 2, 8)) is not None
    # the other models take the hint and ignore it
    for name in ("const", "histogram", "laplace", "gaussian"):
        m = ENTROPY_MODELS[name]
        hinted, plain = m.fit(values, (4, 8)), m.fit(values)
        assert (hinted is None and plain is None) or m.write_params(hinted) == m.write_params(plain)
    with pytest.raises(NotImplementedError):
        MODEL.probabilities(MODEL.fit(values, (4, 8)))


def test_shape_is_a_hint_only():
    t = CodedTensor(0, 0, np.arange(16), shape=(4, 4))
    assert t.shape == (4, 4) and t == CodedTensor(0, 0, np.arange(16))
    assert CodedTensor(0, 0, np.arange(16), shape=[np.int64(4), 4]).shape == (4, 4)
    assert CodedTensor(0, 0, [1]).shape == ()
    with pytest.raises(TypeError):
        CodedTensor(0, 0, np.arange(16), shape=(4.0, 4))
    # without the hint the choice (and so the bytes) are unchanged
    values = smooth(16, 16)
    plain = encode_tensors([CodedTensor(0, 0, values)])
    assert tensor_report(plain)[0]["model"] != "checkerboard"
    assert encode_tensors([CodedTensor(0, 0, values, shape=(7,))]) == plain


# --------------------------------------------------------------------------- rate


def test_smooth_plane_beats_laplace():
    values = smooth(64, 96, amp=60)
    t = CodedTensor(0, 0, values, shape=values.shape)
    models = ("laplace", "gaussian", "histogram", "checkerboard")
    sizes = {m: len(encode_tensors([t], models=[m])) for m in models}
    assert sizes == {"laplace": 4160, "gaussian": 4271, "histogram": 4225, "checkerboard": 2658}
    best = encode_tensors([t], models=list(models))
    assert len(best) == sizes["checkerboard"] and tensor_report(best)[0]["model"] == "checkerboard"


def test_report_counts_the_words():
    values = smooth(32, 32, c=2)
    payload = encode_tensors([CodedTensor(5, 2, values, shape=values.shape)], models=["checkerboard"])
    (row,) = tensor_report(payload)
    assert (row["index"], row["step"], row["n"], row["model"]) == (5, 2, 2048, "checkerboard")
    head = 3 + len(write_uvarint(2048)) + 1  # count, index, step, n, model
    assert row["param_bytes"] + row["word_bytes"] + len(write_uvarint(row["word_bytes"] // 4)) + head == len(payload)
    assert row["bits_per_symbol"] == 8 * (row["param_bytes"] + row["word_bytes"]) / 2048


# --------------------------------------------------------------------------- pinned bytes

GOLDEN_PLANES = np.array([[[0, 1, 0, -1, 0],
                           [1, 2, 1, 0, -1],
                           [0, 1, 3, 1, 0],
                           [-1, 0, 1, 2, 1]]], dtype=np.int32)


def test_golden_bytes():
    payload = encode_tensors([CodedTensor(7, 3, GOLDEN_PLANES, shape=(1, 4, 5))], models=["checkerboard"])
    # Any change to the wire layout, the context, the tables, the fit or the coding order shows here.
    assert payload.hex() == (
        "01" "07" "03" "14" "04"          # count, index 7, step 3, n = 20, model 4
        "01" "04" "05"                    # c, h, w
        "00" "04" "5008"                  # lo_a = 0, K_a = 4, j_a = 2128
        "01" "02" "01" "2509"             # lo_r = -1, K_r = 2, B = 1, j_0 = 2341
        "02" "74315827" "5c920000")       # 2 words
    assert decode_tensors(payload) == [CodedTensor(7, 3, GOLDEN_PLANES)]


def test_golden_bytes_several_bins():
    # B = 3 with an empty bin 1 (the non-anchor bins here are 2 0 / 2 2 / 2 2 / 0 2): pins the
    # order of the groups in the one ANS stream.
    params = CheckerboardParams(1, 4, 5, -1, 5, 1200, -1, 5, (3000, 1500, 400))
    words = MODEL.encode_words(params, GOLDEN_PLANES.reshape(-1))
    payload = _record(20, MODEL.write_params(params), np.asarray(words, "<u4").tobytes())
    assert payload.hex() == (
        "01" "00" "00" "14" "04" "01" "04" "05"
        "01" "05" "b004"                  # lo_a = -1, K_a = 5, j_a = 1200
        "01" "05" "03" "b80b" "dc05" "9001"   # lo_r = -1, K_r = 5, B = 3, j = 3000 1500 400
        "02" "a8c264e0" "c6e43f2a")
    assert decode_tensors(payload) == [CodedTensor(0, 0, GOLDEN_PLANES)]


# --------------------------------------------------------------------------- malformed input


def _valid_payload() -> bytes:
    return encode_tensors([CodedTensor(0, 0, GOLDEN_PLANES, shape=(1, 4, 5))], models=["checkerboard"])


@pytest.mark.parametrize("payload, match", [
    (_record(20, _params(c=1, h=4, w=4)), r"c=1 h=4 w=4: c\*h\*w must equal n=20"),
    (_record(0, _params(c=0, h=4, w=5)), "c=0 h=4 w=5"),
    (_record(20, _params(c=20, h=1, w=0)), "w=0"),
    (_record(20, _params(c=2**40, h=2**40, w=1)), "must equal n=20"),
    (_record(20, _params(B=0, js=())), r"B=0 outside \[1, 16\]"),
    (_record(20, _params(js=(1000,) * 17)), r"B=17 outside \[1, 16\]"),
    (_record(20, _params(j_a=0)), r"j_a=0 outside \[1, 4095\]"),
    (_record(20, _params(j_a=4096)), r"j_a=4096 outside \[1, 4095\]"),
    (_record(20, _params(js=(1000, 0))), r"j_1=0 outside \[1, 4095\]"),
    (_record(20, _params(js=(4096,))), r"j_0=4096 outside \[1, 4095\]"),
    (_record(20, _params(K_a=0)), r"K_a=0 outside \[1, 65536\]"),
    (_record(20, _params(K_r=0)), r"K_r=0 outside \[1, 65536\]"),
    (_record(20, _params(K_r=65537)), r"K_r=65537 outside \[1, 65536\]"),
    (_record(20, _params(lo_a=2**31 - 1, K_a=2)), "outside int32"),
    (_record(20, _params(lo_r=-(2**31) - 1)), "outside int32"),
    (_record(20, _params(K_a=1, K_r=1), b"\x01\x00\x00\x00"), "left over"),
    (_record(20, _params(), bytes(4)), "corrupt ANS words"),  # ends in a zero word
    # anchors 2**31 - 1: mu of the non-anchor (0, 1) is 2**30, plus r = 2**31 - 1 overflows int32
    (_record(4, _params(c=1, h=2, w=2, lo_a=2**31 - 1, K_a=1, lo_r=2**31 - 1, K_r=1)), "outside the int32 range"),
])
def test_malformed(payload, match):
    with pytest.raises(FormatError, match=match):
        decode_tensors(payload)


def test_every_truncation_is_a_format_error():
    check_every_truncation(_valid_payload())


def test_words_left_over_and_corrupt_words():
    words = check_word_tampering(_valid_payload(), 20)
    # fewer symbols claimed than coded: a record that codes nothing but carries the words is rejected
    with pytest.raises(FormatError, match="left over"):
        decode_tensors(_record(20, _params(K_a=1, K_r=1), words))


@given(data=st.binary(max_size=64), n=st.sampled_from([0, 1, 2, 4, 6, 8, 12, 20, 21]))
@settings(max_examples=300, deadline=None)
def test_fuzz_random_params(data, n):
    decodes_or_refuses(b"\x01\x00\x00" + write_uvarint(n) + b"\x04" + data, n)


@given(
    dims=st.sampled_from(N_SHAPES),
    lo_a=st.sampled_from([-3, -3, 0, 0, 2**31 - 4, -(2**31), 2**31 - 1, -(2**31) - 1]),
    K_a=st.sampled_from([1, 2, 2, 5, 5, 65536, 0, 65537]),
    lo_r=st.sampled_from([-3, -3, 0, 0, 2**31 - 4, -(2**31), 2**31 - 1]),
    K_r=st.sampled_from([1, 2, 2, 9, 9, 65536, 0]),
    j_a=st.sampled_from([1, 2048, 2048, 4095, 0, 4096]),
    js=st.lists(st.sampled_from([1, 700, 700, 4095, 0, 4096]), min_size=1, max_size=4)
    | st.lists(st.sampled_from([700, 3000]), min_size=0, max_size=18),
    words=st.lists(st.integers(0, 2**32 - 1), max_size=6),
    n_words_delta=st.sampled_from([0, 0, 0, 0, 1, -1]),
    n_delta=st.sampled_from([0, 0, 0, 0, 1, -1]),
)
@settings(max_examples=400, deadline=None)
def test_fuzz_structured_records(dims, lo_a, K_a, lo_r, K_r, j_a, js, words, n_words_delta, n_delta):
    c, h, w = dims
    n = max(0, c * h * w + n_delta)
    params = _params(c, h, w, lo_a, K_a, j_a, lo_r, K_r, tuple(js))
    payload = _record(n, params, struct.pack(f"<{len(words)}I", *words), n_words=max(0, len(words) + n_words_delta))
    try:
        (out,) = decode_tensors(payload)
    except FormatError:
        return
    assert out.symbols.size == n


@given(
    dims=st.sampled_from(N_SHAPES),
    lo_a=st.integers(-(2**31), 2**31 - 20),
    K_a=st.integers(1, 20),
    lo_r=st.integers(-(2**31), 2**31 - 20),
    K_r=st.integers(1, 20),
    j_a=st.integers(1, 4095),
    js=st.lists(st.integers(1, 4095), min_size=1, max_size=16),
    words=st.lists(st.integers(0, 2**32 - 1), max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_fuzz_valid_params_random_words(dims, lo_a, K_a, lo_r, K_r, j_a, js, words):
    c, h, w = dims
    payload = _record(c * h * w, _params(c, h, w, lo_a, K_a, j_a, lo_r, K_r, tuple(js)),
                      struct.pack(f"<{len(words)}I", *words))
    try:
        (out,) = decode_tensors(payload)
    except FormatError:
        return
    # whatever the words, what decodes obeys the params: anchors in their range, residuals in theirs
    planes = out.symbols.reshape(dims).astype(np.int64)
    anchor, mu, _ = checkerboard_context(planes, 1)
    assert lo_a <= planes[:, anchor].min() and planes[:, anchor].max() < lo_a + K_a
    residuals = (planes - mu)[:, ~anchor]
    assert residuals.size == 0 or (lo_r <= residuals.min() and residuals.max() < lo_r + K_r)
