"""Coordinates and rendering shared by the encoder and the decoder.

Pixel (i, j) of an H x W image sits at ``((2i+1)/H - 1, (2j+1)/W - 1)``: pixel centres in
(-1, 1), row first.  Networks predict RGB in [-1, 1]; a value v becomes the 8-bit sample
``clamp(round((v + 1) * 127.5), 0, 255)`` (round half to even, as ``torch.round``).

Videos: a SIREN with three inputs sees ``(t, row, col)``, frame k of T at ``t = (2k+1)/T - 1``
(frame centres in (-1, 1), the same rule as rows and columns).  NeRV sees ``k / T`` in [0, 1)
(see :mod:`nfcodec.models.nerv`), renders one frame per forward pass (batch of 1, so frame k
decoded alone is bit-identical to frame k of a full decode) and keeps the top-left H x W window.

Rendering runs on the CPU in float32, in fixed blocks of :data:`RENDER_BLOCK` coordinates,
so a given file decodes to the same pixels every time on the same machine.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["RENDER_BLOCK", "image_coords", "image_targets", "render_image", "to_uint8", "axis_coords",
           "video_frame_coords", "frame_targets", "render_coords", "render_nerv_frame"]

RENDER_BLOCK = 65536  # coordinates per forward pass: bounds decoder memory (~width x 256 KiB)


def axis_coords(index: torch.Tensor, n: int) -> torch.Tensor:
    """Centre of cell ``index`` of ``n`` in (-1, 1): ``(2i+1)/n - 1`` computed in float64, as float32."""
    return ((2 * index.to(torch.float64) + 1) / n - 1).float()


def image_coords(height: int, width: int) -> torch.Tensor:
    """(H*W, 2) float32 coordinates of pixel centres, row-major."""
    ys = (2 * torch.arange(height, dtype=torch.float64) + 1) / height - 1
    xs = (2 * torch.arange(width, dtype=torch.float64) + 1) / width - 1
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2).float()


def video_frame_coords(k: int, frames: int, height: int, width: int) -> torch.Tensor:
    """(H*W, 3) float32 ``(t, row, col)`` coordinates of frame ``k`` of ``frames``, row-major."""
    t = axis_coords(torch.tensor([k]), frames).expand(height * width)
    rows = axis_coords(torch.arange(height), height).repeat_interleave(width)
    cols = axis_coords(torch.arange(width), width).repeat(height)
    return torch.stack([t, rows, cols], -1)


def frame_targets(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1] (on the frames' device)."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def image_targets(image: np.ndarray) -> torch.Tensor:
    """(H*W, 3) float32 targets in [-1, 1] from an (H, W, 3) uint8 image."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).reshape(-1, 3).float() / 127.5 - 1.0


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Map network outputs in [-1, 1] to 8-bit samples."""
    return torch.round((values + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def render_coords(model: torch.nn.Module, coords: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Evaluate a coordinate network on (H*W, in) coordinates; returns an (H, W, 3) uint8 array."""
    model = model.to("cpu").eval()
    out = torch.empty(height * width, 3, dtype=torch.uint8)
    for start in range(0, coords.shape[0], RENDER_BLOCK):
        block = coords[start:start + RENDER_BLOCK]
        out[start:start + block.shape[0]] = to_uint8(model(block))
    return out.reshape(height, width, 3).numpy()


@torch.no_grad()
def render_image(model: torch.nn.Module, height: int, width: int) -> np.ndarray:
    """Evaluate ``model`` on every pixel centre; returns an (H, W, 3) uint8 array."""
    return render_coords(model, image_coords(height, width), height, width)


@torch.no_grad()
def render_nerv_frame(model: torch.nn.Module, k: int, frames: int, height: int, width: int) -> np.ndarray:
    """Frame ``k`` of a NeRV: ``model(k / T)`` (batch of one), top-left crop, (H, W, 3) uint8."""
    model = model.to("cpu").eval()
    t = torch.tensor([k], dtype=torch.float64) / frames
    rgb = model(t)[0, :, :height, :width]
    return to_uint8(rgb).permute(1, 2, 0).contiguous().numpy()
