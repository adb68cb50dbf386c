"""The XFRM transforms (nfcodec/transforms.py, docs/transforms.md): golden vectors, exactness, params."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nfcodec import transforms as T
from nfcodec.bitstream.errors import FieldRangeError, FormatError
from nfcodec.bitstream.headers import TRANSFORMS as WIRE, TransformRecord
from nfcodec.exact.rng import raw_reference

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------ golden
PERM_GOLDEN = {
    (0, 16): [5, 14, 8, 10, 15, 0, 6, 3, 9, 7, 13, 12, 4, 11, 2, 1],
    (1, 16): [2, 8, 15, 14, 10, 12, 9, 1, 13, 4, 7, 5, 11, 6, 0, 3],
    (0, 35): [5, 27, 14, 8, 10, 33, 29, 15, 0, 6, 26, 32, 23, 3, 20, 18, 9, 7, 34, 13, 12, 17, 4, 19, 24, 11, 2,
              25, 30, 1, 21, 31, 16, 22, 28],
    (1, 35): [27, 2, 16, 8, 33, 15, 14, 24, 28, 10, 22, 12, 9, 1, 13, 4, 34, 25, 31, 7, 26, 5, 11, 20, 18, 6, 32,
              29, 0, 23, 17, 3, 30, 21, 19],
}

# SHA-256 of the (forward, inverse) gamma tables (256 bytes each).
GAMMA_GOLDEN = {
    250: ("d967b32fd49ee7b95ce096d233ccd48273b4228115881edb01c716a28a18ec53",
          "634c9237f2578a74e31ed4c7e48928d282410b389dfad6d53d57cdbc8511c9fe"),
    500: ("b10c349fd56b298262a26a52ea4c628810218deb2ff4a6fd82266e3da41322f6",
          "e5583554341bbe2e819280ef85cc0a9bcca1c92ebf83184ec2d05fc53ceb3c2b"),
    1000: ("40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880",
           "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880"),
    1500: ("93d86e2a25c04543f261559f8ac85c5b829bea5e7b439e98470a4e00a8026593",
           "c40ea5740de41a213cd3df6a32ccaa8b7f2723c2a7b8f9a1de536b8909b669c8"),
    2000: ("699a1f6fd05f26b89ca4d1de4a7c675cbfdec7bf67078ac23f7d4c08e82c7c59",
           "8b53b75b1ff22e1d10c950a571f9f8fc47191aa86e3b550846d52d45287d1144"),
    3000: ("0f836f2298ea5aa8d3943ea255cbb105c0ad2faee2ae6483fd4c280128ab6378",
           "fb91f1d2d6ca7103c337d58d4119fc0da67d59ebdb52a161f8c3f647e55cbb65"),
    4000: ("159d20db913bd01620a88b1300a5a5913559e740433a474bdebe6151b17c642c",
           "a140ae5f04fc58460c906c71e2360a31b4516ae5759cbd4bf4d4ff4f8a0ea24b"),
}

#: Largest |inverse(forward(x)) - x| of gamma (the documented round-trip bound, docs/transforms.md).
GAMMA_MAX_ERR = {250: 2, 500: 1, 1000: 0, 1500: 2, 2000: 6, 3000: 16, 4000: 27}


def test_wire_table_matches_registry():
    assert dict(WIRE) == {0: "identity", 1: "permute", 2: "gamma"}
    assert {k: t.name for k, t in T.TRANSFORMS.items()} == dict(WIRE)


@pytest.mark.parametrize("seed,n", sorted(PERM_GOLDEN))
def test_permutation_golden(seed, n):
    assert T.permutation(seed, n).tolist() == PERM_GOLDEN[(seed, n)]


@pytest.mark.parametrize("seed,n", [(0, 16), (1, 35), (2**32 - 1, 100), (12345, 1)])
def test_permutation_matches_reference(seed, n):
    """The spec in pure Python: sort positions by (Philox key, position)."""
    keys = raw_reference(seed, T.PERMUTE_STREAM, n)
    ref = sorted(range(n), key=lambda p: (keys[p], p))
    perm = T.permutation(seed, n)
    assert perm.tolist() == ref
    assert T.inverse_permutation(seed, n)[perm].tolist() == list(range(n))


def test_permutation_stream_constant():
    assert T.PERMUTE_STREAM == 0x5846524D00000001


@pytest.mark.parametrize("param", sorted(GAMMA_GOLDEN))
def test_gamma_tables_golden(param):
    fwd, inv = T.gamma_tables(param)
    assert fwd.dtype == inv.dtype == np.uint8 and fwd.shape == inv.shape == (256,)
    assert (hashlib.sha256(fwd.tobytes()).hexdigest(), hashlib.sha256(inv.tobytes()).hexdigest()) == GAMMA_GOLDEN[param]


def test_gamma_2_table_values():
    fwd, inv = T.gamma_tables(2000)
    # round(x^2 / 255): 0 for x <= 11 (121/255 < 1/2), 1 from x = 12 (144/255 > 1/2)
    assert fwd[:13].tolist() == [0] * 12 + [1]
    assert fwd[255] == 255 and fwd[128] == round(128 * 128 / 255)
    assert inv[0] == 6          # mean of 0..11 = 5.5, rounded half up
    assert inv[255] == 255


@pytest.mark.parametrize("param", [250, 333, 500, 999, 1001, 1500, 2000, 2718, 3000, 4000])
def test_power_table_against_float(param):
    """The exact table agrees with float pow away from rounding ties (which it decides exactly)."""
    e = Fraction(param, 1000)
    for table, ex in ((T.power_table(e), param / 1000), (T.power_table(1 / e), 1000 / param)):
        v = 255 * (np.arange(256) / 255) ** ex
        clear = np.abs(v - np.floor(v) - 0.5) > 1e-9
        assert (table[clear] == np.floor(v[clear] + 0.5)).all()
        assert table[0] == 0 and table[255] == 255
        assert (np.diff(table.astype(int)) >= 0).all()


@pytest.mark.parametrize("param", sorted(GAMMA_MAX_ERR))
def test_gamma_roundtrip_bound(param):
    err = T.gamma_roundtrip_error(param)
    assert int(np.abs(err).max()) == GAMMA_MAX_ERR[param]
    fwd, inv = T.gamma_tables(param)
    assert (np.diff(inv.astype(int)) >= 0).all()   # the inverse is monotone
    # every value the forward reaches maps back into its own preimage
    for y in np.unique(fwd):
        assert fwd[inv[y]] == y


def test_gamma_darkens():
    fwd, _ = T.gamma_tables(2000)
    x = np.arange(256)
    assert (fwd <= x).all() and (fwd[1:255] < x[1:255]).any()
    bright, _ = T.gamma_tables(500)
    assert (bright >= x).all()


def test_tables_computed_on_any_machine_without_float():
    """The table code path is integer-only: the same bytes in a fresh interpreter."""
    code = ("import hashlib; from nfcodec import transforms as T; f, i = T.gamma_tables(2718); "
            "print(hashlib.sha256(f.tobytes() + i.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    f, i = T.gamma_tables(2718)
    assert out.strip() == hashlib.sha256(f.tobytes() + i.tobytes()).hexdigest()


# --------------------------------------------------------------------------------------- round trips
def _frames(t=3, h=7, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_permute_exact_roundtrip(seed):
    x = _frames()
    rec = T.record_for("permute", seed)
    y = T.apply_forward(x, rec)
    assert y.shape == x.shape and y.dtype == np.uint8 and not np.array_equal(x, y)
    assert np.array_equal(T.apply_inverse(y, rec), x)
    # every frame gets the same permutation; one frame inverts alone (random access)
    for k in range(x.shape[0]):
        assert np.array_equal(T.apply_inverse(y[k], rec, frame_index=k), x[k])
    # the multiset of pixels is kept
    assert sorted(map(tuple, y[0].reshape(-1, 3))) == sorted(map(tuple, x[0].reshape(-1, 3)))


def test_permute_layout():
    """fitted[p] = original[perm[p]] in row-major pixel order."""
    x = _frames(t=1, h=4, w=4)[0]
    y = T.apply_forward(x, T.record_for("permute", 0))
    perm = PERM_GOLDEN[(0, 16)]
    assert np.array_equal(y.reshape(16, 3), x.reshape(16, 3)[perm])


def test_render_positions_random_access():
    x = _frames(t=1, h=7, w=5)[0]
    for rec in (T.record_for("permute", 9), T.record_for("gamma", 2000), T.IDENTITY_RECORD, None):
        y = T.apply_forward(x, rec)
        full = T.apply_inverse(y, rec)
        wanted = np.array([0, 3, 34, 17, 17])
        pos = T.render_positions(rec, 7, 5, wanted)
        got = T.inverse_values(y.reshape(-1, 3)[pos], rec)
        assert np.array_equal(got, full.reshape(-1, 3)[wanted])
    with pytest.raises(ValueError):
        T.render_positions(T.record_for("permute", 9), 7, 5, np.array([35]))


def test_gamma_roundtrip_on_frames():
    x = _frames(h=16, w=16)
    rec = T.record_for("gamma", 2000)
    y = T.apply_forward(x, rec)
    back = T.apply_inverse(y, rec)
    assert np.abs(back.astype(int) - x.astype(int)).max() <= GAMMA_MAX_ERR[2000]
    assert np.array_equal(T.apply_forward(x[0], rec), y[0])


def test_identity_and_none():
    x = _frames()
    for rec in (T.IDENTITY_RECORD, None, T.record_for("identity")):
        y = T.apply_forward(x, rec)
        assert np.array_equal(y, x) and y is not x
        assert np.array_equal(T.apply_inverse(y, rec), x)


def test_bad_frames():
    with pytest.raises(ValueError):
        T.apply_forward(np.zeros((4, 4, 3), np.float32), T.record_for("gamma", 2000))
    with pytest.raises(ValueError):
        T.apply_inverse(np.zeros((4, 4), np.uint8), T.record_for("permute", 1))


# ------------------------------------------------------------------------------------------- params
def test_record_for_and_pack():
    rec = T.record_for("gamma", 2000)
    assert rec == TransformRecord(transform=2, param=2000)
    assert TransformRecord.unpack(rec.pack()) == rec and len(rec.pack()) == 5
    assert T.record_for(1, 7) == TransformRecord(transform=1, param=7)
    assert T.check_record(rec).name == "gamma"


@pytest.mark.parametrize("name,param", [("gamma", 249), ("gamma", 4001), ("gamma", 0), ("identity", 1),
                                        ("permute", 2**32), ("permute", -1)])
def test_param_errors(name, param):
    with pytest.raises(FieldRangeError) as err:
        T.record_for(name, param)
    msg = str(err.value)
    assert "\n" not in msg and "XFRM.param" in msg and str(param) in msg
    assert isinstance(err.value, FormatError)


def test_check_record_from_file():
    rec = TransformRecord.unpack(bytes([2]) + (5000).to_bytes(4, "little"))   # record-level valid
    with pytest.raises(FieldRangeError, match=r"XFRM.param=5000 outside \[250, 4000\] for transform gamma"):
        T.check_record(rec)
    with pytest.raises(FieldRangeError, match="XFRM.param=5000 outside"):
        T.apply_inverse(_frames(), rec)


def test_unknown_transform():
    with pytest.raises(FieldRangeError, match="XFRM.transform=9"):
        T.get_transform(9)
    with pytest.raises(ValueError, match="unknown transform 'sepia'"):
        T.record_for("sepia", 0)
    with pytest.raises(FormatError):
        TransformRecord.unpack(bytes([9, 0, 0, 0, 0]))


def test_module_needs_no_torch():
    code = "import sys, nfcodec.transforms; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "False"
