"""Encoder of the ``width-chunks`` layout: a SIREN grown in width, level by level, coded one segment
per level so that every prefix of the file decodes (Streamable Neural Fields, Cho et al. 2022).

**Progressive training** (the paper's Alg. 1, the default).  Level 1 is an ordinary SIREN of width
``w_1`` (SIREN initialisation).  Level ``k`` adds units ``[w_{k-1}, w_k)``:

* their lateral weights (from the inputs, or from older units) get the SIREN initialisation of
  the layer at width ``w_k``, their other new weights (between new units, and into the RGB head)
  start at zero, so the grown network starts exactly where the smaller one ended;
* weights from new units into older units do not exist (structural zeros of the format);
* the older weights stay frozen, at their *quantized* values: each level is fitted on top of what
  the decoder will really have, so it also corrects the quantization error of the levels below.

After each level's fit its new parts are quantized (one step per part, chosen by the RD search of
:mod:`nfcodec.rdsearch` on the decoder's exact output of that level) and coded as a segment.

**Slimmable training** (Alg. 2, ``grow_training="slimmable"``, spectral growing): one fit of the
widest network in which every step's loss is the mean over the levels' widths; the structure
(no weights from newer to older units) is the same, so one forward pass gives every width.

**Spatial / temporal growing** (Eq. 2): level ``k`` is trained to reproduce the first
``cover_k`` columns (frames) and to predict zero elsewhere, so that the next level only adds.

**Rate control.** ``--bpp`` sizes the widths (scaled together) for the whole file and shares
the budget between levels in proportion to their parameters; ``--level-bpp`` gives each level's
cumulative size (the widths, unless given, are then chosen level by level).  Each level's steps
are searched within its budget (:func:`~nfcodec.rdsearch.search_budget`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import quant
from .archs import ARCHS
from .bitstream import Chunk, GrowRecord, SegmentHeader, StreamHeader, write_container
from .bitstream.headers import GROWINGS
from .config import DEFAULT_LEVELS, CodecConfig
from .decoder import open_stream
from .encoder import meta_dict, rd_steps
from .errors import ConfigError
from .fit import FitHooks, fit_sampler
from .metrics import psnr as psnr_of
from .rdsearch import Evaluator, QuantProblem, search_budget
from .results import EncodeResult, FitResult
from .variants import LAYOUTS, REPRESENTATIONS
from .widthchunks import MAX_PART_STEP, assemble, level_rows, pack_psnr, sliced_shape

__all__ = ["encode_grown", "default_widths", "GrowHooks", "level_params"]

ProgressFn = Callable[[int, int, float], None]
BAND = 0.05
OVERSIZE = 1.3
LEVEL_OVERHEAD = 35         # bytes of a level besides its records: SEGM chunk, TDAT chunk framing


def default_widths(width: int, levels: int = DEFAULT_LEVELS) -> tuple[int, ...]:
    """The default ladder: level 1 half of ``width``, then equal steps up to ``width`` (e.g. 32, 43,
    53, 64).  A wide first level leaves the later ones less to add on top of a frozen base: on a
    Kodak crop (fast preset) the top level came 0.66 dB below a single-width file of its size with
    24, 32, 40, 48 against 1.45 dB with equal steps 12, 24, 36, 48 (docs/benchmarks.md)."""
    if levels <= 1:
        return (max(1, width),)
    half = width / 2
    ws = sorted({max(1, round(half + half * k / (levels - 1))) for k in range(levels)})
    return tuple(ws)


def level_params(arch: Any, record: Any, widths: Sequence[int]) -> list[list[tuple[int, ...]]]:
    """The shapes of the parts each level stores (levels 1..K of ``widths``)."""
    out, prev = [], 0
    for w in widths:
        rec = arch.growth.narrow(record, w)
        shapes = arch.param_shapes(rec)
        out.append([sliced_shape(shapes[t], sl) for t, sl in arch.growth.slices(rec, prev, w)])
        prev = w
    return out


def _covers(growing: str, n: int, header: StreamHeader) -> tuple[int, ...]:
    if growing == "spectral":
        return (0,) * n
    total = header.width if growing == "spatial" else header.frames
    if total < n:
        what = "columns" if growing == "spatial" else "frames"
        raise ConfigError(f"{growing} growing in {n} levels needs at least {n} {what}, the signal has {total}")
    return tuple(round(total * (k + 1) / n) for k in range(n))


class GrowHooks(FitHooks):
    """One level's fit: the representation's hooks, plus only the level's parts train and every
    other entry is held at its frozen value (older levels' quantized weights, structural zeros)."""

    def __init__(self, inner: FitHooks, train: Sequence[torch.Tensor], frozen: Sequence[torch.Tensor]) -> None:
        self.inner, self.train, self.frozen = inner, list(train), list(frozen)
        self.quantized = inner.quantized

    def prepare(self, model):
        return self.inner.prepare(model)

    def trainable(self, net):
        return self.inner.trainable(net)

    def lr(self, lr):
        return self.inner.lr(lr)

    def phases(self, params, fit_steps, lr, final_lr_ratio):
        return self.inner.phases(params, fit_steps, lr, final_lr_ratio)

    def after_backward(self, params) -> None:
        for p, m in zip(params, self.train):
            if p.grad is not None:
                p.grad.mul_(m.to(p.grad.device))
        self.inner.after_backward(params)

    @torch.no_grad()
    def after_step(self, params) -> None:
        self.inner.after_step(params)
        for p, m, f in zip(params, self.train, self.frozen):
            p.copy_(torch.where(m.to(p.device), p, f.to(p.device)))

    def masks(self, params):
        return self.inner.masks(params)

    def result(self, net):
        return self.inner.result(net)


class _Slim(torch.nn.Module):
    """Alg. 2: the widest network evaluated at every level's width in one pass.  With no weights
    from newer into older units, the hidden units ``[0, w)`` of the widest network are those of
    the width-``w`` network; each width's output is its own head on them.  Output (K, N, 3)."""

    def __init__(self, siren: torch.nn.Module, widths: Sequence[int]) -> None:
        super().__init__()
        self.siren, self.widths = siren, tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.siren
        h = torch.sin(s.w0_first * s.hidden[0](x))
        for layer in s.hidden[1:]:
            h = torch.sin(s.w0_hidden * layer(h))
        w, b = s.head.weight, s.head.bias
        return torch.stack([h[..., :k] @ w[:, :k].T + b for k in self.widths])


def _image_sampler(frames: np.ndarray, cols: int, batch: int) -> Any:
    """Eq. 2 for an image: pixels outside the first ``cols`` columns have target 0."""
    from .render import image_coords, image_targets
    from .samplers import PixelSampler

    h, w = frames.shape[1:3]
    target = image_targets(frames[0]).clone()
    if cols < w:
        target.view(h, w, 3)[:, cols:] = 0.0
    return PixelSampler(image_coords(h, w), target, batch)


def _video_sampler(frames: np.ndarray, n_frames: int, cols: int, batch: int) -> Any:
    """Eq. 2 for a clip (SIREN on t, row, col): targets 0 outside frames ``[0, n_frames)`` and
    columns ``[0, cols)``."""
    from .samplers import VideoPixelSampler

    t_n, h, w = frames.shape[:3]

    class Region(VideoPixelSampler):
        def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            coords, target = super().next(gen)
            if n_frames >= t_n and cols >= w:
                return coords, target
            # the sampler's coordinates are cell centres: recover the indices exactly
            t = torch.round(((coords[:, 0] + 1) * t_n - 1) / 2)
            c = torch.round(((coords[:, 2] + 1) * w - 1) / 2)
            keep = (t < n_frames) & (c < cols)
            return coords, target * keep[:, None].to(target.dtype)

    return Region(frames, batch)


def _evaluator(arch: Any, rec: Any, header: StreamHeader, frames: np.ndarray, n_frames: int, cols: int,
               full: bool = False) -> Evaluator:
    """The RD search's distortion on what the level reconstructs (its frames and columns)."""
    ev = Evaluator(arch, rec, header, frames[:n_frames], full=full)
    h, w = frames.shape[1:3]
    if cols < w:
        idx = ev.idx if ev.idx is not None else np.arange(h * w, dtype=np.int64)
        ev.idx = idx[idx % w < cols]
        ev.targets = [frames[k].reshape(-1, 3)[ev.idx] for k in ev.ks]
    return ev


@dataclass
class _LevelProblem(QuantProblem):
    """One level's RD problem: its parts' steps; the network is levels 1..k assembled."""

    build: Optional[Callable[[list[Any]], Any]] = None

    def network(self, steps: Sequence[int]):
        return self.build(self.payload.qtensors(steps))


@dataclass
class _Level:
    width: int
    cover: int
    chunks: list[Chunk]
    parts: list[tuple[int, tuple[slice, ...], Any]]    # (tensor, slice, QTensor)
    fit: FitResult
    steps: tuple[int, ...]
    mse: float = 0.0            # on the level's evaluation set (the RD search's distortion)


class _Overflow(Exception):
    """--bpp: the whole file is over budget at the coarsest steps (refit narrower)."""

    def __init__(self, size: int, budget: int) -> None:
        super().__init__(f"{size} bytes over the budget of {budget}")
        self.size, self.budget = size, budget


class _Encoder:
    """State of one width-chunks encode."""

    def __init__(self, frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, widths: Sequence[int],
                 preset: Optional[str], metadata: bool, progress: Optional[ProgressFn]) -> None:
        g = config.grow
        self.arch = ARCHS.by_name(config.model.arch)
        self.rep = REPRESENTATIONS.by_name(config.representation)
        self.frames, self.media, self.fps, self.progress = frames, media, fps, progress
        self.widths = tuple(widths)
        self.config = config.replace(width=self.widths[-1], widths=self.widths, qat_fraction=0.0)
        T, H, W = frames.shape[:3]
        self.header = StreamHeader(media=media, width=W, height=H, frames=T, fps_num=fps.numerator,
                                   fps_den=fps.denominator, channels=3, bit_depth=8, colorspace=0,
                                   arch=self.arch.wire_id, representation=self.rep.wire_id,
                                   layout=LAYOUTS.by_name("width-chunks").wire_id, n_segments=len(self.widths))
        self.record = self.arch.make_record(self.config.model, self.header)
        self.arch.check(self.record, self.header)
        self.covers = _covers(g.growing, len(self.widths), self.header)
        self.grow = GrowRecord(next(k for k, v in GROWINGS.items() if v == g.growing), self.widths, self.covers)
        self.meta = None
        if metadata:
            self.meta = meta_dict(self.config, preset, media == 1)
            self.meta.update(layout="width-chunks", widths=list(self.widths), growing=g.growing,
                             grow_training=g.grow_training)
        self.level_steps = g.level_steps or self.config.fit.steps
        self.pixels = T * H * W
        self.done = 0
        self.hard_budgets = True      # --level-bpp: every level's; --bpp: only the whole file's
        self.levels: list[_Level] = []

    # ------------------------------------------------------------------ bytes
    def head_chunks(self, psnr_chunk: bytes) -> list[Chunk]:
        return [Chunk(b"NHDR", self.header.pack()), Chunk(b"ARCH", self.record.pack()),
                Chunk(b"GROW", self.grow.pack()), Chunk(b"pSNR", psnr_chunk)]

    def placeholder(self) -> bytes:
        return pack_psnr([None] * len(self.widths))

    def file(self, levels: Sequence[_Level], psnr_chunk: bytes, final: bool) -> bytes:
        chunks = self.head_chunks(psnr_chunk) + [c for lv in levels for c in lv.chunks]
        if final and self.meta is not None:
            chunks.append(Chunk(b"meTA", json.dumps(self.meta, separators=(",", ":")).encode()))
        data = write_container([*chunks, Chunk(b"NEND", b"")])
        return data if final else data[:-12]          # a prefix ends with its last level

    # ------------------------------------------------------------------ fitting
    def _cb(self, total_levels_steps: int) -> Optional[ProgressFn]:
        if self.progress is None:
            return None
        base = self.done

        def cb(step: int, total: int, psnr: float) -> None:
            self.progress(base + step, base + total + total_levels_steps, psnr)

        return cb

    def _sampler(self, k: int, rec: Any) -> Any:
        fit = self.config.fit
        n_frames, cols = self.extent(k)
        if self.media == 0:
            return _image_sampler(self.frames, cols, fit.batch_pixels)
        return _video_sampler(self.frames, n_frames, cols, fit.batch_pixels)

    def extent(self, k: int) -> tuple[int, int]:
        T, _, W = self.frames.shape[:3]
        growing = self.config.grow.growing
        c = self.covers[k]
        return (c if growing == "temporal" else T), (c if growing == "spatial" else W)

    def fitted_level(self, k: int, model: torch.nn.Module, result: FitResult, budget: Optional[int]) -> _Level:
        """Quantize level ``k``'s parts of ``model`` (steps by RD search) into its segment."""
        arch, rec = self.arch, self.arch.growth.narrow(self.record, self.widths[k])
        start = self.widths[k - 1] if k else 0
        slices = arch.growth.slices(rec, start, self.widths[k])
        params = [p.detach().cpu().numpy().astype(np.float64) for p in model.parameters()]
        masks_full = list(result.masks) or [None] * len(params)
        values, shapes, masks = [], [], []
        for t, sl in slices:
            part = params[t][sl]
            values.append(part.ravel())
            shapes.append(part.shape)
            m = masks_full[t]
            masks.append(None if m is None else m.reshape(params[t].shape)[sl].ravel())
        bits = self.config.quant.bits
        steps0 = [min(quant.step_index_for(float(np.abs(v).max()) if v.size else 0.0, bits), MAX_PART_STEP - 1)
                  for v in values]
        payload = self.rep.quant_payload(values, shapes, steps0, masks)
        payload.cap = MAX_PART_STEP - 1
        shapes_full = arch.param_shapes(rec)
        fixed = [(t, sl, qt) for lv in self.levels for (t, sl, qt) in lv.parts]

        def build(qts: list[Any]) -> Any:
            parts: list[list[Any]] = [[] for _ in shapes_full]
            for t, sl, qt in fixed:
                parts[t].append((sl, qt))
            for (t, sl), qt in zip(slices, qts):
                parts[t].append((sl, qt))
            return arch.program(rec, self.header, assemble(shapes_full, parts))

        n_frames, cols = self.extent(k)
        seg = Chunk(b"SEGM", SegmentHeader(index=k, kind=1, start=start, stop=self.widths[k]).pack())
        problem = _LevelProblem(payload, _evaluator(arch, rec, self.header, self.frames, n_frames, cols),
                                self.pixels, 0, build=build)

        def level_chunks(steps: Sequence[int]) -> list[Chunk]:
            return [seg, *payload.chunks(steps)]

        def size_with(steps: Sequence[int]) -> int:
            lv = _Level(0, 0, level_chunks(steps), [], result, tuple(steps))
            return len(self.file([*self.levels, lv], self.placeholder(), k == len(self.widths) - 1))

        problem.overhead = size_with(steps0) - problem.total_bytes(steps0)
        steps = tuple(steps0)
        if budget is not None:
            floor = int(math.ceil((1 - BAND) * budget))
            steps, _ = search_budget(problem, steps, budget, min_bytes=floor)
            if problem.total_bytes(steps) > budget and not self.hard_budgets and k == len(self.widths) - 1:
                raise _Overflow(problem.total_bytes(steps), budget)
            if problem.total_bytes(steps) > budget and self.hard_budgets:
                raise ConfigError(f"level {k + 1}: {problem.total_bytes(steps)} bytes at the coarsest steps, over its "
                                  f"budget of {budget} bytes ({8 * budget / self.pixels:.4g} bpp); ask for more bits "
                                  "or narrower widths")
        elif self.config.quant.rd_search and payload.n_tensors:
            steps, _ = rd_steps(problem, steps, self.config.quant.rd_lambda)
        mse = problem.mse(steps)
        if k and self.config.grow.growing == "spectral" and mse > self.levels[-1].mse:
            # quantized this coarsely, the level would lose quality: store it as zeros instead
            # (its units then add nothing, and the level decodes exactly as the one below)
            payload = self.rep.quant_payload([np.zeros_like(v) for v in values], shapes, steps0, masks)
            payload.cap = MAX_PART_STEP - 1
            steps, mse = tuple(steps0), self.levels[-1].mse
        qts = payload.qtensors(steps)
        parts = [(t, sl, qt) for (t, sl), qt in zip(slices, qts)]
        return _Level(self.widths[k], self.covers[k], [seg, *payload.chunks(steps)], parts, result, tuple(steps), mse)

    def init_model(self, k: int, gen: torch.Generator) -> tuple[torch.nn.Module, list[torch.Tensor], list[torch.Tensor]]:
        """Level ``k``'s network: SIREN init, new weights between new units (and into the head) zero,
        older weights at their quantized values, structural zeros; and which entries train."""
        arch = self.arch
        rec = arch.growth.narrow(self.record, self.widths[k])
        start = self.widths[k - 1] if k else 0
        model = arch.build(rec).init_weights_(gen)
        shapes = arch.param_shapes(rec)
        train = [torch.zeros(s, dtype=torch.bool) for s in shapes]
        for t, sl in arch.growth.slices(rec, start, self.widths[k]):
            train[t][sl] = True
        frozen = [torch.zeros(s, dtype=torch.float32) for s in shapes]
        if k:
            prev_rec = arch.growth.narrow(self.record, start)
            parts = [[] for _ in arch.param_shapes(prev_rec)]
            for lv in self.levels:
                for t, sl, qt in lv.parts:
                    parts[t].append((sl, qt))
            for t, qt in enumerate(assemble(arch.param_shapes(prev_rec), parts)):
                frozen[t][tuple(slice(0, n) for n in qt.q.shape)] = torch.from_numpy(qt.values()).float()
        with torch.no_grad():
            for t, p in enumerate(model.parameters()):
                init = p.detach().clone()
                if k and p.ndim == 2 and t != 0:        # columns index hidden units: new ones start at 0
                    init[:, start:] = 0.0
                p.copy_(torch.where(train[t], init, frozen[t]))
        return model, train, frozen

    def fit_progressive(self, budgets: Optional[Sequence[int]]) -> None:
        fit_cfg = dataclasses.replace(self.config.fit, steps=self.level_steps, epochs=0)
        for k in range(len(self.widths)):
            gen = torch.Generator().manual_seed(self.config.fit.seed + k)
            torch.manual_seed(self.config.fit.seed + k)
            model, train, frozen = self.init_model(k, gen)
            rec = self.arch.growth.narrow(self.record, self.widths[k])
            hooks = GrowHooks(self.rep.fit_hooks(self.config, self.arch, rec, eligible=train), train, frozen)
            remaining = self.level_steps * (len(self.widths) - k - 1)
            result = fit_sampler(model, self._sampler(k, rec), fit_cfg, self.config.quant, hooks,
                                 progress=self._cb(remaining))
            self.done += self.level_steps
            self.levels.append(self.fitted_level(k, model, result, None if budgets is None else budgets[k]))

    def fit_slimmable(self, budgets: Optional[Sequence[int]]) -> None:
        if self.config.grow.growing != "spectral":
            raise ConfigError("slimmable training supports spectral growing only (use grow_training=progressive)")
        arch, k_last = self.arch, len(self.widths) - 1
        fit_cfg = dataclasses.replace(self.config.fit, steps=self.level_steps, epochs=0)
        gen = torch.Generator().manual_seed(self.config.fit.seed)
        torch.manual_seed(self.config.fit.seed)
        model = arch.build(self.record).init_weights_(gen)
        shapes = arch.param_shapes(self.record)
        allowed = [torch.zeros(s, dtype=torch.bool) for s in shapes]
        prev = 0
        for w in self.widths:
            for t, sl in arch.growth.slices(self.record, prev, w):
                allowed[t][sl] = True
            prev = w
        frozen = [torch.zeros(s) for s in shapes]
        with torch.no_grad():
            for p, m in zip(model.parameters(), allowed):
                p.mul_(m)
        rep_hooks = self.rep.fit_hooks(self.config, arch, self.record, eligible=allowed)
        widths = self.widths

        class SlimHooks(GrowHooks):
            def prepare(self, model):
                return _Slim(self.inner.prepare(model), widths)

            def trainable(self, net):
                return self.inner.trainable(net.siren)

        hooks = SlimHooks(rep_hooks, allowed, frozen)
        result = fit_sampler(model, self._sampler(k_last, self.record), fit_cfg, self.config.quant, hooks,
                             progress=self._cb(0))
        self.done += self.level_steps
        for k, w in enumerate(self.widths):      # quantize level by level on top of the levels below
            sub = _narrowed(model, self.arch.growth.narrow(self.record, w), arch)
            res = dataclasses.replace(result, masks=_narrow_masks(result.masks, arch.param_shapes(self.record),
                                                                  arch.param_shapes(arch.growth.narrow(self.record, w))))
            self.levels.append(self.fitted_level(k, sub, res, None if budgets is None else budgets[k]))


def _narrowed(model: torch.nn.Module, rec: Any, arch: Any) -> torch.nn.Module:
    sub = arch.build(rec)
    with torch.no_grad():
        for p, q in zip(sub.parameters(), model.parameters()):
            p.copy_(q[tuple(slice(0, n) for n in p.shape)])
    return sub


def _narrow_masks(masks: Sequence[Any], full: Sequence[tuple[int, ...]], shapes: Sequence[tuple[int, ...]]) -> tuple:
    if not masks:
        return ()
    return tuple(None if m is None else m.reshape(f)[tuple(slice(0, n) for n in s)].ravel()
                 for m, f, s in zip(masks, full, shapes))


# --------------------------------------------------------------------------- sizing


def _predicted(rep: Any, arch: Any, record: Any, widths: Sequence[int], config: CodecConfig) -> float:
    return sum(rep.predicted_bits(shapes, config) for shapes in level_params(arch, record, widths))


def _scaled_widths(widths: Sequence[int], scale: float) -> tuple[int, ...]:
    out: list[int] = []
    for w in widths:
        v = min(4096, max(1, round(w * scale)))
        out.append(max(v, out[-1] + 1) if out else v)
    return tuple(out)


def _widths_for_bits(rep: Any, arch: Any, record: Any, widths: Sequence[int], config: CodecConfig,
                     bits: float) -> tuple[int, ...]:
    """``widths`` scaled together so that the predicted file is about ``bits``."""
    lo, hi = 1 / 64, 64.0
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if _predicted(rep, arch, record, _scaled_widths(widths, mid), config) > bits:
            hi = mid
        else:
            lo = mid
    return _scaled_widths(widths, lo)


def _widths_for_levels(rep: Any, arch: Any, record: Any, config: CodecConfig, n: int,
                       level_bits: Sequence[float]) -> tuple[int, ...]:
    """Level by level, the widest width whose predicted cumulative size fits the level's bits."""
    out: list[int] = []
    for bits in level_bits[:n]:
        w = (out[-1] + 1) if out else 1
        while w < 4096 and _predicted(rep, arch, record, [*out, w + 1], config) <= bits:
            w += 1
        out.append(w)
    return tuple(out)


# --------------------------------------------------------------------------- entry point


def encode_grown(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, *, preset: Optional[str] = None,
                 metadata: bool = True, progress: Optional[ProgressFn] = None, bpp: Optional[float] = None,
                 psnr: Optional[float] = None, sizing: bool = True) -> EncodeResult:
    """Encode ``frames`` (T, H, W, 3) uint8 in the width-chunks layout (see the module docstring).

    Raises:
        ConfigError: an architecture or representation that cannot grow, a target PSNR (not
            supported in this layout), level budgets that do not match the levels, or a budget a
            level cannot meet.
    """
    t0 = time.perf_counter()
    arch = ARCHS.by_name(config.model.arch)
    rep = REPRESENTATIONS.by_name(config.representation)
    g = config.grow
    if arch.growth is None:
        growable = [a.name for a in ARCHS if a.growth is not None]
        raise ConfigError(f"layout width-chunks grows {' and '.join(growable)} networks; {arch.name} cannot grow in "
                          f"width (use --arch {growable[0]})")
    if not getattr(rep, "growable", False):
        raise ConfigError(f"layout width-chunks supports the dense and pruned representations, not {rep.name}")
    if psnr is not None:
        raise ConfigError("--psnr is not supported with layout width-chunks: use --bpp or --level-bpp")
    if g.growing == "temporal" and media != 1:
        raise ConfigError("temporal growing needs a video")
    if g.level_bpp and bpp is not None:
        raise ConfigError("give --bpp (the whole file) or --level-bpp (each level), not both")
    if g.level_bpp and g.widths and len(g.level_bpp) != len(g.widths):
        raise ConfigError(f"{len(g.level_bpp)} level budgets for {len(g.widths)} widths")
    config = rep.rate_config(config, [], None) if (bpp is not None or g.level_bpp) else config
    pixels = int(np.prod(frames.shape[:3]))
    header0 = StreamHeader(media=media, width=frames.shape[2], height=frames.shape[1], frames=frames.shape[0],
                           fps_num=fps.numerator, fps_den=fps.denominator, channels=3, bit_depth=8, colorspace=0,
                           arch=arch.wire_id, representation=rep.wire_id, layout=1, n_segments=1)
    record0 = arch.make_record(config.model, header0)
    widths = g.widths or default_widths(config.model.width, len(g.level_bpp) or DEFAULT_LEVELS)
    budgets: Optional[list[int]] = None
    rc: Optional[dict[str, Any]] = None
    if g.level_bpp:
        budgets = [int(math.floor(b * pixels / 8)) for b in g.level_bpp]
        if not g.widths:     # the payload of each prefix: its budget less the headers and level overheads
            probe = _Encoder(frames, media, fps, config, default_widths(64, len(budgets)), preset, False, None)
            head = len(probe.file([], probe.placeholder(), False))
            per_level = LEVEL_OVERHEAD + 4 * len(arch.param_shapes(record0))
            widths = _widths_for_levels(rep, arch, record0, config, len(budgets),
                                        [OVERSIZE * 8 * (b - head - per_level * (k + 1)) for k, b in enumerate(budgets)])
        rc = {"mode": "level_bpp", "target": list(g.level_bpp)}
    elif bpp is not None:
        budget = int(math.floor(bpp * pixels / 8))
        widths = _widths_for_bits(rep, arch, record0, widths, config, OVERSIZE * 8 * budget)
        rc = {"mode": "bpp", "target": bpp}
        for fit_no in range(1, 4):
            enc = _Encoder(frames, media, fps, config, widths, preset, metadata, progress)
            if enc.meta is not None:
                enc.meta["rate_control"] = rc
            enc.hard_budgets = False
            try:
                _run(enc, _shared_budgets(enc, arch, record0, widths, budget, pixels))
                size = len(enc.file(enc.levels, enc.placeholder(), True))
                if size >= (1 - BAND) * budget or fit_no == 3:
                    return _finish(enc, t0, {**rc, "fits": fit_no})
                widths = _scaled_widths(widths, 1.1 * math.sqrt(budget / size))    # under the band: wider
            except _Overflow as e:
                if fit_no == 3:
                    raise ConfigError(f"bpp={bpp}: {e.size} bytes at the coarsest steps after 3 fits, over the "
                                      f"budget of {e.budget} bytes; ask for more bits or narrower widths") from None
                widths = _scaled_widths(widths, 0.9 * math.sqrt(e.budget / e.size))
    enc = _Encoder(frames, media, fps, config, widths, preset, metadata, progress)
    if rc is not None and enc.meta is not None:
        enc.meta["rate_control"] = rc
    _check_first(enc, budgets, pixels)
    _run(enc, budgets)
    return _finish(enc, t0, rc)


def _run(enc: _Encoder, budgets: Optional[Sequence[int]]) -> None:
    (enc.fit_slimmable if enc.config.grow.grow_training == "slimmable" else enc.fit_progressive)(budgets)


def _check_first(enc: _Encoder, budgets: Optional[Sequence[int]], pixels: int) -> None:
    head = len(enc.file([], enc.placeholder(), False))
    if budgets is not None and budgets[0] <= head + 64:
        raise ConfigError(f"level 1's budget of {budgets[0]} bytes ({8 * budgets[0] / pixels:.4g} bpp) does not "
                          f"cover the stream's headers ({head} bytes) and a level: ask for more bits")


def _shared_budgets(enc: _Encoder, arch: Any, record: Any, widths: Sequence[int], budget: int,
                    pixels: int) -> list[int]:
    """--bpp: each level's cumulative budget, the payload shared in proportion to the parameters
    (the fixed head, and the final tail, are not shared out)."""
    sizes = [sum(math.prod(s) for s in shapes) for shapes in level_params(arch, record, widths)]
    shares = np.cumsum(sizes) / sum(sizes)
    head = len(enc.file([], enc.placeholder(), False))
    tail = len(enc.file([], enc.placeholder(), True)) - head
    budgets = [head + int((budget - head - tail) * s) for s in shares[:-1]] + [budget]
    _check_first(enc, budgets, pixels)
    return budgets


def _finish(enc: _Encoder, t0: float, rc: Optional[dict[str, Any]]) -> EncodeResult:
    """Measure every level on the decoder's output, write the pSNR chunk, decode the whole file."""
    draft = enc.file(enc.levels, enc.placeholder(), True)
    psnrs = []
    for k in range(len(enc.levels)):
        stream = open_stream(draft, level=k + 1)
        psnrs.append(_level_psnr(stream, enc.frames))
    data = enc.file(enc.levels, pack_psnr(psnrs), True)       # same length as the draft
    plan = open_stream(data).plan
    stream = open_stream(data)
    final = _frames(stream)
    rows = level_rows(plan, psnrs, enc.pixels)
    fits = [lv.fit for lv in enc.levels]
    fit = FitResult((), sum(f.seconds for f in fits), fits[-1].train_psnr, fits[-1].device)
    if rc is not None:
        rc = {**rc, "widths": list(enc.widths), "bpp": round(8 * len(data) / enc.pixels, 6),
              "level_bpp": [r["bpp"] for r in rows]}
    src = enc.frames
    if enc.media == 0:
        recon, score = final[0], psnr_of(final[0], src[0])
        frame_psnr: tuple[float, ...] = ()
    else:
        recon = final
        mses = [float(np.mean((f.astype(np.float64) - s[:, :f.shape[1]]) ** 2)) for f, s in zip(final, src)]
        pooled = float(np.mean(mses))
        score = math.inf if pooled == 0 else 10 * math.log10(255.0**2 / pooled)
        frame_psnr = tuple(math.inf if m == 0 else 10 * math.log10(255.0**2 / m) for m in mses)
    return EncodeResult(data=data, reconstruction=recon, psnr=score, bpp=stream.info.bpp, info=stream.info,
                        config=enc.config, fit=fit, seconds=time.perf_counter() - t0, frame_psnr=frame_psnr,
                        rate_control=rc, levels=tuple(rows))


def _frames(stream: Any) -> np.ndarray:
    return np.stack([f for _, f in stream.frames(range(stream.n_frames))])


def _level_psnr(stream: Any, src: np.ndarray) -> float:
    """PSNR of a level's decoded output against the part of the source it reconstructs."""
    got = _frames(stream)
    ref = src[:got.shape[0], :, :got.shape[2]]
    return psnr_of(got, ref)
