"""Torch device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``), checked before any work starts."""
from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a device; ``auto`` takes CUDA when present.

    Raises:
        ConfigError: not a device name, no CUDA GPU, or no GPU with that index.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device={name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: only cpu and cuda devices are supported")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} requested but no CUDA GPU is available")
        count = torch.cuda.device_count()
        if dev.index is not None and not 0 <= dev.index < count:
            raise ConfigError(f"device={name!r}: no such GPU (this machine has {count}: cuda:0..cuda:{count - 1})")
    return dev
