"""Encoder of a single-layout stream coded from a prior: a NeRV clip fitted from a meta-learned init.

    clip --check: the prior is a NeRV video prior for clips of exactly this size (frames, height,
           width); its record is the stream's network (the preset's size knobs do not apply)
         --init: the prior's values
         --Meta-SGD adaptation: the prior's K steps with its learned step sizes, on the whole clip
           (GradNCP's test-time re-scaling when the prior was trained with it; nfcodec.meta.nerv)
         --Adam fit (nfcodec.fit.fit_sampler, the config's epochs or steps, whole frames)
         --residuals w - prior, quantized per tensor (steps below residual.MAX_STEP), RD step search /
           rate control on the decoder's exact output--> NHDR ARCH PRIR TDAT [meTA] NEND

The decoder adds the prior back exactly (:func:`nfcodec.residual.add_prior`, format.md section 4c),
as for the tiles layout; a sparse prior (Meta-SparseINR) keeps its zeros through the fit and the
stream codes them as a mask (representation pruned).  :func:`start_model`, :func:`fit_from` and
:func:`code_fitted` are the pieces (benchmarks/video_priors.py times them apart).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import __version__, quant
from .archs import ARCHS
from .bitstream import Chunk, write_container
from .bitstream.headers import MEDIA, PriorRef
from .decoder import open_stream
from .devices import resolve_device
from .errors import ConfigError
from .fit import FitHooks, fit_sampler
from .rdsearch import Evaluator, QuantProblem, search_budget, search_lagrangian, search_quality
from .residual import MAX_STEP, add_prior
from .results import EncodeResult, FitResult
from .tile_encoder import FixedMasks
from .variants import REPRESENTATIONS

__all__ = ["encode_single_prior", "check_prior", "start_model", "fit_from", "code_fitted", "PriorProblem"]

ProgressFn = Callable[[int, int, float], None]


def _name(prior: Any) -> str:
    return prior.name or prior.hexdigest[:16] or "(unnamed)"


def check_prior(prior: Any, frames: np.ndarray, media: int, arch: str) -> None:
    """ConfigError (one line) unless ``prior`` is a NeRV video prior for clips of ``frames``' size."""
    from .meta.nerv import clip_text

    if media != 1:
        raise ConfigError("an image is coded from a prior in the tiles layout (layout single codes NeRV videos)")
    if arch != "nerv":
        raise ConfigError(f"arch {arch} videos cannot be coded from a prior (NeRV videos can)")
    if prior.arch != "nerv" or prior.media != 1:
        raise ConfigError(f"prior {_name(prior)} is for {prior.arch} {MEDIA[prior.media]}s, not nerv videos")
    want = tuple(int(v) for v in prior.size)
    got = tuple(int(v) for v in frames.shape[:3])
    if want != got:
        raise ConfigError(f"prior {_name(prior)} is for {want[0]}-frame {want[2]}x{want[1]} clips "
                          f"({clip_text(*want)}), this clip is {got[0]} frames of {got[2]}x{got[1]}: select "
                          "frames and size to match (--frames, --resize) or use --no-prior")


class PriorProblem(QuantProblem):
    """The RD search of a prior-coded stream: the decoder's exact program of residual plus prior."""

    def __init__(self, payload: Any, evaluator: Evaluator, pixels: int, overhead: int,
                 prior_tensors: Sequence[Any]) -> None:
        super().__init__(payload, evaluator, pixels, overhead)
        self.prior_tensors = list(prior_tensors)

    def network(self, steps: Sequence[int]) -> Any:
        ev = self.evaluator
        tensors = self.payload.qtensors(steps)
        if self.prior_tensors:
            tensors = add_prior(self.prior_tensors, tensors)
        return ev.arch.program(ev.record, ev.header, tensors)


def _masks(prior: Any) -> list[Optional[torch.Tensor]]:
    """The sparse prior's keep masks as float tensors (None: a dense tensor), or [] for a dense prior."""
    if prior is None or prior.masks is None:
        return []
    out = [None if m is None or bool(np.all(m)) else torch.from_numpy(np.asarray(m, bool)).float()
           for m in prior.masks]
    return out if any(m is not None for m in out) else []


def start_model(prior: Any, frames: np.ndarray, config: Any, adapt_steps: Optional[int] = None
                ) -> tuple[torch.nn.Module, int, float]:
    """The NeRV of ``prior.record`` with the prior's values, after its Meta-SGD steps on ``frames``.

    ``adapt_steps``: None = ``config.tiles.adapt_steps`` (-1: the prior's own K).  Without step
    sizes (a prior trained without Meta-SGD) no adaptation is made.

    Returns:
        ``(model on the CPU, steps taken, seconds)``.
    """
    from .models.nerv import Nerv

    model = Nerv(prior.record)
    with torch.no_grad():
        for p, i in zip(model.parameters(), range(len(prior.tensors))):
            p.copy_(torch.from_numpy(prior.values(i)).to(p.dtype))
    k = config.tiles.adapt_steps if adapt_steps is None else adapt_steps
    if k < 0:
        k = int(prior.meta.get("inner_steps", 0))
    t0 = time.perf_counter()
    if k and prior.lrs is not None:
        from .meta.nerv import adapt_prior, clip_targets

        device = resolve_device(config.fit.device)
        adapted = adapt_prior(prior, clip_targets(frames).to(device), k)
        with torch.no_grad():
            for p, a in zip(model.parameters(), adapted):
                p.copy_(a[0].cpu())
    else:
        k = 0
    return model, k, time.perf_counter() - t0


def fit_from(model: torch.nn.Module, frames: np.ndarray, config: Any, prior: Any = None,
             progress: Optional[ProgressFn] = None) -> FitResult:
    """The Adam fit of ``model`` (in place) on ``frames``, holding a sparse prior's zeros."""
    arch = ARCHS.by_name("nerv")
    masks = _masks(prior)
    hooks = FixedMasks(masks) if masks else FitHooks()
    record = model.record
    sampler = arch.sampler(record, frames, config.fit, None)
    return fit_sampler(model, sampler, config.fit, config.quant, hooks, progress=progress)


def code_fitted(model: torch.nn.Module, frames: np.ndarray, media: int, fps: Fraction, config: Any, prior: Any, *,
                paths: Sequence[str] = (), fit: Optional[FitResult] = None, preset: Optional[str] = None,
                metadata: bool = True, bpp: Optional[float] = None, psnr: Optional[float] = None,
                adapt_steps: int = 0, t0: Optional[float] = None) -> EncodeResult:
    """Quantize and code a fitted NeRV (as residuals from ``prior``, or as weights when ``prior`` is
    None), choose the steps (``bpp`` / ``psnr`` target, else the config's RD search) and decode the
    file back the decoder's way (closed loop: the reported PSNR is what any decoder gives)."""
    from .encoder import stream_header

    t0 = time.perf_counter() if t0 is None else t0
    arch = ARCHS.by_name("nerv")
    record = model.record
    rep = REPRESENTATIONS.by_name(config.representation)
    header = stream_header(frames, media, fps, config)
    arch.check(record, header)
    shapes = [tuple(s) for s in arch.param_shapes(record)]
    params = [p.detach().cpu() for p in model.parameters()]
    values = [p.numpy().astype(np.float64).reshape(s) for p, s in zip(params, shapes)]
    if prior is not None:
        values = [v - prior.values(i) for i, v in enumerate(values)]
    masks = _masks(prior)
    fit_masks = [None if m is None else m.numpy().reshape(-1).astype(bool) for m in masks]
    if masks:
        rep = REPRESENTATIONS.by_name("pruned")        # a sparse prior: its zeros are coded as a mask
        header = dataclasses.replace(header, representation=rep.wire_id)
    # the steps start where the weights themselves would (same precision as without a prior): the
    # residuals are smaller than the weights, so their symbols are, and they code cheaper
    start = tuple(quant.step_index_for(float(p.abs().max()) if p.numel() else 0.0, config.quant.bits)
                  for p in params)
    payload = rep.quant_payload([v.ravel() for v in values], shapes, start, fit_masks)
    if prior is not None:
        payload.cap = MAX_STEP - 1
    start = tuple(min(s, payload.max_step(i)) for i, s in enumerate(start))
    payload.steps = start
    fit_steps = None if fit is None else (config.fit.steps if not config.fit.epochs else None)
    meta = None
    if metadata:
        meta = {"encoder": f"nfcodec {__version__}", "preset": preset, "layout": "single", "arch": "nerv",
                "c1": record.c1, "mlp_hidden": record.mlp_hidden, "bits": config.quant.bits,
                "epochs": config.fit.epochs if fit is not None else 0, "steps": fit_steps, "lr": config.fit.lr,
                "batch_frames": config.fit.batch_frames, "seed": config.fit.seed, "adapt_steps": adapt_steps,
                "prior": None if prior is None else _name(prior)}

    def file_bytes(steps: Sequence[int]) -> bytes:
        chunks = [Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", record.pack())]
        if prior is not None:
            chunks.append(Chunk(b"PRIR", PriorRef(prior.digest).pack()))
        chunks += payload.chunks(steps)
        if meta is not None:
            chunks.append(Chunk(b"meTA", json.dumps(meta, separators=(",", ":")).encode()))
        return write_container([*chunks, Chunk(b"NEND", b"")])

    pixels = int(np.prod(frames.shape[:3]))
    problem = PriorProblem(payload, Evaluator(arch, record, header, frames), pixels, 0,
                           [] if prior is None else prior.tensors)
    problem.overhead = len(file_bytes(start)) - problem.total_bytes(start)
    steps: Sequence[int] = start
    rc = None
    if bpp is not None:
        budget = int(math.floor(bpp * pixels / 8))
        steps, _ = search_budget(problem, start, budget, min_bytes=int(math.ceil(0.95 * bpp * pixels / 8)))
        rc = {"mode": "bpp", "target": bpp}
    elif psnr is not None:
        steps, _ = search_quality(problem, start, 255.0 ** 2 / 10 ** (psnr / 10))
        rc = {"mode": "psnr", "target": psnr}
    elif config.quant.rd_search and payload.n_tensors:
        lam = problem.bpp(start) / max(problem.mse(start), 1e-6) if config.quant.rd_lambda <= 0 \
            else config.quant.rd_lambda
        steps, _ = search_lagrangian(problem, start, lam)
    data = file_bytes(steps)
    if bpp is not None and len(data) > budget:
        raise ConfigError(f"bpp={bpp} is {budget} bytes for {pixels} pixels; the smallest file coded from prior "
                          f"{_name(prior) if prior is not None else '(none)'} is {len(data)} bytes: ask for at "
                          f"least {8 * len(data) / pixels:.3g} bpp, or use --no-prior")
    stream = open_stream(data, priors=tuple(paths))        # closed loop, one frame at a time
    from .encoder import closed_loop_video

    recon, result_psnr, frame_psnr = closed_loop_video(stream, frames)
    if rc is not None:
        rc = {**rc, "bpp": round(stream.info.bpp, 6), "psnr": round(result_psnr, 4)}
    if fit is None:
        fit = FitResult(tuple(start), 0.0, float("nan"), "cpu")
    return EncodeResult(data=data, reconstruction=recon, psnr=result_psnr, bpp=stream.info.bpp, info=stream.info,
                        config=config, fit=fit, seconds=time.perf_counter() - t0,
                        frame_psnr=frame_psnr, rate_control=rc)


def encode_single_prior(frames: np.ndarray, media: int, fps: Fraction, config: Any, *, preset: Optional[str] = None,
                        metadata: bool = True, progress: Optional[ProgressFn] = None, bpp: Optional[float] = None,
                        psnr: Optional[float] = None, sizing: bool = False) -> EncodeResult:
    """Encode a clip as one NeRV coded from the prior ``config.tiles.prior`` (see the module
    docstring); ``sizing`` is ignored (the prior fixes the network).

    Raises:
        ConfigError: an image, another architecture, a prior for other media, architecture or
            clip size, a representation that cannot code residuals.
        PriorNotFoundError: no such prior.
    """
    from .tile_encoder import resolve_prior

    t0 = time.perf_counter()
    prior, paths = resolve_prior(config.tiles.prior, media)
    check_prior(prior, frames, media, config.model.arch)
    rep = REPRESENTATIONS.by_name(config.representation)
    if not getattr(rep, "priors", False):
        raise ConfigError(f"representation {rep.name} stores no weight values: it cannot be coded from a prior")
    if rep.name != "dense":
        raise ConfigError(f"representation {rep.name} cannot be coded from a NeRV prior (dense can; a sparse "
                          "prior's zeros are coded as a mask)")
    resolve_device(config.fit.device)       # a bad device fails before any work
    torch.manual_seed(config.fit.seed)
    model, k, _ = start_model(prior, frames, config)
    fit = fit_from(model, frames, config, prior, progress)
    return code_fitted(model, frames, media, fps, config, prior, paths=paths, fit=fit, preset=preset,
                       metadata=metadata, bpp=bpp, psnr=psnr, adapt_steps=k, t0=t0)
