"""Tile geometry of the ``tiles`` layout (no torch): a frame cut into equal tiles, row-major.

A ``height x width`` frame with tiles of ``th x tw`` pixels has ``ceil(height/th) x ceil(width/tw)``
tiles, numbered row-major.  Tile ``n`` covers rows ``[r0, min(r0 + th, height))`` and columns
``[c0, min(c0 + tw, width))``; its network sees the coordinates of a full ``th x tw`` image
(the SIREN grid of format.md section 6.3), so the last row or column of tiles is rendered on the
full grid and cropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TileGrid"]


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    th: int
    tw: int

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.th)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tw)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def box(self, n: int) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)`` of tile ``n`` inside the frame."""
        r, c = divmod(n, self.cols)
        r0, c0 = r * self.th, c * self.tw
        return r0, min(r0 + self.th, self.height), c0, min(c0 + self.tw, self.width)

    def split(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(count, th*tw, C)`` tiles of an ``(H, W, C)`` frame (zero padded) and the
        ``(count, th*tw)`` bool mask of the pixels inside the frame."""
        ph, pw = self.rows * self.th, self.cols * self.tw
        pad = np.zeros((ph, pw) + frame.shape[2:], frame.dtype)
        pad[:self.height, :self.width] = frame
        inside = np.zeros((ph, pw), bool)
        inside[:self.height, :self.width] = True

        def cut(a: np.ndarray) -> np.ndarray:
            a = a.reshape(self.rows, self.th, self.cols, self.tw, *a.shape[2:])
            a = np.swapaxes(a, 1, 2)
            return a.reshape(self.count, self.th * self.tw, *a.shape[4:])

        return cut(pad), cut(inside)

    def merge(self, tiles: np.ndarray) -> np.ndarray:
        """The ``(H, W, C)`` frame from ``(count, th*tw, C)`` tiles (the inverse of :meth:`split`)."""
        c = tiles.shape[2:]
        a = tiles.reshape(self.rows, self.cols, self.th, self.tw, *c)
        a = np.swapaxes(a, 1, 2).reshape(self.rows * self.th, self.cols * self.tw, *c)
        return a[:self.height, :self.width]

    def seam_mask(self, margin: int = 1) -> np.ndarray:
        """``(H, W)`` bool: pixels within ``margin`` of an inner tile border (where seams show)."""
        m = np.zeros((self.height, self.width), bool)
        for r in range(1, self.rows):
            m[max(0, r * self.th - margin):r * self.th + margin] = True
        for c in range(1, self.cols):
            m[:, max(0, c * self.tw - margin):c * self.tw + margin] = True
        return m
