"""Training batches for :func:`nfcodec.fit.fit_sampler` (encoder only; the decoder never imports this).

A sampler owns the training signal and hands out ``(inputs, targets)`` batches; ``output``
maps the model's prediction onto the targets (NeRV crops its padded frame).  Source frames stay
``uint8`` on the CPU; only the current batch is converted to float and moved to the device.

* :class:`PixelSampler` -- an image: SIREN on (row, col), full batch or a fresh permutation
  of the pixels every epoch.
* :class:`VideoPixelSampler` -- SIREN on (t, row, col): random pixels of random frames
  (drawn with replacement, so no permutation of T*H*W indices is ever materialised).
* :class:`FrameSampler` -- NeRV: a fresh permutation of the frames every epoch, ``batch_frames``
  frames per step.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .render import axis_coords, frame_targets

__all__ = ["PixelSampler", "VideoPixelSampler", "FrameSampler"]


class _Sampler:
    """What every sampler shares: ``n`` items drawn ``batch`` at a time onto ``device``."""

    n: int
    batch: int
    device: torch.device = torch.device("cpu")

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch)

    def to(self, device: torch.device) -> None:
        self.device = device

    def output(self, pred: torch.Tensor) -> torch.Tensor:
        return pred


class PixelSampler(_Sampler):
    """Coordinates and targets held whole (images); ``batch`` 0 means the full image."""

    def __init__(self, coords: torch.Tensor, target: torch.Tensor, batch: int) -> None:
        self.coords, self.target = coords, target
        self.n = coords.shape[0]
        self.batch = self.n if batch == 0 else min(batch, self.n)
        self.perm: torch.Tensor | None = None
        self.pos = self.n

    def to(self, device: torch.device) -> None:
        super().to(device)
        self.coords, self.target = self.coords.to(device), self.target.to(device)

    def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batch == self.n:
            return self.coords, self.target
        if self.pos + self.batch > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=gen).to(self.device), 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return self.coords[idx], self.target[idx]


class VideoPixelSampler(_Sampler):
    """Random (t, row, col) pixels of a (T, H, W, 3) uint8 clip; ``batch`` 0 means every pixel."""

    def __init__(self, frames: np.ndarray, batch: int) -> None:
        self.frames = torch.from_numpy(np.ascontiguousarray(frames)).reshape(-1, 3)   # uint8, no copy
        self.shape = frames.shape[:3]
        self.n = self.frames.shape[0]
        self.batch = self.n if batch == 0 else min(batch, self.n)

    def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t_n, h, w = self.shape
        if self.batch == self.n:
            idx = torch.arange(self.n)
        else:
            idx = torch.randint(self.n, (self.batch,), generator=gen)
        t, r, c = idx // (h * w), (idx // w) % h, idx % w
        coords = torch.stack([axis_coords(t, t_n), axis_coords(r, h), axis_coords(c, w)], -1)
        target = self.frames[idx].float() / 127.5 - 1.0
        return coords.to(self.device), target.to(self.device)


class FrameSampler(_Sampler):
    """Whole frames for NeRV: inputs are normalised positions ``k / T``, targets (B, 3, H, W)."""

    def __init__(self, frames: np.ndarray, batch_frames: int) -> None:
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))    # (T, H, W, 3) uint8, no copy
        self.n, self.height, self.width = frames.shape[:3]
        self.batch = min(batch_frames, self.n)
        self.perm: torch.Tensor | None = None
        self.pos = self.n

    def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos >= self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=gen), 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        t = idx.to(torch.float64) / self.n
        return t, frame_targets(self.frames[idx].to(self.device))   # uint8 to the device, float there

    def output(self, pred: torch.Tensor) -> torch.Tensor:
        return pred[..., :self.height, :self.width]
