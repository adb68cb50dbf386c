"""The --bpp trim of a latent grid over its budget: single latents moved across their rounding
boundary, nearest it first (nfcodec.grid_encoder._trim; docs/grid.md "Trimming the file")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nfcodec
from nfcodec import grid_encoder as ge
from nfcodec.grid_arm import ArmTorchNet, arm_step_bits, context_rows, laplace2_bits
from nfcodec.media import load_image
from nfcodec.metrics import psnr

from nfc_testdata import TINY_GRID, TINY_PNG


def _plane_bits(q: np.ndarray, net: ArmTorchNet) -> float:
    t = torch.from_numpy(q.astype(np.float32))
    with torch.no_grad():
        return laplace2_bits(net(context_rows(t)), t.reshape(-1)).sum().item()


def _moved_bits(q: np.ndarray, step: np.ndarray, net: ArmTorchNet) -> np.ndarray:
    """The plane's bit change when each latent alone moves by its step, by counting again."""
    base, out = _plane_bits(q, net), np.empty(q.size)
    for i in range(q.size):
        moved = q.copy()
        moved.reshape(-1)[i] += step.reshape(-1)[i]
        out[i] = _plane_bits(moved, net) - base
    return out


def test_step_bits_own_symbol_exact_and_neighbours_to_first_order():
    """arm_step_bits against moving each latent alone and counting the whole plane's bits again."""
    torch.manual_seed(1)
    net = ArmTorchNet(8)
    with torch.no_grad():   # a network that reads its contexts more than a fresh one does
        net.l1.weight.mul_(4)
    rng = np.random.default_rng(2)
    q = np.round(rng.laplace(0, 1.5, (10, 12))).astype(np.int32)
    step = rng.choice([-1, 1], size=q.shape).astype(np.int32)
    est, true = arm_step_bits(q, step, net), _moved_bits(q, step, net)
    assert est.shape == (q.size,)
    # the neighbours' part is first order: close, not equal (measured: a mean error of 0.024 bits for
    # a mean change of 1.37; the own symbol's change alone misses by 0.074; all 120 signs agree)
    t, s = torch.from_numpy(q.astype(np.float32)), torch.from_numpy(step.astype(np.float32)).reshape(-1)
    with torch.no_grad():
        out = net(context_rows(t))
        own = (laplace2_bits(out, t.reshape(-1) + s) - laplace2_bits(out, t.reshape(-1))).numpy()
    err = np.mean(np.abs(est - true))
    assert err < 0.05 * np.mean(np.abs(true)) and err < 0.5 * np.mean(np.abs(own - true)), (err, np.mean(np.abs(own - true)))
    assert np.mean(np.sign(est) == np.sign(true)) > 0.95
    # a net that ignores the contexts: the estimate is the own symbol's change, exactly
    with torch.no_grad():
        net.l1.weight.zero_()
    np.testing.assert_allclose(arm_step_bits(q, step, net), _moved_bits(q, step, net), atol=2e-3)


#: A tiny fit with the context network (the trim ranks its moves by it).
TRIM_GRID = TINY_GRID.replace(grid_lambda=0.0, grid_arm=8, grid_arm_steps=300)


@pytest.fixture(scope="module")
def fitted():
    """A tiny --bpp encode, captured just before its budget search (coder, bit depth, image, network)."""
    box = {}
    meet = ge._meet_budget

    def capture(coder, bits, max_bytes, image, net=None):
        box.update(coder=coder, bits=bits, image=image, net=net)
        return meet(coder, bits, max_bytes, image, net)

    big = np.kron(load_image(TINY_PNG), np.ones((2, 2, 1), np.uint8))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ge, "_meet_budget", capture)
        box["result"] = nfcodec.encode(big, config=TRIM_GRID, bpp=2.0)
    return box


def test_trim_moves_latents_and_beats_the_latent_scale(fitted):
    coder, bits, image, net = fitted["coder"], fitted["bits"], fitted["image"], fitted["net"]
    assert net is not None and "moved" in fitted["result"].rate_control
    coder.set_symbols(None)
    full = coder.data(1.0, bits)
    budget = int(0.97 * len(full))            # a file 3% over its budget at delta 1
    scaled, by_scale = ge._meet_budget(coder, bits, budget, image)   # no network: the scale alone
    assert by_scale > 1.0 and coder.moved() == 0 and len(scaled) <= budget
    trimmed = ge._trim(coder, bits, budget, net)
    moved = coder.moved()
    assert trimmed is not None and ge.TRIM_FILL * budget <= len(trimmed) <= budget, (len(trimmed), budget)
    assert 0 < moved < sum(q.size for q in coder.latents)
    # each moved latent went one step, to the side of the rounding boundary its trained value is on
    for q, y in zip(coder.symbols, coder.latents):
        r = np.rint(y)
        d = q - r
        assert set(np.unique(d)) <= {-1, 0, 1}
        assert np.all(np.sign(y - r)[d != 0] == d[d != 0])
    p_trim = psnr(ge.reconstruct(trimmed)[0], image)
    p_scale = psnr(ge.reconstruct(scaled)[0], image)
    # measured: 256 moves, 994 of 995 bytes, 28.63 dB; the scale (delta 1.055) 28.56 dB
    assert p_trim > p_scale, (p_trim, p_scale)
    # the budget search with the network keeps the better file: the moves, at delta 1
    coder.set_symbols(None)
    data, delta = ge._meet_budget(coder, bits, budget, image, net)
    assert data == trimmed and delta == 1.0 and coder.moved() == moved
    # with TRIM = "delta" the scale alone, as before
    coder.set_symbols(None)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ge, "TRIM", "delta")
        assert ge._meet_budget(coder, bits, budget, image, net) == (scaled, by_scale)
    assert coder.moved() == 0
