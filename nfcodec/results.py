"""Result types returned by the API (no torch: importable by the decoder and ``nfc info``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional, Union

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
    # pruned fits: per-parameter keep masks (bool, flattened; None = tensor not pruned), else ()
    masks: tuple[Optional[np.ndarray], ...] = ()
    # representation state the payload needs (supermask: scores, scales, seed), see FitHooks.result
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodeResult:
    """What ``encode`` produced, measured on the decoder's own output of ``data``.

    For a video, ``reconstruction`` is (T, H, W, 3), ``psnr`` is the PSNR of the mean squared
    error over all frames (pooled) and ``frame_psnr`` holds each frame's PSNR; their average is
    :attr:`mean_frame_psnr` (the INR papers' "PSNR").
    """

    data: bytes                   # the complete .nfc file
    reconstruction: np.ndarray    # (H, W, 3) or (T, H, W, 3) uint8: exactly what the decoder returns
    psnr: float                   # dB, RGB 8-bit, decoded vs source (video: PSNR of the mean MSE)
    bpp: float                    # 8 * len(data) / (T * H * W): every container byte counted
    info: StreamInfo
    config: CodecConfig
    fit: FitResult
    seconds: float                # wall-clock of the whole encode (fit, coding, closed-loop decode)
    frame_psnr: tuple[float, ...] = ()   # video: PSNR of each frame (dB)
    rate_control: Optional[dict[str, Any]] = None   # --bpp / --psnr: target and chosen settings
    # width-chunks: one row per level (level, width, cover, begin, end, bpp of the prefix, psnr)
    levels: tuple[dict[str, Any], ...] = ()

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def is_video(self) -> bool:
        return self.info.header.media == 1

    @property
    def mean_frame_psnr(self) -> float:
        """Average of the per-frame PSNRs (equals ``psnr`` for an image)."""
        return sum(self.frame_psnr) / len(self.frame_psnr) if self.frame_psnr else self.psnr

    @property
    def fps(self) -> Fraction:
        """Exact frame rate from the header (0 when unknown or for an image)."""
        return Fraction(self.info.header.fps_num, self.info.header.fps_den)

    def save(self, path: PathLike, *, overwrite: bool = False, inputs: tuple[PathLike, ...] = ()) -> None:
        """Write the ``.nfc`` file atomically (refuses to replace an existing file or any of ``inputs``)."""
        from .media import atomic_write

        atomic_write(path, lambda tmp: tmp.write_bytes(self.data), overwrite=overwrite, inputs=inputs)

    def summary(self) -> str:
        h = self.info.header
        if not self.is_video:
            return (f"{h.width}x{h.height}: {self.nbytes} bytes, {self.bpp:.4f} bpp, "
                    f"PSNR {self.psnr:.2f} dB, encoded in {self.seconds:.1f} s")
        return (f"{h.width}x{h.height}, {h.frames} frames @ {_fps_text(h)} fps: {self.nbytes} bytes, "
                f"{self.bpp:.4f} bpp, PSNR {self.mean_frame_psnr:.2f} dB (mean of per-frame PSNR), "
                f"{self.psnr:.2f} dB (PSNR of the mean MSE), encoded in {self.seconds:.1f} s")


def _fps_text(h: Any) -> str:
    return "unknown" if h.fps_num == 0 else f"{h.fps_num}/{h.fps_den}" if h.fps_den != 1 else str(h.fps_num)


@dataclass(frozen=True)
class DecodeResult:
    """A decoded stream: ``image`` (H, W, 3) for an image; for a video decoded in memory
    ``frames`` (T', H, W, 3) uint8 with their indices in ``indices``; after a streamed write to
    an output file both are left empty (``image`` is None) and ``written`` counts the frames."""

    image: Optional[np.ndarray]   # (H, W, 3) uint8 (images)
    info: StreamInfo
    frames: Optional[np.ndarray] = None   # (T', H, W, 3) uint8 (videos decoded in memory)
    indices: tuple[int, ...] = ()
    written: int = 0
    backend: str = "numpy"                # the decoder backend that rendered it (numpy | torch)
    level: int = 1                        # width-chunks: the level decoded ...
    levels: int = 1                       # ... of this many
    note: str = ""                        # why a cut or damaged file decoded fewer levels

    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write the image (or the in-memory frames, as a video / PNG pattern) atomically."""
        if self.frames is not None:
            from .video_io import write_video

            h = self.info.header
            write_video(path, zip(self.indices, self.frames), width=self.frames.shape[2], height=h.height,
                        fps=Fraction(h.fps_num, h.fps_den), overwrite=overwrite)
            return
        from .media import save_image

        save_image(path, self.image, overwrite=overwrite)
