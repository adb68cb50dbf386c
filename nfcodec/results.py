"""Result types returned by the API (no torch: importable by the decoder and ``nfc info``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .bitstream import StreamInfo
from .config import CodecConfig

__all__ = ["FitResult", "EncodeResult", "DecodeResult"]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class FitResult:
    steps: tuple[int, ...]     # per-parameter quantization-step table indices, canonical order
    seconds: float
    train_psnr: float          # running PSNR on the training batches at the end (dB, on [0, 255] scale)
    device: str


@dataclass(frozen=True)
class EncodeResult:
    """What ``encode`` produced, measured on the decoder's own output of ``data``."""

    data: bytes                   # the complete .nfc file
    reconstruction: np.ndarray    # (H, W, 3) uint8: exactly what decode(data) returns
    psnr: float                   # dB, RGB 8-bit, decoded vs source
    bpp: float                    # 8 * len(data) / (H * W): every container byte counted
    info: StreamInfo
    config: CodecConfig
    fit: FitResult
    seconds: float                # wall-clock of the whole encode (fit, coding, closed-loop decode)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write the ``.nfc`` file atomically (refuses to replace an existing file by default)."""
        from .media import atomic_write

        atomic_write(path, lambda tmp: tmp.write_bytes(self.data), overwrite=overwrite)

    def summary(self) -> str:
        h = self.info.header
        return (f"{h.width}x{h.height}: {self.nbytes} bytes, {self.bpp:.4f} bpp, "
                f"PSNR {self.psnr:.2f} dB, encoded in {self.seconds:.1f} s")


@dataclass(frozen=True)
class DecodeResult:
    image: np.ndarray   # (H, W, 3) uint8
    info: StreamInfo

    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        from .media import save_image

        save_image(path, self.image, overwrite=overwrite)
