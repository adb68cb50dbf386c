"""Architectures: the ``ARCHS`` registry maps names and wire ids to builders.

An :class:`ArchSpec` is everything the encoder and decoder need to know about one architecture,
so adding one touches only this registry (and its wire record in ``bitstream/headers.py``):

* ``make_record`` -- encoder settings + the stream header -> the wire record in ``ARCH``;
* ``check`` -- does a record fit a stream header (media, frame size)?  ``FormatError`` if not;
* ``build`` -- record -> an *empty* module (the decoder then fills in the transmitted weights;
  it never infers hyper-parameters from tensor shapes);
* ``render`` -- (module, record, header, k) -> frame k as (H, W, 3) uint8, independently of
  every other frame;
* ``sampler`` -- encoder only: (record, (T, H, W, 3) uint8 frames, fit config, header) -> the
  training batches (imports :mod:`nfcodec.samplers` lazily: the decoder never loads it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from torch import nn

from ..bitstream import FormatError, StreamHeader
from ..bitstream.headers import NERV_SLOTS, NervArch, SirenArch
from ..errors import ConfigError
from ..registry import Registry
from ..render import image_coords, image_targets, render_coords, render_image, render_nerv_frame, video_frame_coords
from .nerv import Nerv, block_channels, nerv_layout
from .siren import Siren

__all__ = ["ARCHS", "ArchSpec", "Siren", "Nerv", "MAX_NERV_MLP_WEIGHTS"]

#: Encoder limit on the MLP's output layer (mlp_hidden * c1 * h0 * w0 weights).
MAX_NERV_MLP_WEIGHTS = 2**24


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its wire id, wire record class and the hooks listed in the module doc."""

    name: str
    wire_id: int
    record_cls: type
    build: Callable[[Any], nn.Module]                          # wire record -> empty module
    make_record: Callable[[Any, StreamHeader], Any]            # (model config, header) -> wire record
    check: Callable[[Any, StreamHeader], None]                 # record vs header; FormatError
    render: Callable[[nn.Module, Any, StreamHeader, int], np.ndarray]
    sampler: Callable[[Any, np.ndarray, Any, StreamHeader], Any]

    kind: ClassVar[str] = "architecture"


ARCHS: Registry[ArchSpec] = Registry("architecture")


# --------------------------------------------------------------------------- SIREN (images and videos)

def _siren_record(m: Any, header: StreamHeader) -> SirenArch:
    return SirenArch(in_features=2 if header.media == 0 else 3, out_features=3, width=m.width, depth=m.depth,
                     w0_first=m.w0_first, w0_hidden=m.w0)


def _siren_check(r: SirenArch, header: StreamHeader) -> None:
    need = 2 if header.media == 0 else 3
    if r.in_features != need:
        what = "an image needs (row, col)" if need == 2 else "a video needs (t, row, col)"
        raise FormatError(f"ARCH.in_features={r.in_features} but NHDR.media={header.media}: {what}")
    if r.out_features != header.channels:
        raise FormatError(f"ARCH.out_features={r.out_features} but NHDR.channels={header.channels}")


def _siren_render(model: nn.Module, r: SirenArch, h: StreamHeader, k: int) -> np.ndarray:
    if h.media == 0:
        return render_image(model, h.height, h.width)
    return render_coords(model, video_frame_coords(k, h.frames, h.height, h.width), h.height, h.width)


def _siren_sampler(r: SirenArch, frames: np.ndarray, fit_cfg: Any, h: StreamHeader) -> Any:
    from ..samplers import PixelSampler, VideoPixelSampler

    if h.media == 0:
        return PixelSampler(image_coords(h.height, h.width), image_targets(frames[0]), fit_cfg.batch_pixels)
    return VideoPixelSampler(frames, fit_cfg.batch_pixels)


ARCHS.register(ArchSpec(
    name="siren", wire_id=0, record_cls=SirenArch,
    build=lambda r: Siren(r.in_features, r.out_features, r.width, r.depth, r.w0_first, r.w0_hidden),
    make_record=_siren_record, check=_siren_check, render=_siren_render, sampler=_siren_sampler,
))


# --------------------------------------------------------------------------- NeRV (videos)

def _nerv_record(m: Any, header: StreamHeader) -> NervArch:
    if header.media == 0:
        raise ConfigError("arch 'nerv' encodes videos; use arch 'siren' for images")
    H, W = header.height, header.width
    if m.factors:
        factors = m.factors
        p = math.prod(factors)
        h0, w0 = -(-H // p), -(-W // p)
    else:
        h0, w0, factors = nerv_layout(H, W)
    p = math.prod(factors)
    if m.mlp_hidden * m.c1 * h0 * w0 > MAX_NERV_MLP_WEIGHTS or max(h0, w0) > 4096:
        raise ConfigError(f"{W}x{H} needs a NeRV base map of {w0}x{h0} with upscale factors "
                          f"{','.join(map(str, factors))} (product {p}): mlp_hidden*c1*h0*w0 = "
                          f"{m.mlp_hidden * m.c1 * h0 * w0} is too large for the model (limit {MAX_NERV_MLP_WEIGHTS}); "
                          "use more or larger factors")
    chans = block_channels(len(factors), m.c2, m.min_channels)
    slots = {}
    for i in range(NERV_SLOTS):
        slots[f"factor{i}"] = factors[i] if i < len(factors) else 0
        slots[f"channels{i}"] = chans[i] if i < len(factors) else 0
    return NervArch(pe_b=m.pe_b, pe_l=m.pe_l, mlp_hidden=m.mlp_hidden, c1=m.c1, h0=h0, w0=w0, kernel=m.kernel,
                    head_kernel=m.head_kernel, act=0, crop=0, **slots)


def _nerv_check(r: NervArch, header: StreamHeader) -> None:
    if header.media != 1:
        raise FormatError(f"NHDR.arch=1 (nerv) needs NHDR.media=1 (video), got {header.media}")
    ph, pw = r.padded_size
    if ph < header.height or pw < header.width:
        raise FormatError(f"ARCH: NeRV output {pw}x{ph} does not cover the {header.width}x{header.height} frame")
    if header.channels != 3:
        raise FormatError(f"NeRV outputs 3 channels, NHDR.channels={header.channels}")


def _nerv_sampler(r: NervArch, frames: np.ndarray, fit_cfg: Any, h: StreamHeader) -> Any:
    from ..samplers import FrameSampler

    return FrameSampler(frames, fit_cfg.batch_frames)


ARCHS.register(ArchSpec(
    name="nerv", wire_id=1, record_cls=NervArch, build=Nerv,
    make_record=_nerv_record, check=_nerv_check,
    render=lambda model, r, h, k: render_nerv_frame(model, k, h.frames, h.height, h.width),
    sampler=_nerv_sampler,
))
