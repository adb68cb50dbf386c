"""Geometry of the exact convolution shared by the backends (no torch, no arithmetic).

A ``k x k`` convolution with zero padding ``p = k // 2`` is computed as ``k * k`` GEMMs on a
padded map flattened row by row: with padded width ``Wp = W + 2p``, the input of output pixel
``(y, x)`` for tap ``(dy, dx)`` sits at flat offset ``(y + dy) * Wp + x + dx``, so for a band of
output rows every tap's operand is one contiguous slice of the flat map (no im2col copy).  The
band is computed on the padded width (``2p`` columns per row are discarded).  Accumulating the
taps in any order is exact: every term is an integer and the layer bound keeps sums < 2**53.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConvGeometry", "conv_geometry", "padded_shape"]

#: Values of one band's accumulator plus its input (fits the L2 cache: ~1 MiB of float64).
BAND_VALUES = 1 << 18


@dataclass(frozen=True)
class ConvGeometry:
    kernel: int
    pad: int
    wp: int                      # padded width
    padded_rows: int             # rows of the padded map (one extra at the bottom for the last taps)
    rows: int                    # output rows to compute (the crop, or all)
    cols: int                    # output columns to keep
    band: int                    # output rows per band
    offsets: tuple[int, ...]     # flat offset of each tap (dy, dx) in C order, relative to a band's first row

    def bands(self) -> list[tuple[int, int]]:
        return [(r0, min(self.rows, r0 + self.band)) for r0 in range(0, self.rows, self.band)]


def padded_shape(channels: int, height: int, width: int, kernel: int) -> tuple[int, int, int]:
    """Shape of the zero-padded map a ``kernel x kernel`` convolution reads (see the module doc)."""
    p = kernel // 2
    return channels, height + 2 * p + 1, width + 2 * p


def conv_geometry(channels_in: int, channels_out: int, height: int, width: int, kernel: int,
                  crop: tuple[int, int] | None = None, band_values: int = BAND_VALUES) -> ConvGeometry:
    _, padded_rows, wp = padded_shape(channels_in, height, width, kernel)
    rows, cols = crop if crop is not None else (height, width)
    band = max(1, band_values // ((channels_in + channels_out) * wp))
    offsets = tuple(dy * wp + dx for dy in range(kernel) for dx in range(kernel))
    return ConvGeometry(kernel, kernel // 2, wp, padded_rows, rows, cols, band, offsets)
