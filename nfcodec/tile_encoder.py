"""Encoder of the ``tiles`` layout: an image fitted as a batch of small SIRENs, from a prior or from scratch.

    image --TileGrid.split (edge-padded)--> (tiles, th*tw, 3) targets
          --init: the prior's values in every tile (or SIREN's random init)
          --Meta-SGD adaptation: the prior's K steps with its learned step sizes (full tiles,
            GradNCP's test-time gradient re-scaling when the prior was trained with it)
          --Adam fine-tune (nfcodec.fit.fit_sampler: all tiles step together, batched matmuls)
          --residuals w - prior, quantized per tensor, RD step search / rate control on the
            decoder's exact output--> NHDR ARCH TILE [PRIR] payload meTA NEND

The tiles of an image never train one after another: every step is one batched forward of all
of them (:mod:`nfcodec.models.tiled`).  Pixels outside the image (the right and bottom tiles)
train on the image's edge, repeated, so that the fit spends nothing there that shows.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import quant
from .archs import ARCHS
from .bitstream import Chunk, write_container
from .bitstream.headers import PriorRef, TileRecord
from .decoder import decode_bytes
from .errors import ConfigError
from .fit import FitHooks, fit_sampler
from .metrics import psnr as image_psnr
from .models.tiled import TiledSiren, grid_coords
from .rdsearch import Evaluator, QuantProblem, search_budget, search_lagrangian, search_quality
from .residual import MAX_STEP, add_prior
from .results import EncodeResult
from .tiles import TileGrid
from .tiling import tile_shapes
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["encode_tiles", "resolve_prior", "TileSampler", "FixedMasks"]


def resolve_prior(spec: str, media: int) -> tuple[Any, tuple[str, ...]]:
    """``(prior, search paths)`` for a ``--prior`` value: ``""`` none, ``default`` the packaged
    prior of the media kind, a packaged prior's name, or a path."""
    if not spec:
        return None, ()
    from .priors import default_prior, load_prior

    if spec == "default":
        prior = default_prior(media)
        if prior is None:
            raise ConfigError(f"no default prior for {'images' if media == 0 else 'videos'} is installed")
        return prior, ()
    prior = load_prior(spec)
    return prior, ((spec,) if Path(spec).exists() else ())


class TileSampler:
    """Batches of the same random pixel positions in every tile: ``x`` (1, P, 2), ``y`` (tiles, P, 3)."""

    def __init__(self, coords: torch.Tensor, targets: torch.Tensor, batch: int) -> None:
        self.coords, self.targets = coords, targets
        n, per = targets.shape[:2]
        self.batch = per if batch <= 0 else max(1, min(per, batch // n))
        self.steps_per_epoch = max(1, per // self.batch)

    def to(self, device: torch.device) -> None:
        self.coords, self.targets = self.coords.to(device), self.targets.to(device)

    def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        per = self.targets.shape[1]
        if self.batch >= per:
            return self.coords[None], self.targets
        idx = torch.randperm(per, generator=gen)[:self.batch].to(self.coords.device)
        return self.coords[idx][None], self.targets[:, idx]

    def output(self, pred: torch.Tensor) -> torch.Tensor:
        return pred


class FixedMasks(FitHooks):
    """Keep the prior's pruned entries at exactly zero (a sparse prior: Meta-SparseINR)."""

    def __init__(self, masks: Sequence[Optional[torch.Tensor]]) -> None:
        self._masks = list(masks)

    def after_backward(self, params: Sequence[torch.Tensor]) -> None:
        for p, m in zip(params, self._masks):
            if m is not None and p.grad is not None:
                p.grad.mul_(m.to(p.device))

    def after_step(self, params: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, m in zip(params, self._masks):
                if m is not None:
                    p.mul_(m.to(p.device))

    def masks(self, params: Sequence[torch.Tensor]) -> list[Optional[torch.Tensor]]:
        return list(self._masks)


class TiledProblem(QuantProblem):
    """The RD search of a tiles stream: the decoder's exact program of residuals plus prior."""

    def __init__(self, payload: Any, evaluator: Evaluator, pixels: int, overhead: int, layout_plan: Any,
                 header: Any, prior_tensors: Sequence[Any]) -> None:
        super().__init__(payload, evaluator, pixels, overhead)
        self.layout_plan, self.header, self.prior_tensors = layout_plan, header, list(prior_tensors)

    def network(self, steps: Sequence[int]) -> Any:
        ev = self.evaluator
        tensors = self.payload.qtensors(steps)
        if self.prior_tensors:
            tensors = add_prior(self.prior_tensors, tensors)
        return LAYOUTS.by_name("tiles").build(self.layout_plan, ev.arch, ev.record, self.header, tensors)


def encode_tiles(frames: np.ndarray, media: int, fps: Fraction, config: Any, *, preset: Optional[str] = None,
                 metadata: bool = True, progress: Optional[Callable[[int, int, float], None]] = None,
                 bpp: Optional[float] = None, psnr: Optional[float] = None, sizing: bool = False) -> EncodeResult:
    """Encode an image with the tiles layout (see the module docstring)."""
    from .encoder import stream_header
    from .variants import Plan, Level

    t0 = time.perf_counter()
    if media != 0:
        raise ConfigError("layout tiles: this version tiles images only (use the single layout for videos)")
    if config.model.arch != "siren":
        raise ConfigError(f"layout tiles: architecture {config.model.arch} cannot be tiled (siren can)")
    rep = REPRESENTATIONS.by_name(config.representation)
    prior, paths = resolve_prior(config.tiles.prior, media)
    if prior is not None and not getattr(rep, "priors", False):
        raise ConfigError(f"representation {rep.name} stores no weight values: it cannot be coded from a prior")
    arch = ARCHS.by_name("siren")
    header = stream_header(frames, media, fps, config)
    if prior is not None:
        if prior.arch != "siren" or prior.media != media:
            raise ConfigError(f"prior {prior.name or prior.hexdigest[:16]} is for {prior.arch} "
                              f"{'images' if prior.media == 0 else 'videos'}, not siren images")
        record = prior.record
        th, tw = prior.size[1], prior.size[2]
    else:
        record = arch.make_record(config.model, header)
        th = tw = config.tiles.tile
    arch.check(record, header)
    tile = TileRecord(th, tw)
    grid = TileGrid(header.height, header.width, th, tw)
    shapes = tile_shapes(arch, record, grid.count)

    # ---- targets and initialisation
    padded = np.pad(frames[0], ((0, grid.rows * th - header.height), (0, grid.cols * tw - header.width), (0, 0)),
                    mode="edge")
    tiles, _ = TileGrid(padded.shape[0], padded.shape[1], th, tw).split(padded)
    y = torch.from_numpy(tiles.astype(np.float32) / 127.5 - 1.0)
    coords = grid_coords(th, tw)
    torch.manual_seed(config.fit.seed)
    init = None if prior is None else [torch.from_numpy(prior.values(i)) for i in range(len(prior.tensors))]
    model = TiledSiren(grid.count, record.in_features, record.out_features, record.width, record.depth,
                       record.w0_first, record.w0_hidden, init=init,
                       generator=torch.Generator().manual_seed(config.fit.seed))
    masks: list[Optional[torch.Tensor]] = []
    if prior is not None and prior.masks is not None:
        masks = [None if m is None or bool(np.all(m)) else
                 torch.from_numpy(np.asarray(m, bool)).float().expand(grid.count, *np.shape(m)).contiguous()
                 for m in prior.masks]
    t_adapt = time.perf_counter()
    k = 0
    if prior is not None and prior.lrs is not None:
        k = config.tiles.adapt_steps if config.tiles.adapt_steps >= 0 else int(prior.meta.get("inner_steps", 0))
        if k:   # the prior's own inner loop: Meta-SGD steps, GradNCP's Eq. 4 re-scaling if it was trained so
            from .meta.learn import adapt_prior
            adapted = adapt_prior(prior, coords, y, k)
            with torch.no_grad():
                for p, a in zip(model.params, adapted):
                    p.copy_(a)
    t_adapt = time.perf_counter() - t_adapt

    # ---- fine-tune all tiles together
    if masks and any(m is not None for m in masks):
        hooks: FitHooks = FixedMasks(masks)
    else:
        hooks = rep.fit_hooks(config, arch, record)
    sampler = TileSampler(coords, y, config.fit.batch_pixels)
    fit_cfg = config.fit if not config.tiles.tile_steps else dataclasses.replace(config.fit, steps=config.tiles.tile_steps)
    fit = fit_sampler(model, sampler, fit_cfg, config.quant, hooks, progress=progress) if fit_cfg.steps else None

    # ---- residuals, payload, steps
    values = [p.detach().numpy().astype(np.float64).reshape(s) for p, s in zip(model.params, shapes)]
    prior_tensors = list(prior.tensors) if prior is not None else []
    if prior is not None:
        values = [v - prior.values(i)[None] for i, v in enumerate(values)]
    fit_masks = []
    if fit is not None and fit.masks:
        fit_masks = list(fit.masks)
    elif masks and any(m is not None for m in masks):
        fit_masks = [None if m is None else m.numpy().reshape(-1).astype(bool) for m in masks]
    if rep.name == "pruned" and not fit_masks:
        fit_masks = [np.ones(int(np.prod(s)), bool) if len(s) >= 3 else None for s in shapes]
    if rep.name == "dense" and any(m is not None for m in fit_masks):
        rep = REPRESENTATIONS.by_name("pruned")     # a sparse prior: its zeros are coded as a mask
        header = dataclasses.replace(header, representation=rep.wire_id)
    # the steps start where the weights themselves would (same precision as without a prior): the
    # residuals are smaller than the weights, so their symbols are, and they code cheaper
    start = tuple(quant.step_index_for(float(p.detach().abs().max()) if p.numel() else 0.0, config.quant.bits)
                  for p in model.params)
    payload = rep.quant_payload([v.ravel() for v in values], shapes, start, fit_masks)
    if prior is not None:
        payload.cap = MAX_STEP - 1
    start = tuple(min(s, payload.max_step(i)) for i, s in enumerate(start))
    payload.steps = start

    meta = None
    if metadata:
        meta = {"encoder": "nfcodec", "preset": preset, "layout": "tiles", "tile": [th, tw], "tiles": grid.count,
                "width": record.width, "depth": record.depth, "steps": fit_cfg.steps, "lr": config.fit.lr,
                "adapt_steps": k, "prior": prior.name if prior is not None else None}

    def file_bytes(steps: Sequence[int]) -> bytes:
        chunks = [Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", record.pack()), Chunk(b"TILE", tile.pack())]
        if prior is not None:
            chunks.append(Chunk(b"PRIR", PriorRef(prior.digest).pack()))
        chunks += payload.chunks(steps)
        if meta is not None:
            chunks.append(Chunk(b"meTA", json.dumps(meta, separators=(",", ":")).encode()))
        return write_container([*chunks, Chunk(b"NEND", b"")])

    plan = Plan((Level(1, 0, 0, 0, (), 0, 0),), 1, extra=grid)
    problem = TiledProblem(payload, Evaluator(arch, record, header, frames), header.width * header.height, 0, plan, header, prior_tensors)
    problem.overhead = len(file_bytes(start)) - problem.total_bytes(start)
    steps: Sequence[int] = start
    rc = None
    pixels = header.width * header.height
    if bpp is not None:
        budget = int(math.floor(bpp * pixels / 8))
        floor = int(math.ceil(0.95 * bpp * pixels / 8))
        steps, _ = search_budget(problem, start, budget, min_bytes=floor)
        rc = {"mode": "bpp", "target": bpp}
    elif psnr is not None:
        steps, _ = search_quality(problem, start, 255.0 ** 2 / 10 ** (psnr / 10))
        rc = {"mode": "psnr", "target": psnr}
    elif config.quant.rd_search and payload.n_tensors:
        lam = problem.bpp(start) / max(problem.mse(start), 1e-6) if config.quant.rd_lambda <= 0 else config.quant.rd_lambda
        steps, _ = search_lagrangian(problem, start, lam)
    data = file_bytes(steps)
    if bpp is not None and len(data) > budget:   # every tensor at its coarsest step and still over
        raise ConfigError(f"bpp={bpp} is {budget} bytes for {pixels} pixels; the smallest tiles file "
                          f"({grid.count} tiles) is {len(data)} bytes: ask for at least "
                          f"{8 * len(data) / pixels:.3g} bpp, or use --no-prior")
    decoded = decode_bytes(data, priors=paths)
    if meta is not None:
        meta["adapt_seconds"] = round(t_adapt, 3)
    result_psnr = image_psnr(decoded.image, frames[0])
    if rc is not None:
        rc = {**rc, "bpp": round(decoded.info.bpp, 6), "psnr": round(result_psnr, 4)}
    return EncodeResult(data=data, reconstruction=decoded.image, psnr=result_psnr, bpp=decoded.info.bpp,
                        info=decoded.info, config=config, fit=fit, seconds=time.perf_counter() - t0,
                        rate_control=rc)
