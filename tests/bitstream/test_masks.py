"""MASK payloads: every coder round-trips, the chooser keeps the smallest, bytes are pinned, and
malformed payloads are refused with a FormatError that names the mask and its tensor."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nfcodec.bitstream import FormatError, write_uvarint
from nfcodec.bitstream.masks import (
    MASK_CODERS,
    CodedMask,
    decode_masks,
    encode_masks,
    mask_coder_sizes,
    mask_report,
)

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(0,), (1,), (5,), (8, 16), (3, 4, 3, 3), (40, 50)]
DENSITIES = [0.0, 0.01, 0.3, 0.5, 0.9, 1.0]


def hashed_mask(shape: tuple[int, ...], density: float, salt: int = 0) -> np.ndarray:
    """A pseudo-random mask from integer hashing (no RNG: the same bits on every numpy)."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint64) + np.uint64(salt)
    h = (i * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(2**32)
    h = (h ^ (h >> np.uint64(13))) * np.uint64(2246822519) % np.uint64(2**32)
    return (h.astype(np.float64) < density * 2**32).reshape(shape)


def test_coder_wire_ids_are_pinned():
    assert {name: c.wire_id for name, c in MASK_CODERS.items()} == {"const": 0, "bernoulli": 1, "context": 2,
                                                                  "runs": 3}


@pytest.mark.parametrize("name", list(MASK_CODERS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("density", DENSITIES)
def test_each_coder_round_trips(name, shape, density):
    bits = hashed_mask(shape, density)
    coder = MASK_CODERS[name]
    mask = CodedMask(7, bits)
    if coder.encode(mask.flat, shape) is None:
        # not applicable: const for mixed masks, bernoulli / runs for constant or empty ones
        assert name != "context" or bits.size == 0
        with pytest.raises(ValueError, match="no mask coder"):
            encode_masks([mask], coders=[coder])
        return
    payload = encode_masks([mask], coders=[coder])
    (back,) = decode_masks(payload, sizes=[0] * 7 + [bits.size])
    assert back.index == 7 and back.bits.dtype == bool and back.bits.shape == (bits.size,)
    assert np.array_equal(back.flat, bits.reshape(-1))
    assert mask_report(payload)[0]["coder"] == name


def test_random_masks_round_trip_through_the_chooser():
    rng = np.random.default_rng(1)
    masks = [CodedMask(i, rng.random(shape) < p) for i, (shape, p) in
             enumerate([((64, 64), 0.5), ((3, 64), 0.97), ((1,), 1.0), ((0,), 0.5), ((128, 9), 0.02), ((17,), 0.3)])]
    assert decode_masks(encode_masks(masks)) == masks


@pytest.mark.parametrize("density", DENSITIES)
def test_chooser_picks_the_smallest_coder(density):
    bits = hashed_mask((48, 20), density)
    sizes = {n: s for n, s in mask_coder_sizes(bits).items() if s is not None}
    report = mask_report(encode_masks([CodedMask(0, bits)]))[0]
    best = min(sizes, key=lambda n: (sizes[n], MASK_CODERS[n].wire_id))
    assert report["coder"] == best
    # record = index, n (2-byte varint for 960), coder id, body
    assert report["bytes"] == 1 + len(write_uvarint(bits.size)) + 1 + sizes[best]


def test_trivial_masks_cost_one_byte_of_body():
    assert mask_coder_sizes(np.ones(1000, bool))["const"] == 1
    assert mask_coder_sizes(np.zeros(1000, bool))["const"] == 1
    assert encode_masks([CodedMask(2, np.zeros(0, bool))]) == bytes([1, 2, 0, 0, 1])
    assert encode_masks([]) == b"\x00"


def test_i_i_d_masks_cost_about_their_entropy():
    bits = hashed_mask((64, 64), 0.3)
    p = bits.mean()
    entropy_bytes = bits.size * -(p * np.log2(p) + (1 - p) * np.log2(1 - p)) / 8
    assert entropy_bytes <= mask_coder_sizes(bits)["bernoulli"] <= entropy_bytes + 12


def test_structured_masks_go_to_the_context_or_runs_coder():
    cols = np.zeros((32, 32), bool)
    cols[:, ::3] = True                  # whole columns pruned / kept: the bit above predicts all
    assert mask_report(encode_masks([CodedMask(0, cols)]))[0]["coder"] == "context"
    sparse = np.zeros(4096, bool)
    sparse[[5, 900, 3000]] = True        # three kept weights: positions are cheaper than words
    assert mask_report(encode_masks([CodedMask(0, sparse)]))[0]["coder"] == "runs"


def test_exact_bytes_are_pinned():
    small = np.array([[1, 0, 1, 1], [0, 1, 1, 1]], bool)
    payload = encode_masks([CodedMask(0, small), CodedMask(3, np.ones(5, bool))])
    # count 2 | index 0, n 8, runs: bit 0, k 0, m 2, 1 byte: gaps 1, 2 -> "010" "011" + "00"
    #         | index 3, n 5, const: bit 1            (docs/format.md, worked example)
    assert payload.hex() == "02" "00" "08" "03" "00" "00" "02" "01" "4c" "03" "05" "00" "01"
    assert decode_masks(payload) == [CodedMask(0, small.ravel()), CodedMask(3, np.ones(5, bool))]
    one = {c.name: encode_masks([CodedMask(0, small)], coders=[c]).hex() for c in MASK_CODERS.values()
           if c.name != "const"}
    assert one == {"bernoulli": "01" "00" "08" "01" "06" "01" "0000c01e",
                   "context": "01" "00" "08" "02" "04" "01" "00008076",
                   "runs": "01" "00" "08" "03" "00" "00" "02" "01" "4c"}
    # bigger payloads through every coder: the coded words are part of the format
    masks = [CodedMask(i, hashed_mask((24, 16), d, salt=i)) for i, d in enumerate((0.5, 0.2, 0.97))]
    parts = [encode_masks(masks, coders=[c]) for c in MASK_CODERS.values() if c.name != "const"]
    assert [len(p) for p in parts] == [125, 127, 123]
    assert hashlib.sha256(b"".join(parts)).hexdigest() == \
        "6b79b671f1a57c7c779c05bbc0977814d97c909ea4d728f81725fa084f87fd4a"


# --------------------------------------------------------------------------- malformed payloads


def _one(bits: np.ndarray, coder: str, index: int = 4) -> bytes:
    return encode_masks([CodedMask(index, bits)], coders=[MASK_CODERS[coder]])


@pytest.mark.parametrize("coder", ["const", "bernoulli", "context", "runs"])
def test_truncation_anywhere_is_a_format_error(coder):
    bits = np.ones(300, bool) if coder == "const" else hashed_mask((20, 15), 0.1)
    payload = _one(bits, coder)
    for cut in range(len(payload)):
        with pytest.raises(FormatError):
            decode_masks(payload[:cut])


@pytest.mark.parametrize("coder", ["const", "bernoulli", "context", "runs"])
def test_trailing_garbage_is_a_format_error(coder):
    bits = np.ones(300, bool) if coder == "const" else hashed_mask((20, 15), 0.1)
    with pytest.raises(FormatError, match="1 bytes left after 1 masks"):
        decode_masks(_one(bits, coder) + b"\x00")


def test_sizes_are_checked_before_decoding():
    payload = _one(hashed_mask((8, 8), 0.5), "bernoulli")
    with pytest.raises(FormatError, match=r"mask 0 \(tensor 4\): n=64 bits, the tensor has 65 elements"):
        decode_masks(payload, sizes=[1, 1, 1, 1, 65])
    with pytest.raises(FormatError, match=r"tensor 4\): no such tensor, the architecture has 3"):
        decode_masks(payload, sizes=[1, 1, 1])
    with pytest.raises(FormatError, match="exceeds the remaining budget of 10 bits"):
        decode_masks(payload, max_bits=10)


def test_indices_must_increase():
    a, b = CodedMask(3, np.ones(4, bool)), CodedMask(3, np.zeros(4, bool))
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_masks([a, b])
    payload = b"\x02" + encode_masks([a])[1:] + encode_masks([b])[1:]
    with pytest.raises(FormatError, match=r"mask 1 \(tensor 3\): indices must be strictly increasing"):
        decode_masks(payload)


def test_unknown_coder_and_bad_parameters():
    with pytest.raises(FormatError, match=r"tensor 0\): unknown mask coder id 9"):
        decode_masks(bytes([1, 0, 4, 9]))
    with pytest.raises(FormatError, match="const bit=2 outside"):
        decode_masks(bytes([1, 0, 4, 0, 2]))
    for ones in (0, 4):
        with pytest.raises(FormatError, match=rf"bernoulli ones={ones} outside \[1, 3\]"):
            decode_masks(bytes([1, 0, 4, 1, ones, 0]))
    with pytest.raises(FormatError, match="context L=3 does not divide n=4"):
        decode_masks(bytes([1, 0, 4, 2, 3, 0]))
    with pytest.raises(FormatError, match="context L=0"):
        decode_masks(bytes([1, 0, 4, 2, 0, 0]))
    with pytest.raises(FormatError, match=r"runs bit=2 / k=0 outside"):
        decode_masks(bytes([1, 0, 4, 3, 2, 0, 1, 0]))
    with pytest.raises(FormatError, match=r"runs m=5 outside \[1, 4\]"):
        decode_masks(bytes([1, 0, 4, 3, 1, 0, 5, 1, 0xFF]))
    with pytest.raises(FormatError, match="count=100"):
        decode_masks(bytes([100, 0]))


def test_bernoulli_count_must_match_the_decoded_bits():
    bits = hashed_mask((16, 16), 0.5)
    payload = bytearray(_one(bits, "bernoulli"))
    ones = int(bits.sum())
    assert ones == 126 and payload[5] == ones        # count, index, n (2 bytes), coder, then ones
    payload[5] = ones + 1
    with pytest.raises(FormatError, match=r"tensor 4\): (decoded \d+ kept weights|ANS words left over|corrupt)"):
        decode_masks(bytes(payload))


def test_corrupt_ans_words_are_refused():
    payload = _one(hashed_mask((16, 16), 0.4), "context")
    for flip in range(len(payload) - 8, len(payload)):
        bad = bytearray(payload)
        bad[flip] ^= 0x55
        try:
            out = decode_masks(bytes(bad))
        except FormatError as exc:
            assert "tensor 4" in str(exc)
        else:  # a flip can decode to other bits, never to an exception of another kind
            assert out[0].flat.size == 256
    assert payload[:6] == bytes([1, 4, 0x80, 2, 2, 16])   # count, index, n = 256, context, L = 16
    extra = payload[:6] + bytes([payload[6] + 1]) + payload[7:] + b"\x01\x00\x00\x00"   # one more word
    with pytest.raises(FormatError, match=r"tensor 4\).*(left over|corrupt)"):
        decode_masks(extra)


def test_runs_padding_and_positions_are_checked():
    # n = 4, positions of ones coded with k = 0: gap 0 -> "1"; padding must be zero
    good = bytes([1, 0, 4, 3, 1, 0, 1, 1, 0b10000000])
    assert np.array_equal(decode_masks(good)[0].flat, [1, 0, 0, 0])
    with pytest.raises(FormatError, match="only zero padding"):
        decode_masks(bytes([1, 0, 4, 3, 1, 0, 1, 1, 0b10000001]))
    with pytest.raises(FormatError, match="only zero padding"):
        decode_masks(bytes([1, 0, 4, 3, 1, 0, 1, 2, 0b10000000, 0]))
    # gap 4 ("00101") lands at position 4 >= n
    with pytest.raises(FormatError, match=r"runs position 4 of gap 0 outside \[0, 4\)"):
        decode_masks(bytes([1, 0, 4, 3, 1, 0, 1, 1, 0b00101000]))
    with pytest.raises(FormatError, match="ends inside gap 0"):
        decode_masks(bytes([1, 0, 4, 3, 1, 0, 1, 1, 0b00000000]))


def test_coded_mask_validation():
    with pytest.raises(ValueError, match="bool or 0/1"):
        CodedMask(0, np.array([0, 2]))
    with pytest.raises(ValueError, match="bool or 0/1"):
        CodedMask(0, np.array([0.5]))
    assert CodedMask(0, [1, 0]) == CodedMask(0, np.array([True, False]))


def test_masks_module_never_imports_torch():
    code = ("import sys, numpy as np; from nfcodec.bitstream import masks as m; "
            "p = m.encode_masks([m.CodedMask(0, np.arange(64).reshape(8, 8) % 3 == 0)]); m.decode_masks(p); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_context_rows_are_budgeted_per_payload():
    """A file may not make the decoder run millions of sequential row steps (found by fuzzing)."""
    from nfcodec.bitstream.masks import MAX_CONTEXT_ROWS, MASK_CODERS
    from nfcodec.bitstream.fields import write_uvarint

    n = MAX_CONTEXT_ROWS + 1
    body = write_uvarint(1) + write_uvarint(0)               # L = 1: one row per bit, no words
    payload = write_uvarint(1) + write_uvarint(0) + write_uvarint(n) + bytes([MASK_CODERS["context"].wire_id]) + body
    with pytest.raises(FormatError, match=rf"MASK mask 0 \(tensor 0\): {n} context rows exceed the {MAX_CONTEXT_ROWS} "
                                          rf"left of the payload's {MAX_CONTEXT_ROWS}"):
        decode_masks(payload)


def test_encoder_keeps_context_masks_within_the_row_budget(monkeypatch):
    import nfcodec.bitstream.masks as masks_mod

    monkeypatch.setattr(masks_mod, "MAX_CONTEXT_ROWS", 8)
    rows = np.tile(np.random.default_rng(0).random(64) < 0.5, (6, 1))   # every row like the one above
    payload = encode_masks([CodedMask(0, rows), CodedMask(1, rows)])
    coders = [m["coder"] for m in mask_report(payload)]
    assert coders[0] == "context" and coders[1] != "context"  # 6 + 6 rows > 8: the second falls back
    assert [m.flat.tolist() for m in decode_masks(payload)] == [rows.ravel().tolist()] * 2
