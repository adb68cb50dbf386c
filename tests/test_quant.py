import numpy as np
import pytest

from nfcodec import quant


def test_step_table_is_exact_and_decreasing():
    steps = np.asarray(quant.STEP_TABLE)
    assert steps[0] == 1.0 and steps[7] == 9 / 16 and steps[8] == 0.5
    assert steps[-1] == 9 * 2.0**-27
    assert np.all(np.diff(steps) < 0)
    assert np.all(steps.astype(np.float32).astype(np.float64) == steps)   # exact in float32


def test_step_value_range():
    with pytest.raises(ValueError, match=r"step index 192 outside \[0, 191\]"):
        quant.step_value(192)


@pytest.mark.parametrize("bits", [4, 8, 10, 12])
def test_step_index_keeps_symbols_in_bits(bits):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, 5000)
    idx = quant.step_index_for(float(np.abs(w).max()), bits)
    q = quant.quantize(w, idx)
    limit = 2 ** (bits - 1) - 1
    assert limit * 0.8 <= np.abs(q).max() <= limit * 1.1
    err = np.abs(quant.dequantize(q, idx) - w).max()
    assert err <= quant.STEP_TABLE[idx] / 2 + 1e-7


def test_dequantize_is_exact_product():
    q = np.array([-524287, -3, 0, 5, 524287], dtype=np.int32)
    for idx in (0, 13, 100, 191):
        got = quant.dequantize(q, idx).astype(np.float64)
        assert np.array_equal(got, q.astype(np.float64) * quant.STEP_TABLE[idx])


def test_quantize_refuses_overflow():
    with pytest.raises(ValueError, match="too fine"):
        quant.quantize(np.array([1.0]), 191)


def test_zero_tensor_gets_finest_step():
    assert quant.step_index_for(0.0, 8) == quant.N_STEPS - 1
