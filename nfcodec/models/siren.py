"""SIREN: a coordinate MLP with sine activations (Sitzmann et al., 2020).

    coords (N, in) -> [Linear -> sin(w0 * .)] x depth -> Linear -> values (N, out)

Initialisation follows the SIREN paper: the first layer draws U(-1/in, 1/in), later layers
U(-sqrt(6/in)/w0, sqrt(6/in)/w0), so pre-activations stay well spread for any depth.  The
initialisation only matters to the encoder (the decoder loads transmitted weights), so it
uses torch's generator; nothing in the file depends on it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Siren"]


class Siren(nn.Module):
    """Sine-activated MLP.

    Args:
        in_features: coordinate dimension (2 for images: row, column).
        out_features: values per coordinate (3 for RGB).
        width: hidden units per layer.
        depth: number of hidden sine layers (>= 1).
        w0_first: frequency factor of the first layer.
        w0_hidden: frequency factor of the other sine layers.
    """

    def __init__(self, in_features: int, out_features: int, width: int, depth: int,
                 w0_first: float = 30.0, w0_hidden: float = 30.0) -> None:
        super().__init__()
        self.w0_first = float(w0_first)
        self.w0_hidden = float(w0_hidden)
        dims = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(width, out_features)

    @torch.no_grad()
    def init_weights_(self, generator: torch.Generator | None = None) -> "Siren":
        """Apply the SIREN initialisation in place (returns self)."""
        for i, layer in enumerate([*self.hidden, self.head]):
            fan_in = layer.weight.shape[1]
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.w0_hidden
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
        return self

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x = torch.sin(self.w0_first * self.hidden[0](coords))
        for layer in self.hidden[1:]:
            x = torch.sin(self.w0_hidden * layer(x))
        return self.head(x)
