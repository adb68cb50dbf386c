"""Rate control: encode to a target size (``bpp``) or a target quality (``psnr``).  Encoder only.

A neural field's rate is set mostly by its parameter count, which is fixed before fitting, and
then by the quantization steps, which can be moved after it.  So:

**Target bpp** (``encode(..., bpp=0.3)``): the byte budget is ``floor(bpp * pixels / 8)`` and
the accepted band ``[0.95 * budget, budget]`` (never over).

1. Pick the model size: the largest size on the architecture's ladder (SIREN: hidden width at
   the preset's depth; NeRV: all channel counts scaled together) whose file is predicted (the
   representation's ``predicted_bits``) at the representation's ``rate_oversize`` x the budget.
   Quantized representations (dense, pruned) use :data:`OVERSIZE`: fitting a slightly larger
   network and coarsening its steps beats a smaller one at 10 bits.  The representation's
   ``rate_config`` then adapts its own settings (pruned: sparsity 0.2 when none was given;
   supermask: the density k_1 whose masks fill the budget, since its size has no steps).
2. Fit it.
3. :func:`nfcodec.rdsearch.search_budget` moves the per-tensor steps (real coder, decoder's
   pixels) to the lowest distortion inside the band.  The file size is exact, not estimated.
4. If the band cannot be reached (every tensor at its coarsest or finest useful step), refit
   with a smaller or larger size (at most ``max_fits`` fits).

**Target PSNR** (``encode(..., psnr=32)``): fit sizes on the ladder, starting at the preset's,
going down while the target is met and up (by the size the ~3 dB-per-doubling rule predicts)
while it is not; for each fit that reaches the target, coarsen the steps as far as the target
allows (:func:`nfcodec.rdsearch.search_quality`) and keep the smallest file.  The decoded PSNR
is checked on the whole signal before a file is accepted.

The target and the chosen settings are returned in ``EncodeResult.rate_control`` and stored in
the ancillary ``meTA`` chunk (unless ``metadata=False``).
"""
from __future__ import annotations

import dataclasses
import math
import time
from fractions import Fraction
from typing import Any, Callable, Optional

import numpy as np

from .config import CodecConfig
from .variants import REPRESENTATIONS
from .encoder import Fitted, container_bytes, finish, fit_signal, meta_dict, quant_problem, stream_header
from .errors import ConfigError
from .archs import ARCHS
from .rdsearch import Evaluator, search_budget, search_quality
from .results import EncodeResult

__all__ = ["encode_to_bpp", "encode_to_psnr", "check_target", "BAND", "OVERSIZE", "scaled_config", "clip_bpp",
           "clip_sized", "CLIP_BPP"]

BAND = 0.05                 # a --bpp file lands in [(1 - BAND) * target, target]
OVERSIZE = 1.3              # fit a network whose 10-bit file would be this much over the budget
DB_PER_DOUBLING = 3.0       # PSNR gained per doubling of the parameter count (rough, for jumps)

ProgressFn = Callable[[int, int, float], None]


def scaled_config(config: CodecConfig, scale: float) -> CodecConfig:
    """The model of ``config`` with its size knobs multiplied by ``scale`` (rounded, >= 2).

    SIREN: the hidden width (and the learning rate, times ``old / new width`` when
    wider).  NeRV: ``c1``, ``c2``, ``min_channels`` and ``mlp_hidden``.
    """
    m = config.model

    def sc(v: int) -> int:
        return max(2, int(round(v * scale)))

    if m.arch == "nerv":
        return config.replace(c1=sc(m.c1), c2=sc(m.c2), min_channels=sc(m.min_channels), mlp_hidden=sc(m.mlp_hidden))
    # Wider SIRENs have smaller initial weights (~sqrt(6 / width) / w0) while Adam moves every
    # weight by ~lr per step, so a wider net takes relatively bigger steps: at the preset's lr a
    # 127-wide SIREN diverged on Kodak (19.9 dB at 1.2 bpp, docs/benchmarks.md).  Scale the lr by
    # old / new width when wider (more conservative than the sqrt that keeps the ratio).
    width = sc(m.width)
    lr = config.fit.lr * min(1.0, m.width / width)
    return config.replace(width=width, lr=lr)


def check_target(name: str, value: Any) -> None:
    """``bpp`` must be a positive finite number, ``psnr`` in (0, 100) dB; ConfigError otherwise."""
    hi = 100.0 if name == "psnr" else math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < hi:
        raise ConfigError(f"psnr={value!r} must be in (0, 100) dB" if name == "psnr"
                          else f"bpp={value!r} must be a positive number")


def _overhead(meta_chars: Optional[int]) -> int:
    """Container bytes besides the payload, estimated before any fit: signature and version, 12
    bytes of framing per chunk, NHDR, an ARCH record, and the meTA chunk (``meta_chars`` of JSON)."""
    return 8 + 4 + 12 * 4 + 25 + 40 + (meta_chars + 24 if meta_chars is not None else 0)


def _shapes(config: CodecConfig, header: Any) -> list[tuple[int, ...]]:
    arch = ARCHS.by_name(config.model.arch)
    return arch.param_shapes(arch.make_record(config.model, header))


def _predicted_bytes(config: CodecConfig, header: Any, overhead: int) -> float:
    rep = REPRESENTATIONS.by_name(config.representation)
    return overhead + rep.predicted_bits(_shapes(config, header), config) / 8


_SCALES = [2 ** (k / 8) for k in range(-40, 25)]   # the size ladder: 2^(1/8) steps, 1/32x .. 8x the preset


def _scale_for(config: CodecConfig, header: Any, max_bytes: float, overhead: int) -> float:
    """Largest ladder scale whose predicted file is at most ``max_bytes`` (smallest if none is)."""
    best = _SCALES[0]
    for s in _SCALES:
        try:
            if _predicted_bytes(scaled_config(config, s), header, overhead) <= max_bytes:
                best = s
        except ConfigError:
            break
    return best


def _with_defaults(config: CodecConfig, header: Any, max_bits: Optional[float] = None) -> CodecConfig:
    """The representation's own settings under rate control (``rate_config``)."""
    rep = REPRESENTATIONS.by_name(config.representation)
    return rep.rate_config(config, _shapes(config, header), max_bits)


def _settings(config: CodecConfig, fits: int) -> dict[str, Any]:
    m = config.model
    out: dict[str, Any] = {"arch": m.arch, "representation": config.representation}
    if m.arch == "nerv":
        out.update(c1=m.c1, c2=m.c2, min_channels=m.min_channels, mlp_hidden=m.mlp_hidden)
    else:
        out.update(width=m.width, depth=m.depth)
    out.update(REPRESENTATIONS.by_name(config.representation).settings(config))
    out["fits"] = fits
    return out


def _meta(config: CodecConfig, preset: Optional[str], video: bool, rc: dict[str, Any]) -> dict[str, Any]:
    meta = meta_dict(config, preset, video)
    meta["rate_control"] = rc
    return meta


def _fit(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, progress: Optional[ProgressFn],
         done: list[int]) -> Fitted:
    """Fit, reporting progress on one running count of steps over all the fits so far."""
    last = [0]

    def cb(step: int, total: int, psnr: float) -> None:
        last[0] = total
        if progress is not None:
            progress(done[0] + step, done[0] + total, psnr)

    fitted = fit_signal(frames, media, fps, config, cb)
    done[0] += last[0]
    return fitted


def _fit_at(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, scale: float,
            rc: dict[str, Any], fit_no: int, preset: Optional[str], metadata: bool,
            progress: Optional[ProgressFn], done: list[int],
            max_bits: Optional[float] = None) -> tuple[dict[str, Any], Any, Fitted, Any]:
    """Fit the network at ``scale``: its rate-control record, meTA dict, fit and RD problem."""
    cfg = scaled_config(config, scale)
    if max_bits is not None:
        cfg = _with_defaults(cfg, stream_header(frames, media, fps, cfg), max_bits)
    rc_full = {**rc, **_settings(cfg, fit_no)}
    meta = _meta(cfg, preset, media == 1, rc_full) if metadata else None
    fitted = _fit(frames, media, fps, cfg, progress, done)
    return rc_full, meta, fitted, quant_problem(fitted, meta)


def encode_to_bpp(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, target: float, *,
                  preset: Optional[str] = None, metadata: bool = True, progress: Optional[ProgressFn] = None,
                  max_fits: int = 3, oversize: Optional[float] = None) -> EncodeResult:
    """Encode into ``[(1 - BAND) * target, target]`` bits per pixel (see the module docstring).

    ``oversize``: the first fit's network is sized so that its predicted file would be this many
    times the budget (the RD step search then squeezes it into the band); default: the
    representation's ``rate_oversize``, else :data:`OVERSIZE`.

    Raises:
        ConfigError: a target below the smallest possible file, or a band no fit could reach.
    """
    t0 = time.perf_counter()
    check_target("bpp", target)
    pixels = int(np.prod(frames.shape[:3]))
    budget = int(math.floor(target * pixels / 8))
    floor_bytes = int(math.ceil((1 - BAND) * target * pixels / 8))
    header = stream_header(frames, media, fps, config)
    config = _with_defaults(config, header)
    rep = REPRESENTATIONS.by_name(config.representation)
    if oversize is None:
        oversize = getattr(rep, "rate_oversize", OVERSIZE)
    rc: dict[str, Any] = {"mode": "bpp", "target": target}
    probe_meta = _meta(config, preset, media == 1, {**rc, **_settings(config, 0)}) if metadata else None
    overhead = _overhead(len(str(probe_meta)) if probe_meta else None)
    if budget <= overhead:
        raise ConfigError(f"bpp={target} is {budget} bytes for {pixels} pixels, below the container's own "
                          f"~{overhead} bytes; ask for at least {8 * (overhead + 64) / pixels:.3g} bpp")
    scale = _scale_for(config, header, oversize * budget, overhead)
    done = [0]
    tried: list[str] = []
    for fit_no in range(1, max_fits + 1):
        fill = 8 * ((budget + floor_bytes) / 2 - overhead)   # bits the payload may take (mid-band)
        rc_full, meta, fitted, problem = _fit_at(frames, media, fps, config, scale, rc, fit_no, preset,
                                                 metadata, progress, done, max_bits=fill)
        steps, _ = search_budget(problem, fitted.payload.steps, budget, min_bytes=floor_bytes)
        size = problem.total_bytes(steps)
        if not floor_bytes <= size <= budget:
            refit = _resize_payload(fitted, meta, floor_bytes, budget)
            if refit is not None:     # (meta holds rc_full: the file states the settings it has)
                rc_full.update(rep.settings(refit.config))
                fitted, steps, size = refit, (), len(container_bytes(refit, (), meta))
        tried.append(f"scale {scale:.3g}: {size} bytes")
        if size > budget and scale > _SCALES[0]:
            scale = max(_SCALES[0], scale * min(0.8, math.sqrt(budget / size)))
            continue
        if size < floor_bytes and fit_no < max_fits:
            scale = scale * max(1.2, math.sqrt(floor_bytes / max(size, 1)))
            continue
        if not floor_bytes <= size <= budget:
            break
        data = container_bytes(fitted, steps, meta)
        if not floor_bytes <= len(data) <= budget:   # the estimate is exact; this guards the invariant
            raise AssertionError(f"rate control: file is {len(data)} bytes, band [{floor_bytes}, {budget}]")
        rc_full["bpp"] = round(8 * len(data) / pixels, 6)
        return finish(fitted, data, t0, rate_control=rc_full)
    raise ConfigError(f"bpp={target}: no file in the band [{floor_bytes}, {budget}] bytes after "
                      f"{len(tried)} fits ({'; '.join(tried)})")


def _resize_payload(fitted: Fitted, meta: Optional[dict[str, Any]], floor_bytes: int,
                    budget: int) -> Optional[Fitted]:
    """A payload without steps but with a continuous size knob (``resized(factor)``: supermask
    masks re-thresholded from the trained scores at ``factor`` x the densities) moved into the
    band without refitting, by bisection on the exact file size; None if it has no such knob or
    the band is not reached within a factor of 2."""
    resized = getattr(fitted.payload, "resized", None)
    if resized is None or fitted.payload.n_tensors:
        return None
    lo, hi = 0.5, 2.0
    margin = (budget - floor_bytes) // 4            # aim inside the band, clear of its edges
    for _ in range(24):
        mid = math.sqrt(lo * hi)
        payload, cfg = resized(mid, fitted.config)
        cand = dataclasses.replace(fitted, payload=payload, config=cfg)
        size = len(container_bytes(cand, (), meta))
        if size > budget - margin:
            hi = mid
        elif size < floor_bytes + margin:
            lo = mid
        else:
            return cand
    return None


def encode_to_psnr(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, target: float, *,
                   preset: Optional[str] = None, metadata: bool = True, progress: Optional[ProgressFn] = None,
                   max_fits: int = 4) -> EncodeResult:
    """The smallest file found whose decoded PSNR (pooled over frames for a video) is >= ``target``.

    Raises:
        ConfigError: the target was not reached by the largest network tried.
    """
    t0 = time.perf_counter()
    check_target("psnr", target)
    config = _with_defaults(config, stream_header(frames, media, fps, config))
    max_mse = 255.0**2 / 10 ** (target / 10)
    rc: dict[str, Any] = {"mode": "psnr", "target": target}
    done = [0]
    scale, best, results = 1.0, None, {}
    tried: list[str] = []
    for fit_no in range(1, max_fits + 1):
        rc_full, meta, fitted, problem = _fit_at(frames, media, fps, config, scale, rc, fit_no, preset,
                                                 metadata, progress, done)
        full = Evaluator(fitted.arch, fitted.record, fitted.header, frames, full=True)
        start = tuple(fitted.payload.steps)
        start_mse = full.mse(problem.network(start))
        reached = start_mse <= max_mse
        got = 10 * math.log10(255.0**2 / max(start_mse, 1e-12))
        tried.append(f"scale {scale:.3g}: {got:.2f} dB")
        results[scale] = reached
        if reached:
            steps = _coarsen_to(problem, full, start, max_mse)
            data = container_bytes(fitted, steps, meta)
            if best is None or len(data) < len(best[1]):
                rc_full["bpp"] = round(8 * len(data) / fitted.pixels, 6)
                best = (fitted, data, rc_full)
            nxt = scale * 2 ** (-1 / 4)          # smaller until the target is missed
        else:
            need = 2 ** ((target - got) / DB_PER_DOUBLING)   # params factor; width ~ sqrt
            nxt = scale * max(2 ** (1 / 4), math.sqrt(need) if config.model.arch == "siren" else need ** 0.5)
        nxt = min(nxt, _SCALES[-1])
        if any(abs(nxt - s) < 1e-9 for s in results):
            break
        if best is not None and not reached:
            break                                   # bracketed: the smallest passing size is known
        scale = nxt
    if best is None:
        raise ConfigError(f"psnr={target} dB not reached after {len(tried)} fits ({'; '.join(tried)}); "
                          "use a larger preset or more steps")
    fitted, data, rc_full = best
    return finish(fitted, data, t0, rate_control=rc_full)


def _coarsen_to(problem: Any, full: Evaluator, start: tuple[int, ...], max_mse: float) -> tuple[int, ...]:
    """Coarsest steps found whose full-signal MSE stays under ``max_mse`` (subset search + check)."""
    margin = 0.97
    for _ in range(4):
        steps, _ = search_quality(problem, start, max_mse * margin)
        if full.mse(problem.network(steps)) <= max_mse:
            return steps
        margin *= 0.97
    return start


# --------------------------------------------------------------------------- default video sizes

#: Bits per pixel a default video encode aims at for a clip of one million pixels (frames x
#: width x height), per preset; see :func:`clip_bpp`.
CLIP_BPP = {"fast": 0.1, "default": 0.2, "high": 0.4}
#: How the target falls with the clip's size: bpp ~ pixels^-CLIP_EXPONENT.
CLIP_EXPONENT = 0.15


def clip_bpp(pixels: int, preset: Optional[str]) -> float:
    """The bpp a default video encode aims at: ``CLIP_BPP[preset] * (pixels / 1e6)^-0.15``, in [0.02, 2].

    Calibrated on x264 at its default CRF 23 (preset medium, yuv420p), which spends 0.24 bpp on
    10 QCIF frames (0.25 M pixels), 0.13 on 120 QCIF frames (3 M), 0.17 on 132 frames of
    320x180 (7.6 M) and 0.085 on 30 frames of 720p (27.6 M) (docs/video.md): the rule gives
    0.25, 0.17, 0.15 and 0.12 for the default preset.
    """
    base = CLIP_BPP.get(preset or "default", CLIP_BPP["default"])
    return min(2.0, max(0.02, base * (max(pixels, 1) / 1e6) ** -CLIP_EXPONENT))


def clip_sized(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig,
               preset: Optional[str]) -> tuple[CodecConfig, dict[str, Any]]:
    """A video preset's network resized for the clip (one fit, no band: see :func:`clip_bpp`).

    The largest size on the ladder whose predicted file is at most the target, then the
    representation's own rate settings for that budget (supermask: the density filling it).

    Returns:
        ``(config, record)``; the record (mode ``clip``, the target bpp and the chosen
        settings) becomes ``EncodeResult.rate_control``.
    """
    pixels = int(np.prod(frames.shape[:3]))
    target = clip_bpp(pixels, preset)
    header = stream_header(frames, media, fps, config)
    config = _with_defaults(config, header)
    overhead = _overhead(276)       # a typical meTA chunk (the record is not written yet)
    budget = target * pixels / 8
    scale = _scale_for(config, header, budget, overhead)
    cfg = scaled_config(config, scale)
    cfg = _with_defaults(cfg, stream_header(frames, media, fps, cfg), 8 * (budget - overhead))
    record = {"mode": "clip", "target": round(target, 4), **_settings(cfg, 1)}
    record.pop("fits")
    return cfg, record
