"""Entropy coding of quantized tensors: round trips, pinned bytes, model choice, malformed input."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nfcodec.bitstream import (
    ENTROPY_MODELS,
    MAX_ALPHABET,
    CodedTensor,
    FormatError,
    decode_tensors,
    encode_tensors,
    laplace_counts,
    tensor_report,
    write_uvarint,
    zigzag,
)


def _tensor(values, index=0, step=0) -> CodedTensor:
    return CodedTensor(index, step, np.asarray(values, dtype=np.int64))


def _round_trip(tensors, models=None) -> bytes:
    payload = encode_tensors(tensors, models=models)
    assert decode_tensors(payload) == list(tensors)
    return payload


def _record(n: int, model: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    """A one-tensor payload built by hand (index 0, step 0)."""
    n_words = len(words) // 4 if n_words is None else n_words
    return b"\x01\x00\x00" + write_uvarint(n) + bytes([model]) + params + write_uvarint(n_words) + words


def _sv(n: int) -> bytes:
    return write_uvarint(zigzag(n))


# Deterministic, RNG-free tensors (numpy's distribution streams are not a stability promise).
GOLDEN = [
    _tensor(np.where(np.arange(300) % 3, 10, -10) + np.arange(300) % 2, index=0, step=4),  # bimodal
    _tensor(np.repeat([0, 1, -1, 2, -2, 5], [120, 40, 40, 10, 10, 1]), index=1, step=4),  # peaked
    _tensor(np.full(17, -3), index=2, step=9),  # const
    _tensor(np.zeros(0, np.int32), index=3, step=0),  # empty
]


# --------------------------------------------------------------------------- round trips


def test_model_ids_are_pinned():
    assert {name: m.wire_id for name, m in ENTROPY_MODELS.items()} == {"const": 0, "histogram": 1, "laplace": 2, "gaussian": 3,
                                                                       "checkerboard": 4, "causal": 5, "causal4": 6,
                                                                       "arm": 7}


@pytest.mark.parametrize("model", ["histogram", "laplace"])  # const is always allowed too
@pytest.mark.parametrize(
    "values",
    [
        [],  # empty tensor
        [7, 7, 7],  # K = 1
        [-5, -9, -7, -5, -6],  # negative-only
        [3, 1, 2, 1, 1, 1, 0, 0],
        np.arange(-(2**15), 2**15),  # widest alphabet, K = 65536
        [np.iinfo(np.int32).min, np.iinfo(np.int32).min + 1],  # far from the Laplace centre
    ],
    ids=["empty", "K1", "negative", "small", "wide", "int32-min"],
)
def test_round_trip_each_model(model, values):
    _round_trip([_tensor(values, index=5, step=200)], models=[model])


def test_const_model_alone_codes_constant_and_empty_tensors():
    payload = _round_trip([_tensor([]), _tensor([-4] * 9)], models=["const"])
    assert payload == bytes.fromhex("02" "000000" "00" "00" "00" "000009" "00" "07" "00")


def test_golden_payload():
    payload = _round_trip(GOLDEN)
    assert [r["model"] for r in tensor_report(payload)] == ["histogram", "laplace", "const", "const"]
    # Any change to the wire layout, the count derivation or constriction's words shows here.
    assert hashlib.sha256(payload).hexdigest() == "b704986681d9aeee204b683cb35e3e14a31177dceb889ba778fc93af8c8863de"


def test_laplace_counts_follow_the_spec():
    def reference(lo, size, j):  # the normative definition, with Python floats
        theta, powers = 1.0 - j / 4096, [1.0]
        for _ in range(max(abs(lo), abs(lo + size - 1))):
            powers.append(powers[-1] * theta)
        return [int(powers[abs(k)] * 2.0**20) + 1 for k in range(lo, lo + size)]

    for lo, size, j in [(-40, 81, 1), (-3, 7, 4095), (5, 300, 700), (-1000, 20, 13)]:
        assert laplace_counts(lo, size, j).tolist() == reference(lo, size, j)
    # The table stops at 2**17 steps: beyond it even the flattest model gives count 1.
    assert reference(2**17 - 1, 1, 1) == [1]
    assert laplace_counts(2**31 - 2, 2, 1).tolist() == [1, 1]


def test_tensors_keep_order_index_and_step():
    tensors = [_tensor([1, 2], index=9, step=1), _tensor([0], index=2, step=255)]
    out = decode_tensors(_round_trip(tensors))
    assert [(t.index, t.step, t.symbols.dtype, t.symbols.flags.writeable) for t in out] == [
        (9, 1, np.int32, False), (2, 255, np.int32, False),
    ]


@given(
    data=st.data(),
    span=st.integers(0, 3000),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40),
)
@settings(max_examples=50, deadline=None)
def test_round_trip_random_int32(data, span, shape):
    lo = data.draw(st.integers(np.iinfo(np.int32).min, np.iinfo(np.int32).max - span))
    values = data.draw(hnp.arrays(np.int32, shape, elements=st.integers(lo, lo + span)))
    (out,) = decode_tensors(encode_tensors([CodedTensor(0, 0, values)]))
    assert np.array_equal(out.symbols, values.reshape(-1))


# --------------------------------------------------------------------------- rate


def _coded_bytes(payload: bytes) -> int:
    (row,) = tensor_report(payload)
    return row["param_bytes"] + row["word_bytes"]


#: Models that code only with a plane hint (found from the registry, not listed by hand), and
#: those that also need the encoder's hint (``arm``: its network).
_RAMP = np.arange(64, dtype=np.int32)
_HINTED = {m for m, model in ENTROPY_MODELS.items() if getattr(model, "hinted", False)}
_PLANE_MODELS = {m for m, model in ENTROPY_MODELS.items()
                 if model.fit(_RAMP) is None and m not in _HINTED and model.fit(_RAMP, (8, 8)) is not None}


def test_plane_models_are_found():
    assert _PLANE_MODELS == {"checkerboard", "causal", "causal4"} and _HINTED == {"arm"}


def test_model_choice_picks_the_smallest():
    rng = np.random.default_rng(7)
    cases = {
        "laplace": np.round(rng.laplace(0, 4, 400)),  # Laplace-shaped: 3 bytes of params win
        "histogram": rng.choice([-40, 0, 40], 5000, p=[0.3, 0.4, 0.3]),  # sparse, not Laplace
        "const": np.full(50, 12),
    }
    for expected, values in cases.items():
        tensor = _tensor(values.astype(np.int64))
        alone = {m: _coded_bytes(encode_tensors([tensor], models=[m])) for m in ENTROPY_MODELS
                 if m != "const" and m not in _PLANE_MODELS | _HINTED}  # the plane models need a shape hint
        best = tensor_report(encode_tensors([tensor]))[0]
        assert best["model"] == expected
        assert best["param_bytes"] + best["word_bytes"] <= min(alone.values())


@pytest.mark.parametrize("model", ["laplace", "histogram"])
def test_laplace_sample_codes_near_its_entropy(model):
    values = np.round(np.random.default_rng(3).laplace(0, 3.0, 20000)).astype(np.int32)
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    entropy_bytes = -(counts * np.log2(p)).sum() / 8
    assert _coded_bytes(encode_tensors([_tensor(values)], models=[model])) < 1.03 * entropy_bytes


def test_report_fields():
    (row,) = tensor_report(encode_tensors([_tensor([0, 1, 1, -1] * 25, index=4, step=2)], models=["histogram"]))
    assert row.keys() == {"index", "step", "n", "model", "param_bytes", "word_bytes", "bits_per_symbol"}
    assert (row["index"], row["step"], row["n"], row["model"], row["param_bytes"]) == (4, 2, 100, "histogram", 5)
    assert row["bits_per_symbol"] == 8 * (row["param_bytes"] + row["word_bytes"]) / 100


# --------------------------------------------------------------------------- malformed input


def test_every_truncation_is_a_format_error():
    payload = encode_tensors(GOLDEN)
    for cut in range(len(payload)):
        with pytest.raises(FormatError):
            decode_tensors(payload[:cut])


@pytest.mark.parametrize(
    "payload, match",
    [
        (encode_tensors(GOLDEN) + b"\x00", "1 bytes left after 4 tensors"),
        (_record(3, 8, b""), "model=8 unknown"),
        (_record(2**28 + 1, 0, _sv(0)), "n=268435457 exceeds the remaining symbol budget"),
        (_record(5, 0, _sv(2**31)), "const value=2147483648 outside int32"),
        (_record(5, 0, _sv(1), b"\x01\x00\x00\x00"), "n_words=1, must be 0"),
        (_record(2, 1, _sv(0) + write_uvarint(MAX_ALPHABET + 1)), "K=65537 outside"),
        (_record(2, 1, _sv(0) + b"\x01"), r"K=1 outside \[2, 65536\]"),
        (_record(2, 1, _sv(2**31 - 1) + b"\x02\x01\x01"), "outside int32"),
        (_record(3, 1, _sv(0) + b"\x02\x01\x01"), "counts sum to 2, expected n=3"),
        (_record(2, 1, _sv(0) + b"\x02\x01\x01", bytes(4)), "corrupt ANS words"),  # ends in a zero word
        (_record(2, 2, _sv(0) + b"\x02\x00\x00"), r"j=0 outside \[1, 4095\]"),
        (b"\x01\x00\x00\x02\x02" + _sv(0) + b"\x02\x01", "tensor 0 j at offset 7: needs 2 bytes, 1 left"),
        (_record(1, 2, _sv(0) + b"\x02\x00\x08", n_words=2), "n_words at offset 11|needs 8 bytes"),
        (b"\x02" + _record(2, 0, _sv(0))[1:], "tensor 1 index"),
    ],
)
def test_malformed_payloads(payload, match):
    with pytest.raises(FormatError, match=match):
        decode_tensors(payload)


def test_leftover_ans_words_are_rejected():
    payload = encode_tensors([_tensor([0, 1, 1, 0, 1] * 20)], models=["histogram"])
    (row,) = tensor_report(payload)
    # Claim one symbol fewer: the decoder stops with words left over.
    tampered = _record(99, 1, _sv(0) + b"\x02" + bytes([40, 59]), payload[-row["word_bytes"] :])
    with pytest.raises(FormatError, match="left over after 99 symbols"):
        decode_tensors(tampered)


def test_max_symbols_is_a_total_budget():
    payload = encode_tensors([_tensor(np.zeros(600)), _tensor(np.zeros(600))])
    assert len(decode_tensors(payload, max_symbols=1200)) == 2
    with pytest.raises(FormatError, match="tensor 1 n=600 exceeds the remaining symbol budget 400"):
        decode_tensors(payload, max_symbols=1000)


# --------------------------------------------------------------------------- API misuse


def test_encoder_misuse():
    with pytest.raises(ValueError, match="unknown entropy models"):
        encode_tensors([_tensor([1, 2])], models=["huffman"])
    with pytest.raises(ValueError, match="no entropy model can code K=65537"):
        encode_tensors([_tensor([0, MAX_ALPHABET])])
    with pytest.raises(TypeError, match="must be integers"):
        CodedTensor(0, 0, np.array([0.5]))
    with pytest.raises(ValueError, match="outside the int32 range"):
        _tensor([2**31])
    with pytest.raises(ValueError, match="step=256"):
        CodedTensor(0, 256, np.zeros(1, np.int32))


@pytest.mark.parametrize("wire_id", sorted(m.wire_id for m in ENTROPY_MODELS.values()))
@given(data=st.binary(max_size=96), n=st.sampled_from([0, 1, 2, 4, 6, 8, 12, 20, 21]))
@settings(max_examples=100, deadline=None)
def test_fuzz_random_params_of_every_model(wire_id, data, n):
    """Any bytes after a record head of any registered model decode to n symbols or are a FormatError."""
    try:
        (out,) = decode_tensors(b"\x01\x00\x00" + write_uvarint(n) + bytes((wire_id,)) + data)
    except FormatError:
        return
    assert out.symbols.size == n
