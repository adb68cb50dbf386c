"""Shared fixtures: tiny images and a fast encoder configuration (tests take seconds)."""
from __future__ import annotations

import numpy as np
import pytest

from nfc_testdata import FAST, GOLDEN, TINY_PNG  # noqa: F401  (shared constants)
from nfcodec.config import CodecConfig


@pytest.fixture(scope="session")
def tiny_image() -> np.ndarray:
    from nfcodec.media import load_image

    return load_image(TINY_PNG)


@pytest.fixture(scope="session")
def tiny_encoded(tiny_image):
    """One closed-loop encode of the tiny image, shared by the tests that only read it."""
    import nfcodec

    return nfcodec.encode(tiny_image, config=FAST)


@pytest.fixture(scope="session")
def fast() -> CodecConfig:
    return FAST
