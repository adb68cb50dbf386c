"""Exact decoding arithmetic (format 2.0): pinned tables, layers and two backends.

``docs/format.md`` (section 6) specifies the arithmetic; :mod:`.tables` holds its constants
and tables, :mod:`.layers` the per-layer constants and file checks, and two backends run it:

* ``numpy`` (:mod:`.numpy_ops`): the reference decoder, no torch; threads over tiles.
* ``torch`` (:mod:`.torch_ops`): CPU or CUDA.

Both produce the same bytes for every file (tests compare them on every golden file and on
fresh encodes of every architecture x representation).  Programs (:mod:`nfcodec.archs`) are
written once against the backend primitives: ``asarray``, ``dense``, ``dense_rows``, ``conv``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BACKENDS", "get_ops"]

#: Backend names accepted by the decoder (``auto`` picks one of them, see nfcodec.decoder).
BACKENDS = ("numpy", "torch")


def get_ops(backend: str, device: str | None = None) -> Any:
    """The primitives of ``backend`` (``numpy`` or ``torch``; ``device`` for torch: cpu, cuda, cuda:N)."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            from ..errors import ConfigError

            raise ConfigError(f"the numpy backend runs on the CPU only (device={device!r}); use --backend torch")
        from .numpy_ops import NumpyOps

        return NumpyOps()
    if backend == "torch":
        from .torch_ops import TorchOps

        return TorchOps(_torch_device(device or "cpu"))
    from ..errors import ConfigError

    raise ConfigError(f"unknown decoder backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")


def _torch_device(name: str) -> Any:
    from ..devices import resolve_device

    return resolve_device("cpu" if name == "auto" else name)
