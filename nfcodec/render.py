"""Coordinates and rendering shared by the encoder and the decoder.

Pixel (i, j) of an H x W image sits at ``((2i+1)/H - 1, (2j+1)/W - 1)``: pixel centres in
(-1, 1), row first.  Networks predict RGB in [-1, 1]; a value v becomes the 8-bit sample
``clamp(round((v + 1) * 127.5), 0, 255)`` (round half to even, as ``torch.round``).

Rendering runs on the CPU in float32, in fixed blocks of :data:`RENDER_BLOCK` coordinates,
so a given file decodes to the same pixels every time on the same machine.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["RENDER_BLOCK", "image_coords", "image_targets", "render_image", "to_uint8"]

RENDER_BLOCK = 65536  # coordinates per forward pass: bounds decoder memory (~width x 256 KiB)


def image_coords(height: int, width: int) -> torch.Tensor:
    """(H*W, 2) float32 coordinates of pixel centres, row-major."""
    ys = (2 * torch.arange(height, dtype=torch.float64) + 1) / height - 1
    xs = (2 * torch.arange(width, dtype=torch.float64) + 1) / width - 1
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2).float()


def image_targets(image: np.ndarray) -> torch.Tensor:
    """(H*W, 3) float32 targets in [-1, 1] from an (H, W, 3) uint8 image."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).reshape(-1, 3).float() / 127.5 - 1.0


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Map network outputs in [-1, 1] to 8-bit samples."""
    return torch.round((values + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def render_image(model: torch.nn.Module, height: int, width: int) -> np.ndarray:
    """Evaluate ``model`` on every pixel centre; returns an (H, W, 3) uint8 array."""
    model = model.to("cpu").eval()
    out = torch.empty(height * width, 3, dtype=torch.uint8)
    coords = image_coords(height, width)
    for start in range(0, coords.shape[0], RENDER_BLOCK):
        block = coords[start:start + RENDER_BLOCK]
        out[start:start + block.shape[0]] = to_uint8(model(block))
    return out.reshape(height, width, 3).numpy()
