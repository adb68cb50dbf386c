"""The arm entropy model (wire id 7): the integer context network against a plain-Python reference,
round trips, the network shared by a payload's records, pinned bytes, malformed input, fuzzing."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfcodec.bitstream import ENTROPY_MODELS, CodedTensor, FormatError, decode_tensors, encode_tensors, tensor_report, write_uvarint
from nfcodec.bitstream import causal
from nfcodec.bitstream.arm import ARM_NEIGHBOURS, ArmNet, ArmParams, arm_context

from plane_model_checks import (GOLDEN_PLANES, ROUND_TRIP_SHAPES, round_trip_values, check_golden_bytes, N_SHAPES, check_every_truncation, check_residuals_in_range, check_word_tampering,
                               one_record, smooth, sv)

MODEL = ENTROPY_MODELS["arm"]


def _net(H: int = 3, F: int = 5, seed: int = 0, scale: int = 40) -> ArmNet:
    rng = np.random.default_rng(seed)
    n = 16 * H + H * H + 2
    return ArmNet.from_values(F, H, rng.integers(-scale, scale + 1, n))


def _net_bytes(net: ArmNet) -> bytes:
    return bytes((net.hidden, net.F)) + b"".join(sv(int(v)) for v in net.values())


def _params(c=1, h=4, w=5, net: ArmNet | None = None, lo_r=-2, K_r=5, off=0, js=(1000,), B=None, flag=None) -> bytes:
    """An arm record's params built by hand (``net`` None: inherited; ``flag``/``B`` override)."""
    B = len(js) if B is None else B
    flag = (0 if net is None else 1) if flag is None else flag
    return (write_uvarint(c) + write_uvarint(h) + write_uvarint(w) + bytes((flag,))
            + (_net_bytes(net) if net is not None else b"")
            + sv(lo_r) + write_uvarint(K_r) + bytes((off, B)) + b"".join(struct.pack("<H", j) for j in js))


def _record(n: int, params: bytes, words: bytes = b"", n_words=None) -> bytes:
    return one_record(7, n, params, words, n_words)


def _reference_context(planes, net: ArmNet):
    """The normative definition (docs/format.md §4.1, arm) in plain Python integers."""
    F, top = net.F, 2 ** (net.F + 8)
    w1, b1, w2, b2, w3, b3 = (a.tolist() for a in (net.w1, net.b1, net.w2, net.b2, net.w3, net.b3))
    c, h, w = len(planes), len(planes[0]), len(planes[0][0])
    out = [[[None] * w for _ in range(h)] for _ in range(c)]
    for k in range(c):
        for y in range(h):
            for x in range(w):
                xs = [min(max(int(planes[k][y + dy][x + dx]) if 0 <= y + dy < h and 0 <= x + dx < w else 0, -4096), 4096)
                      for dy, dx in ARM_NEIGHBOURS]
                h1 = [min(max(sum(a * b for a, b in zip(row, xs)) + bias, 0), top) for row, bias in zip(w1, b1)]
                h2 = [min(max((sum(a * b for a, b in zip(row, h1)) + bias * 2**F) // 2**F, 0), top)
                      for row, bias in zip(w2, b2)]
                o = [sum(a * b for a, b in zip(row, h2)) + bias * 2**F for row, bias in zip(w3, b3)]
                s = 2 * F - 2
                m = (o[0] + 2 ** (s - 1)) // 2**s
                out[k][y][x] = (m // 4, m % 4, o[1] // 2**s)
    return out


def _round_trip(values: np.ndarray, net: ArmNet) -> bytes:
    t = CodedTensor(3, 17, values, shape=values.shape)
    payload = encode_tensors([t], models=["arm"], hints={"arm": net})
    (out,) = decode_tensors(payload)
    assert out == t and np.array_equal(out.symbols, values.reshape(-1))
    return payload


def _identity_net(w3_mu: int = 4, b3_scale: int = 0) -> ArmNet:
    """H = 1, F = 2: h = relu(W), mean = w3_mu / 4 * h, log2 scale = b3_scale."""
    v = np.zeros(16 + 1 + 2, dtype=np.int64)
    v[0] = 4                 # w1[0, W] = 1.0
    v[13] = 4                # w2[0, 0] = 1.0
    v[15] = w3_mu            # w3[0, 0]
    v[18] = b3_scale         # b3[1]
    return ArmNet.from_values(2, 1, v)


def test_context_hand_computed():
    planes = np.array([[[3, 0, -3, 0]]])
    mu, phi, q = arm_context(planes, _identity_net())
    # (0, 1): W = 3: a1 = 12, h1 = 12, a2 = 48, h2 = 12, o_0 = 48, m = (48 + 2) >> 2 = 12 quarters = 3.0
    # (0, 3): W = -3: h1 = 0, so the mean is 0
    assert mu.tolist() == [[[0, 3, 0, 0]]] and phi.tolist() == [[[0, 0, 0, 0]]] and q.tolist() == [[[0] * 4]]
    mu, phi, q = arm_context(planes, _identity_net(w3_mu=5, b3_scale=-3))
    # w3 = 5/4: o_0 = 60, m = 62 >> 2 = 15 quarters = 3.75; o_1 = -3 << 2 = -12, q = -12 >> 2 = -3
    assert (mu[0, 0, 1], phi[0, 0, 1], q[0, 0, 1]) == (3, 3, -3)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 7), (2, 5, 4), (1, 9, 2)])
@pytest.mark.parametrize("H, F", [(1, 2), (3, 5), (8, 9)])
def test_context_matches_the_reference(shape, H, F):
    planes = np.random.default_rng(sum(shape)).integers(-40, 41, shape)
    net = _net(H, F, seed=H + F, scale=3 * 2**F)
    got = np.stack(arm_context(planes, net), axis=-1).tolist()
    assert got == [[[list(t) for t in row] for row in plane] for plane in _reference_context(planes.tolist(), net)]


def test_context_at_the_extremes_does_not_overflow():
    """int32 symbols (clamped to +-4096), the largest weights and hidden width: int64 holds."""
    planes = np.array([[[2**31 - 1, -(2**31), 2**31 - 1, 5], [-(2**31), 2**31 - 1, -(2**31), 7], [1, 2, 3, 4]]])
    H = 32
    v = np.where(np.arange(16 * H + H * H + 2) % 3 == 0, -(2**15 - 1), 2**15 - 1)
    for F in (2, 15):
        net = ArmNet.from_values(F, H, v)
        got = np.stack(arm_context(planes, net), axis=-1).tolist()
        assert got == [[[list(t) for t in r] for r in p] for p in _reference_context(planes.tolist(), net)]


@pytest.mark.parametrize("shape", ROUND_TRIP_SHAPES)
@pytest.mark.parametrize("kind", ["smooth", "laplace"])
def test_round_trip(shape, kind):
    values = round_trip_values(shape, kind)
    assert tensor_report(_round_trip(values, _net(4, 6, scale=60)))[0]["model"] == "arm"


def test_round_trip_edge_values():
    net = _net(2, 4)
    for values in (np.full((1, 4, 4), 9), np.array([[[0, 1] * 4, [1, 0] * 4] * 2]) * 1000):
        values = values.astype(np.int32)
        params = MODEL.fit(values.reshape(-1), values.shape, hint=net)
        words = MODEL.encode_words(params, values.reshape(-1))
        payload = _record(values.size, MODEL.write_params(params), np.asarray(words, "<u4").tobytes())
        assert np.array_equal(decode_tensors(payload)[0].symbols, values.reshape(-1))


def test_small_pieces_code_the_same_symbols(monkeypatch):
    values = np.round(np.random.default_rng(5).laplace(0, 4, (2, 12, 20))).astype(np.int32)
    whole = _round_trip(values, _net())
    monkeypatch.setattr(causal, "CAUSAL_PIECE_FLOATS", 1)     # one symbol per constriction call
    assert _round_trip(values, _net()) == whole


def test_the_network_is_stored_once_per_payload():
    """The first arm record carries the network; the later ones of the payload reuse it."""
    rng = np.random.default_rng(3)
    planes = [np.round(np.cumsum(rng.laplace(0, 1, (h, w)), axis=1) / 2).astype(np.int32) for h, w in ((24, 32), (12, 16))]
    net = _net(4, 6, scale=60)
    tensors = [CodedTensor(i, 0, q, shape=q.shape) for i, q in enumerate(planes)]
    payload = encode_tensors(tensors, models=["arm"], hints={"arm": net})
    rows = tensor_report(payload)
    assert [r["model"] for r in rows] == ["arm", "arm"]
    net_size = len(_net_bytes(net))
    assert rows[0]["param_bytes"] > net_size > rows[1]["param_bytes"]
    assert decode_tensors(payload) == tensors
    # each alone carries its own network
    alone = [encode_tensors([t], models=["arm"], hints={"arm": net}) for t in tensors]
    assert tensor_report(alone[1])[0]["param_bytes"] == rows[1]["param_bytes"] + net_size
    # the second record alone (it reuses a network) is refused
    with pytest.raises(FormatError, match="reuses a network, but no earlier arm record of the payload carries one"):
        decode_tensors(b"\x01" + payload[len(alone[0]):])


def test_without_a_network_arm_is_never_chosen():
    values = smooth(16, 24)
    t = CodedTensor(0, 0, values, shape=values.shape)
    assert MODEL.fit(values.reshape(-1), values.shape) is None
    assert encode_tensors([t]) == encode_tensors([t], hints={})
    assert tensor_report(encode_tensors([t]))[0]["model"] != "arm"
    assert tensor_report(encode_tensors([t], models=["arm"], hints={"arm": _net()}))[0]["model"] == "arm"


def test_a_matching_network_beats_causal4():
    """Latents whose mean is a non-linear function of the context (0.9 max(W, N)): a network that
    computes it codes them in fewer bytes than the best linear predictor (causal4)."""
    rng = np.random.default_rng(2)
    h, w = 48, 64
    q = np.zeros((h, w), dtype=np.int64)
    for y in range(h):
        for x in range(w):
            west, north = (q[y, x - 1] if x else 0), (q[y - 1, x] if y else 0)
            spike = 8 if rng.random() < 0.05 else 0
            q[y, x] = np.clip(round(0.9 * max(west, north) + rng.laplace(0, 0.6)) + spike, 0, 40)
    v = np.zeros(16 * 2 + 4 + 2, dtype=np.int64)
    v[0], v[1], v[13] = 64, -64, 64          # F = 6: h1_0 = relu(W - N), h1_1 = relu(N)
    v[26], v[29] = 64, 64                    # w2: identity
    v[32], v[33] = 58, 58                    # mean = 0.9 (h1_0 + h1_1) = 0.9 max(W, N) for N >= 0
    net = ArmNet.from_values(6, 2, v)
    t = CodedTensor(0, 0, q.astype(np.int32), shape=q.shape)
    sizes = {m: len(encode_tensors([t], models=[m], hints={"arm": net})) for m in ("causal4", "arm")}
    assert sizes["arm"] < 0.95 * sizes["causal4"], sizes
    assert decode_tensors(encode_tensors([t], models=["arm"], hints={"arm": net})) == [t]


def test_golden_bytes():
    net = ArmNet.from_values(4, 1, [12, 6, -3, 2, 0, 1, 0, 0, 0, 0, 0, 0, 3, 16, -2, 14, 5, 0, -1])
    params = ArmParams(1, 4, 5, net, True, -3, 7, 1, (9000, 3000, 1500))
    check_golden_bytes(MODEL, params, GOLDEN_HEX)


GOLDEN_HEX = (
    "01" "00" "00" "14" "07"          # count, index 0, step 0, n = 20, model 7
    "01" "04" "05" "01"               # c, h, w, net inline
    "01" "04"                         # H = 1, F = 4
    "180c05040002000000000000"        # W1: 12 6 -3 2 0 1 0 0 0 0 0 0 (svarints)
    "06" "20" "03" "1c0a" "0001"      # b1 = 3, W2 = 16, b2 = -2, W3 = (14, 5), b3 = (0, -1)
    "05" "07"                         # lo_r = -3, K_r = 7
    "01" "03" "2823" "b80b" "dc05"    # off = 1, B = 3, j = 9000 3000 1500
    "03" "41585030" "191916ed" "01000000")   # 3 words

_NET = _net(2, 4)


@pytest.mark.parametrize("payload, match", [
    (_record(20, _params(c=1, h=4, w=4, net=_NET)), r"c=1 h=4 w=4: c\*h\*w must equal n=20"),
    (_record(2**18, _params(c=1, h=1, w=2**18, net=_NET)), "wavefronts"),
    (_record(20, _params(net=_NET, flag=2)), "net=2, must be 0 or 1"),
    (_record(20, _params()), "reuses a network, but no earlier arm record"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x00\x05"), r"H=0 F=5: H must be in \[1, 32\], F in \[2, 15\]"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x21\x05"), r"H=33 F=5"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x01\x01"), r"H=1 F=1"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x01\x10"), r"H=1 F=16"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x01\x05" + sv(2**15)), r"weight 0=32768 outside \(-2\*\*15, 2\*\*15\)"),
    (_record(20, write_uvarint(1) + b"\x04\x05\x01\x01\x05" + sv(0) * 5 + sv(-(2**15))), r"weight 5=-32768 outside"),
    (_record(20, _params(net=_NET, B=0, js=())), r"B=0 outside \[1, 32\]"),
    (_record(20, _params(net=_NET, js=(1000,) * 33)), r"B=33 outside \[1, 32\]"),
    (_record(20, _params(net=_NET, js=(1000, 0))), r"arm j_1=0 outside \[1, 16383\]"),
    (_record(20, _params(net=_NET, js=(16384,))), r"arm j_0=16384 outside \[1, 16383\]"),
    (_record(20, _params(net=_NET, K_r=4097)), r"K_r=4097 outside \[1, 4096\]"),
    (_record(20, _params(net=_NET, K_r=1), b"\x01\x00\x00\x00"), "must be 0 when nothing is coded"),
    (_record(20, _params(net=_NET), bytes(4)), "corrupt ANS words"),
    (_record(4, _params(c=1, h=2, w=2, net=_identity_net(), lo_r=2**31 - 1, K_r=1)), "outside the int32 range"),
])
def test_malformed(payload, match):
    with pytest.raises(FormatError, match=match):
        decode_tensors(payload)


def test_every_truncation_is_a_format_error():
    check_every_truncation(_round_trip(GOLDEN_PLANES, _net(2, 4)))


def test_words_left_over_and_corrupt_words():
    check_word_tampering(_round_trip(smooth(6, 7, amp=12), _net(2, 4)), 42)


# Random params bytes: tests/bitstream/test_entropy.py fuzzes every registered model.


@given(
    dims=st.sampled_from(N_SHAPES),
    H=st.integers(1, 4),
    F=st.integers(2, 15),
    seed=st.integers(0, 2**16),
    lo_r=st.integers(-(2**31), 2**31 - 20),
    K_r=st.integers(1, 20),
    off=st.integers(0, 255),
    js=st.lists(st.integers(1, 16383), min_size=1, max_size=32),
    words=st.lists(st.integers(0, 2**32 - 1), max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_fuzz_valid_params_random_words(dims, H, F, seed, lo_r, K_r, off, js, words):
    c, h, w = dims
    net = _net(H, F, seed, scale=2**15 - 1)
    payload = _record(c * h * w, _params(c, h, w, net, lo_r, K_r, off, tuple(js)), struct.pack(f"<{len(words)}I", *words))
    check_residuals_in_range(payload, dims, lambda planes: arm_context(planes, net)[0], lo_r, K_r)
