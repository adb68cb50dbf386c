"""Encoder of the latent-grid field (arch ``grid``): a rate-distortion fit, then the file.

    image --GridField (zero latents, small synthesis)
          --noise phase: latents + U(-1/2, 1/2), loss MSE + lambda * bits/pixel, cosine learning
            rate (whole image, or random crops with grid_crop); with a --bpp or --psnr target a
            controller moves lambda, measured on the rounded latents every CONTROL_EVERY steps
          --straight-through phase: rounded latents, low learning rate
          --rounded latents (step 1.0) + synthesis weights quantized (bit depth searched),
            latents coded with the causal4 context model, closed-loop exact decode
          --> NHDR ARCH TDAT meTA NEND
              (layout width-chunks: NHDR ARCH GROW pSNR, then per level SEGM TDAT with its planes,
              coarse to fine, the synthesis in the first; meTA NEND)

With ``--bpp`` (``--psnr``) the last step also scales the latents by a factor ``delta`` (and the
first synthesis layer by its inverse) so that the file meets the target, by bisection on the
real coded size (on the exact decode's PSNR); a --bpp file over its budget is also trimmed by
moving single latents across their rounding boundary (:func:`_trim`), and the better decode kept.
Design and measurements: docs/grid.md.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace as dataclass_replace
from fractions import Fraction
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import quant
from .archs import ARCHS
from .archs.grid import LATENT_STEP, MAX_LATENT, planes_added
from .bitstream import Chunk, CodedTensor, GrowRecord, SegmentHeader, encode_tensors, write_container
from .grid_arm import ArmFitter, arm_bytes
from .bitstream.fields import write_uvarint
from .config import GRID_DEFAULT_LAMBDA, CodecConfig
from .decoder import decode_bytes, open_stream
from .encoder import meta_dict, stream_header
from .errors import ConfigError
from .metrics import psnr as image_psnr
from .results import EncodeResult, FitResult
from .variants import LAYOUTS
from .widthchunks import level_rows, pack_psnr

__all__ = ["encode_grid", "fit_grid", "start_lambda", "webp_mse_at", "GridCoder", "level_widths", "GRID_DEFAULT_SEGMENTS"]


#: With grid_rate "arm" the network trained with the latents moves at this fraction of their
#: learning rate (kodim01, fast preset, lambda 0.003: 0.2 gave 1.3916 bpp at 31.83 dB, 0.05 1.4095
#: bpp at 31.76 dB; the linear proxy 1.4296 bpp at 31.84 dB; docs/benchmarks.md, seventh round).
ARM_RATE_LR_SCALE = 0.2


def _cosine(it: int, total: int, lr: float, floor: float = 0.02) -> float:
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(it, total) / max(1, total))))


def fit_grid(image: np.ndarray, config: CodecConfig, record: Any, *, lam: float, target_bpp: Optional[float] = None,
             target_psnr: Optional[float] = None, progress: Optional[Callable[[int, int, float], None]] = None,
             control_start: Optional[float] = None,
             segments: Optional[list[list[int]]] = None) -> tuple[Any, dict[str, Any]]:
    """Train a :class:`~nfcodec.models.grid.GridField` on ``image`` (H, W, 3) uint8, or a
    :class:`~nfcodec.models.grid.GridVideoField` on frames (T, H, W, 3) (arch ``grid-video``: each
    step fits ``grid_batch_pixels`` of frames drawn at random).

    ``control_start``: the fraction of the noise phase after which the lambda controller acts
    (default CONTROL_START_PSNR with a --psnr target, else CONTROL_START_BPP).
    ``segments``: a streamable file's latent levels per segment (each a payload of its own), so
    that the --bpp calibration measures the file's coder as that file codes them.
    Returns the model and a summary (iterations, final lambda, training PSNR, seconds)."""
    from .models.grid import GridField, GridVideoField

    g = config.grid
    torch.manual_seed(config.fit.seed)
    rng = np.random.default_rng(config.fit.seed)
    video = image.ndim == 4
    H, W = image.shape[-3:-1]
    from .devices import resolve_device

    device = resolve_device(config.fit.device)
    joint = g.grid_rate == "arm" and g.grid_arm > 0    # the rate term is the coder's network
    if video:
        if joint or g.grid_quantizer != "noise":
            raise ConfigError("arch grid-video trains with grid_rate 'causal' and grid_quantizer 'noise' only")
        T = image.shape[0]
        model = GridVideoField(T, H, W, record.levels, record.hidden).to(device)
        batch = min(T, max(1, g.grid_batch_pixels // (H * W)))
        # the --psnr controller measures a fixed, evenly spread sample of frames
        control_frames = sorted({round(i * (T - 1) / max(1, batch - 1)) for i in range(batch)})
    else:
        model = GridField(H, W, record.levels, record.hidden, record.head_kernel,
                          arm_hidden=g.grid_arm if joint else 0).to(device)
    target = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).to(device)
    flat = target.reshape(-1, 3) if not video else target[control_frames].reshape(-1, 3)
    pixels = image.size // 3
    opt = torch.optim.Adam([{"params": list(model.latents)}, {"params": model.rate_parameters()},
                            {"params": model.synthesis_parameters()}], lr=g.grid_lr)
    crop = g.grid_crop if 0 < g.grid_crop < max(H, W) else 0
    total = g.grid_iters + g.grid_ste_iters
    log_lam, psnr_now = math.log(lam), 0.0
    controlled = target_bpp is not None or target_psnr is not None
    if control_start is None:
        control_start = CONTROL_START_PSNR if target_psnr is not None else CONTROL_START_BPP
    # the first control step (a multiple of CONTROL_EVERY, so that the calibration below, counted
    # from it, falls on control steps: from int(1920 x 0.2) = 384 it never ran, and the controller
    # held the uncalibrated proxy, 18% over the file, at the target: kodim09 at --bpp 1.0 ended at 0.79 bpp)
    control_from = -(-int(g.grid_iters * control_start) // CONTROL_EVERY) * CONTROL_EVERY
    # --bpp: the controller compares the proxy's rate, times the coder's measured ratio to it
    # (recalibrated every CALIBRATE_EVERY steps), plus the weights' and container's share, to the target
    # (with grid_rate "arm" too: the network trained on noisy latents overstates the rounded ones'
    # rate, so the file's network is fitted to them as without it)
    arm = ArmFitter(g.grid_arm, seed=config.fit.seed) if g.grid_arm else None
    calibration = _Calibration(model, pixels, arm, segments) if target_bpp is not None and CALIBRATE_EVERY else None
    # the finest level each coarser level of a streamable file keeps (its finer planes are zeros)
    cuts = [min(l for seg in segments[:k + 1] for l in seg) for k in range(len(segments) - 1)] \
        if segments and g.grid_prefix_weight > 0 else []
    t0 = time.perf_counter()
    noise_end_bpp = None
    for it in range(total):
        noise = it < g.grid_iters
        lr = (_cosine(it, g.grid_iters, g.grid_lr) if noise
              else _cosine(it - g.grid_iters, g.grid_ste_iters, g.grid_ste_lr, 0.01))
        frames = None
        if video:
            frames = sorted(rng.choice(T, size=batch, replace=False).tolist())
            box, tgt = None, target[frames].reshape(-1, 3)
        elif crop:
            ch, cw = min(crop, H), min(crop, W)
            y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
            box, tgt = (y0, x0, ch, cw), target[y0:y0 + ch, x0:x0 + cw].reshape(-1, 3)
        else:
            box, tgt = None, flat
        latent_gain = latent_lr(g, math.exp(log_lam)) / g.grid_lr   # the latents' and rate model's over grid_lr
        opt.param_groups[0]["lr"] = lr * latent_gain
        opt.param_groups[1]["lr"] = lr * latent_gain * (ARM_RATE_LR_SCALE if joint else 1.0)
        opt.param_groups[2]["lr"] = lr * synthesis_lr(g, math.exp(log_lam)) / g.grid_lr
        soft = _soft_schedule(it, g.grid_iters) if noise and g.grid_quantizer == "softround" else None
        if cuts:    # a streamable file: one coarser level's distortion too (grid_prefix_weight)
            out, coarse, bits = model.forward_prefix("noise" if noise else "ste", cuts[int(rng.integers(len(cuts)))],
                                                     soft)
            extra = g.grid_prefix_weight * torch.mean((coarse - tgt) ** 2)
        else:
            out, bits = model("noise" if noise else "ste", box, soft, **({"frames": frames} if video else {}))
            extra = 0.0
        mse = torch.mean((out - tgt) ** 2)
        bpp = bits / (pixels if video else tgt.shape[0])     # a video's bits are the whole video's
        loss = mse + math.exp(log_lam) * bpp + extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it == g.grid_iters - 1 and calibration is not None:    # what the controller left: the noise phase's end
            noise_end_bpp = calibration.bpp(model.bits("hard").item())
        steering = noise or (CONTROL_STE > 0 and target_bpp is not None)
        if controlled and steering and it >= control_from and it % CONTROL_EVERY == 0:
            if calibration is not None and (it - control_from) % CALIBRATE_EVERY == 0:
                calibration.update()
            aim = None if target_bpp is None else target_bpp * (CONTROL_AIM if noise else CONTROL_STE_AIM)
            log_lam = _control(model, flat, log_lam, aim, target_psnr, calibration,
                               control_frames if video else None, None if noise else CONTROL_STE)
        psnr_now = 10 * math.log10(4.0 / max(mse.item(), 1e-12))
        if progress is not None and (it % 50 == 0 or it == total - 1):
            progress(it + 1, total, psnr_now)
    model = model.cpu()
    summary = {"iterations": total, "lambda": math.exp(log_lam), "lambda_start": lam, "train_psnr": psnr_now,
               "latent_lr": latent_lr(g, math.exp(log_lam)), "synthesis_lr": synthesis_lr(g, math.exp(log_lam)),
               "seconds": time.perf_counter() - t0, "device": str(device), "arm": arm}
    if calibration is not None and calibration.updates:
        summary["coder_over_proxy"] = calibration.ratio
    if noise_end_bpp is not None:
        summary["noise_end_bpp"] = noise_end_bpp
    return model, summary


#: With --bpp, every this many noise steps (from the controller's start) the latents are coded with
#: the file's entropy coder and the ratio of its size to the proxy's estimate rescales what the
#: controller sees (0: never).  Without it the fit ended wherever the proxy put the target, and the
#: file was padded (finer latents, delta < 1) or coarsened to meet the budget: with a 6% better coder
#: (causal4) kodim03 at --bpp 1.0 was padded by delta 0.947 and lost 0.45 dB (docs/grid.md).
CALIBRATE_EVERY = 100
#: Bits of a file beyond its latents, as the controller estimates them: the container (NHDR, ARCH,
#: chunk heads and record heads) and this many bits per synthesis weight.
OVERHEAD_BYTES, BITS_PER_WEIGHT = 120, 8
#: A streamable file's bytes per segment besides its payload: the SEGM chunk (12 + 11), the TDAT
#: chunk's 12, and per level a GROW row (6) and a pSNR row (2).
SEGMENT_BYTES = 12 + 11 + 12 + 6 + 2
#: With the ``arm`` context network, each calibration refits it on the rounded latents: this many
#: Adam steps the first time and then (warm-started), rounded at ARM_CALIBRATE_F fractional bits.
ARM_CALIBRATE_STEPS, ARM_CALIBRATE_F = (1000, 200), 6


class _Calibration:
    """The coder-to-proxy ratio of the rounded latents' size, and the file's other bits."""

    def __init__(self, model: Any, pixels: int, arm: Optional[ArmFitter] = None,
                 segments: Optional[list[list[int]]] = None) -> None:
        self.model, self.pixels, self.ratio, self.updates, self.arm = model, pixels, 1.0, 0, arm
        self.segments = segments or [list(range(len(model.latents)))]
        weights = sum(p.numel() for p in model.synthesis_parameters())
        extra = OVERHEAD_BYTES + (SEGMENT_BYTES * len(self.segments) if segments else 0)
        self.extra_bpp = (8 * extra + BITS_PER_WEIGHT * weights) / pixels

    @torch.no_grad()
    def update(self) -> None:
        planes = [torch.round(y).cpu().numpy().astype(np.int32) for y in self.model.latents]
        net = None
        if self.arm is not None:   # the context network follows the latents (warm-started refits)
            self.arm.fit(planes, ARM_CALIBRATE_STEPS[min(self.arm.fits, 1)])
            net = self.arm.rounded(ARM_CALIBRATE_F)
        coded = 8 * sum(arm_bytes([planes[l] for l in levels], net, LATENT_STEP) for levels in self.segments)
        bits = self.model.bits("hard")
        if bits.item() > 0:
            self.ratio, self.updates = coded / bits.item(), self.updates + 1

    def bpp(self, proxy_bits: float) -> float:
        """The file's estimated bits per pixel for a proxy estimate of the latents."""
        return proxy_bits * self.ratio / self.pixels + self.extra_bpp


#: Soft-rounding schedule of the noise phase (grid_quantizer "softround"): temperature and
#: Kumaraswamy shape, linear from the first to the second value (Cool-chic's C3-style preset).
SOFT_T, SOFT_A = (0.3, 0.1), (2.0, 1.0)


def _soft_schedule(it: int, total: int) -> tuple[float, float]:
    f = min(it, total) / max(1, total)
    return SOFT_T[0] + f * (SOFT_T[1] - SOFT_T[0]), SOFT_A[0] + f * (SOFT_A[1] - SOFT_A[0])


#: The lambda controller looks at the rounded latents every this many noise-phase steps ...
CONTROL_EVERY = 10
#: ... from this fraction of the noise phase on: with --bpp after 20%; with --psnr only in its second
#: half, because the training quality climbs below the target for most of the fit at any lambda and
#: a controller that lowers lambda all that time winds it down (kodim09 at --psnr 36: 3e-3 to 1e-5,
#: a file of 1.025 bpp; started at the target's MSE and held for the first half: 0.860 bpp at the
#: same 36.1 dB; kodim01 at --psnr 30 unchanged, 1.175 vs 1.177 bpp;
#: ``python benchmarks/grid_psnr_control.py``).
CONTROL_START_BPP, CONTROL_START_PSNR = 0.2, 0.5
#: With --psnr P lambda starts at this multiple of the target's MSE on the [-1, 1] scale: for an
#: exponential rate-distortion curve lambda = -dD/dR is proportional to D (measured ends: 0.4-1.8).
PSNR_LAMBDA_PER_MSE = 1.0
#: ... and moves log lambda by this gain times the log of its miss.
CONTROL_GAIN = 0.1
#: ... or by this larger gain while the miss is more than CONTROL_FAR (a log ratio), so that an
#: image far from the starting lambda's calibration is reached within the noise phase ...
CONTROL_GAIN_FAR, CONTROL_FAR = 0.5, math.log(1.2)
#: ... and already from this smaller miss when the fit is over its target (lambda must rise): an
#: overshoot left at the end of the noise phase is paid for by coarsening the file (delta > 1).
CONTROL_FAR_OVER = math.log(1.05)
#: With --bpp, the noise phase's controller aims at this fraction of the target (the straight-through
#: phase then adds rate, and an overshoot is paid for by coarsening the file: delta > 1).
CONTROL_AIM = 1.0
#: With --bpp, the controller's gain in the straight-through phase (0: lambda is held there, and what
#: that phase changes of the rate is left to the latent scale ``delta``).
CONTROL_STE = 0.0
#: ... aiming at this fraction of the target (below 1: an overshoot is coarsened, which costs more).
CONTROL_STE_AIM = 0.99


@torch.no_grad()
def _control(model: Any, flat: torch.Tensor, log_lam: float, target_bpp: Optional[float],
             target_psnr: Optional[float], calibration: Optional["_Calibration"] = None,
             frames: Optional[list[int]] = None, gain: Optional[float] = None) -> float:
    """One step of dual ascent on log lambda, measured on the *rounded* latents of the whole image
    (the noisy ones overstate the rate of near-zero latents several times): raise lambda while the
    estimated file rate is above a --bpp target, lower it while the distortion is above a --psnr one.

    Windup: the latents start at zero, so the rate climbs for hundreds of steps at any lambda;
    lowering lambda all that time drove it 11x below its start on kodim09 at --bpp 1.5, the rate
    then overshot by 13-18% and, with the small gain, came back too slowly: the file had to be
    coarsened (delta 1.20, 35.54 dB, below the 37.29 dB of --bpp 1.0). Raising lambda with the far
    gain from a 5% overshoot on (CONTROL_FAR_OVER) ends that fit on target: 37.98 dB at delta 1.0.
    An anti-windup hold instead (lambda only lowered once the rate has nearly stopped approaching
    the target) gave 37.18 dB there but cost a small image 0.15-0.43 dB, and a predictive hold
    36.09 dB (``python benchmarks/grid_controller.py``; docs/grid.md "Windup at high rates")."""
    if target_bpp is not None:
        bits = model.bits("hard")
        rate = calibration.bpp(bits.item()) if calibration is not None else bits.item() / flat.shape[0]
        miss = math.log(max(rate, 1e-4) / target_bpp)
    else:
        out, _ = model("hard") if frames is None else model("hard", frames=frames)
        mse = torch.mean((out.clamp(-1, 1) - flat) ** 2).item()
        miss = -math.log(max(mse, 1e-12) / (4.0 * 10 ** (-target_psnr / 10)))
    if gain is None:
        gain = CONTROL_GAIN_FAR if miss > CONTROL_FAR_OVER or -miss > CONTROL_FAR else CONTROL_GAIN
    return min(max(log_lam + gain * miss, math.log(1e-6)), math.log(10.0))


class GridCoder:
    """A trained grid as a file: rounded latents (scaled by ``delta``), quantized synthesis.

    ``widths``: the single layout (None) or the width-chunks layout, one segment per entry, each
    entry the number of latent planes after it, coarsest first (format.md 4b, "Latent levels")."""

    def __init__(self, model: Any, header: Any, record: Any, meta: Optional[dict[str, Any]],
                 widths: Optional[tuple[int, ...]] = None) -> None:
        self.header, self.record, self.meta, self.widths = header, record, meta, widths
        self.latents = [p.detach().double().numpy() for p in model.latents]
        self.weights = [p.detach().double().numpy() for p in model.synthesis_parameters()]
        self._latent_cache: dict[tuple[float, int], bytes] = {}   # (delta, segment) -> latent records
        self.arm_net = None   # the latents' context network (entropy model ``arm``), if any
        self.symbols: Optional[list[np.ndarray]] = None   # the --bpp trim's symbols at delta 1 (set_symbols)

    def set_symbols(self, symbols: Optional[list[np.ndarray]]) -> None:
        """Store ``symbols`` (one int32 plane per level) at ``delta = 1`` instead of the rounded
        latents (None: the rounded latents again)."""
        self.symbols = symbols
        self._latent_cache = {k: v for k, v in self._latent_cache.items() if k[0] != 1.0}

    def moved(self) -> int:
        """How many of the stored symbols differ from the rounded latents (the --bpp trim's moves)."""
        if self.symbols is None:
            return 0
        return sum(int(np.count_nonzero(a != np.clip(np.rint(y), -MAX_LATENT, MAX_LATENT)))
                   for a, y in zip(self.symbols, self.latents))

    def latent_symbols(self, delta: float, levels: Optional[list[int]] = None) -> list[np.ndarray]:
        """The file's latent symbols at scale ``delta`` (of ``levels``, default all, in that order)."""
        ls = range(len(self.latents)) if levels is None else levels
        if delta == 1.0 and self.symbols is not None:
            return [self.symbols[l] for l in ls]
        return [np.clip(np.rint(self.latents[l] / delta), -MAX_LATENT, MAX_LATENT).astype(np.int32) for l in ls]

    def stored_symbols(self, delta: float, levels: Optional[list[int]] = None) -> list[np.ndarray]:
        """What the file stores of the latents at scale ``delta``: a video grid's ``tdelta`` levels
        as plane 0 and then differences along time (format.md 5e "Video grids")."""
        from .archs.grid_video import delta_planes

        ls = list(range(self.record.levels)) if levels is None else levels
        mask = getattr(self.record, "tdelta", 0)
        return [delta_planes(q) if (mask >> l) & 1 else q for l, q in zip(ls, self.latent_symbols(delta, ls))]

    def choose_tdelta(self) -> int:
        """A video grid: mark the levels whose planes code smaller as differences along time (at
        delta 1, with the current context network) in the record; returns the mask (0 for images)."""
        from .archs.grid_video import delta_planes

        if not hasattr(self.record, "tdelta"):
            return 0
        mask = 0
        for l, q in enumerate(self.latent_symbols(1.0)):
            if q.shape[0] > 1 and arm_bytes([delta_planes(q)], self.arm_net, LATENT_STEP) < \
                    arm_bytes([q], self.arm_net, LATENT_STEP):
                mask |= 1 << l
        self.record = dataclass_replace(self.record, tdelta=mask)
        self._latent_cache.clear()
        return mask

    def weight_tensors(self, delta: float, bits: int) -> list[tuple[int, np.ndarray]]:
        out = []
        for i, w in enumerate(self.weights):
            v = w * delta if i == 0 else w                     # the first layer reads latents / delta
            step = quant.step_index_for(float(np.abs(v).max(initial=0.0)), bits)
            out.append((step, quant.quantize(v, step)))
        return out

    def _latent_records(self, delta: float, segment: int, levels: list[int]) -> bytes:
        """The tensor records of latent ``levels`` (in that order, indices from 0), cached."""
        key = (delta, segment)
        if key not in self._latent_cache:
            coded = [CodedTensor(j, LATENT_STEP, p, shape=p.shape) for j, p in enumerate(self.stored_symbols(delta, levels))]
            self._latent_cache[key] = _records(coded, {"arm": self.arm_net} if self.arm_net is not None else None)
        return self._latent_cache[key]

    def data(self, delta: float, bits: int, psnr_chunk: Optional[bytes] = None) -> bytes:
        """The file at latent scale ``delta`` and synthesis bit depth ``bits`` (``psnr_chunk``: the
        width-chunks layout's pSNR chunk, default every level unknown; the same length either way)."""
        L = self.record.levels
        weight_syms = self.weight_tensors(delta, bits)
        head = [Chunk(b"NHDR", self.header.pack()), Chunk(b"ARCH", self.record.pack())]
        if self.widths is None:
            weights = [CodedTensor(L + i, step, sym) for i, (step, sym) in enumerate(weight_syms)]
            tdat = write_uvarint(L + len(weights)) + self._latent_records(delta, 0, list(range(L))) + _records(weights)
            chunks = [*head, Chunk(b"TDAT", tdat)]
        else:   # one segment per entry of widths: its planes coarse to fine, the synthesis with the first
            K = len(self.widths)
            chunks = [*head, Chunk(b"GROW", GrowRecord(0, self.widths, (0,) * K).pack()),
                      Chunk(b"pSNR", psnr_chunk if psnr_chunk is not None else pack_psnr([None] * K))]
            for k, b in enumerate(self.widths):
                a = self.widths[k - 1] if k else 0
                n = b - a
                weights = [CodedTensor(n + i, step, sym) for i, (step, sym) in enumerate(weight_syms)] if k == 0 else []
                tdat = (write_uvarint(n + len(weights)) + self._latent_records(delta, k, planes_added(L, a, b))
                        + (_records(weights) if weights else b""))
                chunks += [Chunk(b"SEGM", SegmentHeader(index=k, kind=1, start=a, stop=b).pack()), Chunk(b"TDAT", tdat)]
        if self.meta is not None:
            chunks.append(Chunk(b"meTA", json.dumps(self.meta, separators=(",", ":")).encode()))
        return write_container([*chunks, Chunk(b"NEND", b"")])


def _records(tensors: list, hints: Optional[dict] = None) -> bytes:
    """The tensor records of a TDAT payload, without its leading count."""
    return encode_tensors(tensors, hints=hints)[len(write_uvarint(len(tensors))):]


#: The lambdas between which :func:`latent_lr` moves the latents' learning rate from grid_lr (at
#: LR_LAMBDA_HI and above) to grid_lr_high (at LR_LAMBDA_LO and below), geometrically in lambda.
#: In the tenth round's files at --bpp 1.0 and 1.5 the fits ended at 2-4e-3 on the textured kodim01
#: and kodim05 (which the faster latents cost up to 1 dB) and at 0.9-3.5e-4 on the smooth kodim03
#: and kodim09 (which they lift by 0.5-2.6 dB): docs/grid.md "Learning rates".
LR_LAMBDA_HI, LR_LAMBDA_LO = 1e-3, 2.5e-4


def latent_lr(g: Any, lam: float) -> float:
    """The latents' learning rate (config.grid ``g``) at lambda ``lam``, the fit's current one (the
    controller's, with a target): ``grid_lr`` at LR_LAMBDA_HI or above, ``grid_lr_high`` (when set)
    at LR_LAMBDA_LO or below, geometric in lambda between.  A low lambda means a fit near the
    high-quality end of its curve, where the latents must grow large (the unit rounding step fine
    against the detail they carry), which they do not at ``grid_lr`` in the preset's steps
    (docs/grid.md, "Learning rates")."""
    return _on_lambda_rule(g.grid_lr, g.grid_lr_high, lam)


def synthesis_lr(g: Any, lam: float) -> float:
    """The synthesis network's learning rate at lambda ``lam`` by the same rule as :func:`latent_lr`:
    ``grid_lr x grid_synthesis_lr_scale`` at LR_LAMBDA_HI or above, ``grid_lr x
    grid_synthesis_lr_scale_high`` (when set) at LR_LAMBDA_LO or below, geometric between.  A synthesis
    as fast as the latents diverges once they run at ``grid_lr_high``, while held slow it costs the
    high-lambda (textured) fits ~0.3 dB (docs/grid.md, "Learning rates")."""
    return g.grid_lr * _on_lambda_rule(g.grid_synthesis_lr_scale, g.grid_synthesis_lr_scale_high, lam)


def _on_lambda_rule(at_hi: float, at_lo: float, lam: float) -> float:
    """``at_hi`` at LR_LAMBDA_HI or above, ``at_lo`` (0: ``at_hi`` everywhere) at LR_LAMBDA_LO or below,
    geometric in lambda between."""
    if at_lo <= 0:
        return at_hi
    hi, lo = math.log(LR_LAMBDA_HI), math.log(LR_LAMBDA_LO)
    return at_hi * (at_lo / at_hi) ** min(1.0, max(0.0, (hi - math.log(lam)) / (hi - lo)))


#: With grid_lambda_start "webp" a --bpp fit's lambda starts at this multiple of the MSE (on the
#: [-1, 1] scale) that WebP reaches on the image at the target rate, at 0.5 bpp ...
WEBP_LAMBDA_PER_MSE = 1.45
#: ... times (0.5 / bpp) to this power: the final lambdas of 28 default-preset fits (kodim01-09 at
#: 0.25-1.5 bpp) over WebP's MSE were 2.1-3.3 at 0.25 bpp, 1.2-1.9 at 0.5, 0.6-1.3 at 1.0, 0.4-1.4 at
#: 1.5, where the final lambdas themselves spread 12-20x between images at one rate (docs/grid.md,
#: "Where lambda starts").
WEBP_LAMBDA_EXPONENT = 0.7
#: ... or, where it is larger (below 1 bpp), this multiple at 0.5 bpp times (0.5 / bpp) to this
#: steeper power: a start above the predicted end at low rates, where a fit started at its end
#: overshoots the rate while its latents grow (fifteenth session: fast preset +0.31 / +0.19 dB at
#: 0.25 / 0.5 bpp, default +0.06 / +0.08 at equal rate, against the 0.7 rule; docs/grid.md, "Where lambda
#: starts").  The two meet at 1 bpp.
WEBP_LAMBDA_LOW_PER_MSE = 2.9
WEBP_LAMBDA_LOW_EXPONENT = 1.7


def webp_lambda_per_mse(bpp: float) -> float:
    """The start lambda over WebP's MSE at ``bpp`` bpp: the larger of the two power rules."""
    return max(WEBP_LAMBDA_PER_MSE * (0.5 / bpp) ** WEBP_LAMBDA_EXPONENT,
               WEBP_LAMBDA_LOW_PER_MSE * (0.5 / bpp) ** WEBP_LAMBDA_LOW_EXPONENT)


def start_lambda(config: CodecConfig, bpp: Optional[float], psnr: Optional[float] = None,
                 image: Optional[np.ndarray] = None) -> float:
    """The lambda a grid fit starts at: ``grid_lambda`` when set; with --psnr P the target's MSE
    (times PSNR_LAMBDA_PER_MSE); with --bpp B and ``grid_lambda_start`` "webp" and an image (H, W, 3)
    :func:`webp_lambda_per_mse` (B) x the MSE of WebP at B bpp on it (:func:`webp_mse_at`); otherwise from B alone (GRID_DEFAULT_LAMBDA x (0.5 / B)^1.3); without
    a target GRID_DEFAULT_LAMBDA.  A starting point only: the controller moves it."""
    if config.grid.grid_lambda > 0:
        return config.grid.grid_lambda
    if psnr is not None:
        return float(np.clip(PSNR_LAMBDA_PER_MSE * 4.0 * 10 ** (-psnr / 10), 1e-6, 1.0))
    if bpp is None:
        return GRID_DEFAULT_LAMBDA
    if config.grid.grid_lambda_start == "webp" and image is not None and image.ndim == 3:
        mse = webp_mse_at(image, bpp)
        if mse is not None:
            return float(np.clip(webp_lambda_per_mse(bpp) * mse, 1e-5, 1.0))
    # with the causal context model kodim04 measured 0.89 bpp at lambda 0.0015 (fast preset);
    # lambda ~ bpp^-1.3 as measured on kodim01 before
    return float(np.clip(GRID_DEFAULT_LAMBDA * (0.5 / bpp) ** 1.3, 1e-5, 1.0))


def webp_mse_at(image: np.ndarray, bpp: float) -> Optional[float]:
    """The MSE (on the [-1, 1] scale) of WebP (:mod:`nfcodec.baselines`, method 6) on ``image`` (H, W,
    3) uint8 at ``bpp``: the qualities around it found by bisection (about 9 encodes, 0.1 s each on a
    Kodak image), log MSE interpolated in log bpp between them; the end qualities' MSE outside their
    rates.  None when this Pillow has no WebP or cannot code the image (larger than 16383 pixels a
    side): the caller falls back to the target alone.  The encoder's estimate only: no file depends
    on it."""
    from .baselines import BASELINES

    codec = BASELINES["webp"]
    if codec.unavailable() or max(image.shape[:2]) > 16383:
        return None
    points: dict[int, tuple[float, float]] = {}

    def point(q: int) -> tuple[float, float]:
        if q not in points:
            data = codec.encode(image, q)
            mse = _mse(codec.decode(data), image) / 127.5**2
            points[q] = (8.0 * len(data) / (image.shape[0] * image.shape[1]), max(mse, 1e-10))
        return points[q]

    try:
        lo, hi = 0, 100
        if bpp <= point(lo)[0]:
            return point(lo)[1]
        if bpp >= point(hi)[0]:
            return point(hi)[1]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if point(mid)[0] < bpp else (lo, mid)
    except (OSError, ValueError):
        return None
    (b0, m0), (b1, m1) = point(lo), point(hi)
    t = min(1.0, max(0.0, math.log(bpp / b0) / math.log(b1 / b0))) if b1 > b0 else 0.0
    return math.exp(math.log(m0) + t * (math.log(m1) - math.log(m0)))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


class _QualityNotReached(ConfigError):
    """``_meet_quality``: no latent scale reaches the --psnr target."""


def encode_grid(frames: np.ndarray, media: int, fps: Fraction, config: CodecConfig, *, preset: str | None = None,
                metadata: bool = True, progress: Callable[[int, int, float], None] | None = None,
                bpp: float | None = None, psnr: float | None = None, sizing: bool = False) -> EncodeResult:
    """Encode one image (arch ``grid``) or video (``grid-video``) with the latent grid (the
    architectures' own encoder)."""
    t0 = time.perf_counter()
    arch = ARCHS.by_name(config.model.arch)
    arch.check_variant(config.representation, config.layout)
    header = stream_header(frames, media, fps, dataclass_replace(config, layout="single"))
    record = arch.make_record(config.model, header)
    arch.check(record, header)
    _check_decodable(arch, record, header)
    widths = None
    if config.layout == "width-chunks":
        widths = level_widths(config, record.levels)
        header = dataclass_replace(header, layout=LAYOUTS.by_name("width-chunks").wire_id, n_segments=len(widths))
    image = frames[0] if media == 0 else frames
    common = dict(image=image, header=header, record=record, config=config, preset=preset, metadata=metadata,
                  progress=progress, bpp=bpp, psnr=psnr, t0=t0, widths=widths)
    try:
        return _fit_and_code(**common, lam0=start_lambda(config, bpp, psnr, image), control_start=None)
    except _QualityNotReached:
        if psnr is None or config.grid.grid_lambda > 0:
            raise
    # --psnr near the most this fit can reach: the late, cautious controller may end just below the
    # target (a 256x256 image at the fast preset, --psnr 33: 32.98 dB at most). Fit again with the
    # earlier rule (lambda from GRID_DEFAULT_LAMBDA, controlled from 20% of the noise phase), which
    # winds lambda down and so reaches the highest quality, at a high rate (33.01 dB at 3.15 bpp).
    result = _fit_and_code(**common, lam0=GRID_DEFAULT_LAMBDA, control_start=CONTROL_START_BPP)
    result.rate_control["second_fit"] = True
    return result


def _check_decodable(arch: Any, record: Any, header: Any) -> None:
    """ConfigError before any fit when the decoder's default limits would refuse the file (its
    latents count as parameters and as memory: a long HD video grid exceeds them)."""
    from .decoder import DEFAULT_LIMITS, _check_limits
    from .errors import LimitError

    try:
        _check_limits(arch, record, header, arch.param_shapes(record), 2**62, DEFAULT_LIMITS)
    except LimitError as e:
        raise ConfigError(f"{e}: the file would not decode with the default limits; code fewer frames or "
                          "smaller ones (--frames, --resize)") from None


#: Segments of a streamable grid by default (layout width-chunks without --widths): the coarse
#: levels down to 1:8 with the synthesis, then 1:4, 1:2 and 1:1 one segment each.
GRID_DEFAULT_SEGMENTS = 4


def level_widths(config: CodecConfig, levels: int) -> tuple[int, ...]:
    """The width-chunks segments of a grid with ``levels`` latent planes: the number of planes
    after each segment, coarsest first (``config.grow.widths``, or the last
    :data:`GRID_DEFAULT_SEGMENTS` counts up to ``levels``).

    Raises:
        ConfigError: widths beyond the grid's levels or not ending at them, or a growing, level
            budget, training or step setting that only the SIREN's width-chunks encoder has.
    """
    g = config.grow
    if config.grid.grid_prefix_weight > 0 and (config.model.grid_head_kernel > 1 or config.grid.grid_crop):
        raise ConfigError("grid_prefix_weight (--grid-prefix-weight) trains the coarser levels on the whole image "
                          "with the per-pixel head: with grid_head_kernel > 1 or grid_crop set it must be 0")
    if g.growing != "spectral":
        raise ConfigError(f"growing={g.growing!r}: grid levels grow spectrally (every level is the whole image, "
                          "finer); spatial and temporal growing are siren's")
    if g.level_bpp:
        raise ConfigError("--level-bpp is not supported with --arch grid: give --bpp or --psnr for the whole file")
    if g.level_steps or g.grow_training != "progressive":
        raise ConfigError("--level-steps and --grow-training are siren's: the grid trains all its levels together")
    if not g.widths:
        return tuple(range(max(1, levels - GRID_DEFAULT_SEGMENTS + 1), levels + 1))
    if g.widths[-1] != levels:
        raise ConfigError(f"widths={','.join(map(str, g.widths))}: with --arch grid a width counts latent planes, "
                          f"coarsest first, and the last must be this grid's {levels} levels")
    return g.widths


def _fit_and_code(*, image: np.ndarray, header: Any, record: Any, config: CodecConfig, preset: str | None,
                  metadata: bool, progress: Any, bpp: Optional[float], psnr: Optional[float], lam0: float,
                  control_start: Optional[float], t0: float, widths: Optional[tuple[int, ...]]) -> EncodeResult:
    """One fit and its file (bit depth, then the --bpp or --psnr latent scale search)."""
    pixels = header.width * header.height * header.frames
    segments = None if widths is None else \
        [planes_added(record.levels, widths[k - 1] if k else 0, b) for k, b in enumerate(widths)]
    model, fit = fit_grid(image, config, record, lam=lam0, target_bpp=bpp, target_psnr=psnr, progress=progress,
                          control_start=control_start, segments=segments)
    meta = None
    if metadata:
        meta = meta_dict(config, preset, False)
        meta = {k: v for k, v in meta.items() if k in ("encoder", "preset", "seed")}
        meta.update(arch=config.model.arch, levels=record.levels, hidden=list(record.hidden), iters=config.grid.grid_iters,
                    ste_iters=config.grid.grid_ste_iters, crop=config.grid.grid_crop,
                    **{"lambda": round(fit["lambda"], 8)})
        if config.grid.grid_quantizer != "noise":
            meta["quantizer"] = config.grid.grid_quantizer
        if config.grid.grid_rate != "causal":
            meta["rate"] = config.grid.grid_rate
        if widths is not None:
            meta.update(layout="width-chunks", widths=list(widths))
            if config.grid.grid_prefix_weight > 0:
                meta["prefix_weight"] = config.grid.grid_prefix_weight
    coder = GridCoder(model, header, record, meta, widths)
    arm_seconds = None
    if fit["arm"] is not None:   # the latents' context network, fitted to the rounded latents of the file
        t_arm = time.perf_counter()
        planes = coder.latent_symbols(1.0)
        fit["arm"].fit(planes, config.grid.grid_arm_steps)
        coder.arm_net, _ = fit["arm"].best(planes, LATENT_STEP)
        arm_seconds = time.perf_counter() - t_arm
    tdelta = coder.choose_tdelta()       # a video grid: levels stored as differences along time
    if tdelta and fit["arm"] is not None:   # the context network follows what the file stores
        stored = coder.stored_symbols(1.0)
        fit["arm"].fit(stored)
        coder.arm_net, _ = fit["arm"].best(stored, LATENT_STEP)
    max_bytes = None if bpp is None else int(bpp * pixels / 8)

    # synthesis weight precision: the best D + lambda R among a few bit depths, at delta 1
    lam = fit["lambda"]
    choices = [config.grid.grid_weight_bits] if config.grid.grid_weight_bits else [6, 8, 10]
    best = None
    for bits in choices:
        data = coder.data(1.0, bits)
        img, _ = reconstruct(data)
        cost = _mse(img, image) / (127.5**2) + lam * 8 * len(data) / pixels
        if best is None or cost < best[0]:
            best = (cost, bits, data)
    _, bits, data = best
    delta1_bpp = 8 * len(data) / pixels      # what the fit itself ended at, before the latent scale search
    delta = 1.0
    rc = None
    if max_bytes is not None:
        net = fit["arm"].net if fit["arm"] is not None and image.ndim == 3 else None   # the trim: images
        data, delta = _meet_budget(coder, bits, max_bytes, image, net)
        rc = {"mode": "bpp", "target": bpp, "lambda": round(lam, 8), "delta": round(delta, 6), "weight_bits": bits,
              "moved": coder.moved()}
    elif psnr is not None:
        data, delta = _meet_quality(coder, bits, psnr, image)
        rc = {"mode": "psnr", "target": psnr, "lambda": round(lam, 8), "delta": round(delta, 6), "weight_bits": bits}
    rows: tuple[dict[str, Any], ...] = ()
    if widths is not None:
        data, rows = _level_rows(coder, data, delta, bits, image)
    img, d = reconstruct(data)
    frame_psnr = tuple(image_psnr(a, b) for a, b in zip(img, image)) if image.ndim == 4 else ()
    fr = FitResult(steps=(), seconds=fit["seconds"], train_psnr=fit["train_psnr"], device=fit["device"],
                   extra={"lambda": lam, "lambda_start": fit["lambda_start"], "delta": delta, "weight_bits": bits, "latent_lr": fit["latent_lr"],
                          "synthesis_lr": fit["synthesis_lr"],
                          "delta1_bpp": delta1_bpp,
                          **{k: fit[k] for k in ("coder_over_proxy", "noise_end_bpp") if k in fit},
                          **({"arm_seconds": round(arm_seconds, 2)} if arm_seconds is not None else {}),
                          **({"tdelta": tdelta} if hasattr(record, "tdelta") else {})})
    return EncodeResult(data=data, reconstruction=img, psnr=image_psnr(img, image), bpp=d.info.bpp, info=d.info,
                        config=config, fit=fr, seconds=time.perf_counter() - t0, rate_control=rc, levels=rows,
                        frame_psnr=frame_psnr)


def reconstruct(data: bytes) -> tuple[np.ndarray, Any]:
    """``(pixels, decoded stream info)`` of a grid file, decoded exactly: the image (H, W, 3), or
    every frame of a video (T, H, W, 3)."""
    stream = open_stream(data)
    if stream.header.media == 0:
        return stream.render(0), stream
    return np.stack([f for _, f in stream.frames(range(stream.header.frames))]), stream


def _level_rows(coder: GridCoder, data: bytes, delta: float, bits: int,
                image: np.ndarray) -> tuple[bytes, tuple[dict[str, Any], ...]]:
    """A streamable grid's file with its pSNR chunk filled in (each level decoded exactly; the
    same length as ``data``) and ``EncodeResult.levels``' rows."""
    psnrs = [image_psnr(decode_bytes(data, level=k + 1).image, image) for k in range(len(coder.widths or ()))]
    final = coder.data(delta, bits, pack_psnr(psnrs))
    assert len(final) == len(data)
    return final, level_rows(open_stream(final).plan, psnrs, image.shape[0] * image.shape[1], unit="planes")


def _meet_quality(coder: GridCoder, bits: int, target: float, image: np.ndarray) -> tuple[bytes, float]:
    """The file at the largest latent scale ``delta`` (the smallest file, up to coding noise) whose
    exact decode reaches ``target`` dB, by bisection on log delta in [1/4, 4]."""
    def quality(delta: float) -> tuple[float, bytes]:
        data = coder.data(delta, bits)
        return image_psnr(reconstruct(data)[0], image), data

    p1, d1 = quality(1.0)
    lo, hi = (0.0, math.log(4.0)) if p1 >= target else (math.log(0.25), 0.0)
    best = (d1, 1.0) if p1 >= target else None
    for _ in range(8):
        mid = 0.5 * (lo + hi)
        p, d = quality(math.exp(mid))
        if p >= target:
            if best is None or len(d) < len(best[0]):
                best = (d, math.exp(mid))
            lo = mid
        else:
            hi = mid
    if best is None:
        raise _QualityNotReached(f"the latent grid reached {quality(0.25)[0]:.2f} dB at most for this image, below the "
                                 f"--psnr target {target}; use a smaller --lambda or more --grid-iters")
    return best


#: With --bpp, a file over its budget at delta 1 is trimmed by moving single latents to the other
#: side of their rounding boundary (the ones nearest it first, among the moves that the context
#: network says save bits) rather than by coarsening them all (delta > 1); the better decode of the two
#: is kept ("flips"; "delta": the latent scale alone).  Twenty-first session: the default preset's
#: kodim03 at --bpp 1.5 and kodim09 at 1.0 ended 2.0% and 2.3% over, and the delta trim cost
#: 0.94 and 0.30 dB of their delta-1 files (40.69 and 38.39 dB), the moves 0.07 and 0.04 dB
#: (41.56 and 38.64 dB); Kodak at 1.5 and 1.0 bpp, 20 files: +0.28 dB at equal rate, none worse
#: (docs/grid.md "Trimming the file", docs/benchmarks.md "twenty-first session").
TRIM = "flips"
#: The trim stops its bisection once the file fills this fraction of the budget; it first tries
#: this many moves, doubling them until the file fits.
TRIM_FILL, TRIM_FIRST = 0.995, 256


def _trim_order(coder: GridCoder, net: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trim's candidate moves in the order they are taken, as ``(levels, indices, steps)`` of
    the flat planes: every latent whose move by one step towards its trained value's side of the
    rounding boundary saves bits by the float context network ``net``'s estimate
    (:func:`~nfcodec.grid_arm.arm_step_bits`), nearest that boundary first."""
    from .grid_arm import arm_step_bits

    rows = []
    for l, q in enumerate(coder.latent_symbols(1.0)):
        r = (coder.latents[l] - q).reshape(-1)
        step = np.sign(r).astype(np.int32)
        step[np.abs(q.reshape(-1) + step) > MAX_LATENT] = 0
        saved = arm_step_bits(q, step.reshape(q.shape), net)
        idx = np.nonzero((step != 0) & (saved < 0))[0]
        rows.append((0.5 - np.abs(r[idx]), np.full(idx.size, l), idx, step[idx]))
    dist, levels, idx, step = (np.concatenate(c) for c in zip(*rows))
    order = np.argsort(dist, kind="stable")
    return levels[order], idx[order], step[order]


def _trim(coder: GridCoder, bits: int, max_bytes: int, net: Any) -> Optional[bytes]:
    """The file over budget at delta 1, brought under it by the fewest moves of
    :func:`_trim_order` (bisection on their number, on the real coded size; it stops once the file
    fills TRIM_FILL of the budget); None if all of them do not suffice.  Leaves ``coder``'s symbols
    at the returned file's."""
    levels, idx, step = _trim_order(coder, net)
    base = coder.latent_symbols(1.0)

    def sized(k: int) -> tuple[bytes, list[np.ndarray]]:
        syms = [q.copy() for q in base]
        for l in range(len(syms)):
            sel = levels[:k] == l
            syms[l].reshape(-1)[idx[:k][sel]] += step[:k][sel]
        coder.set_symbols(syms)
        return coder.data(1.0, bits), syms

    # the size falls with the first moves and rises again with all of them (far from their boundary,
    # the estimate of what moving many neighbours together saves fails): doubling, then bisection
    lo, hi = 0, min(TRIM_FIRST, len(idx))
    while len((best := sized(hi))[0]) > max_bytes:
        if hi == len(idx):
            coder.set_symbols(None)
            return None
        lo, hi = hi, min(2 * hi, len(idx))
    while hi - lo > 1 and len(best[0]) < TRIM_FILL * max_bytes:
        mid = (lo + hi) // 2
        d = sized(mid)
        if len(d[0]) <= max_bytes:
            hi, best = mid, d
        else:
            lo = mid
    coder.set_symbols(best[1])
    return best[0]


def _meet_budget(coder: GridCoder, bits: int, max_bytes: int, image: np.ndarray,
                 net: Any = None) -> tuple[bytes, float]:
    """The file nearest ``max_bytes`` from below, over the latent scale ``delta`` (and, for a file
    over budget when the fit's float context network ``net`` is given, by :func:`_trim`'s moves at
    ``delta = 1``: the better exact decode of the two; ``coder`` keeps the moved symbols then).

    The straight-through phase leaves many latents just inside a rounding boundary, so the size
    jumps by several percent between ``delta = 1`` and ``1 -+ 1e-3``: the search runs on
    ``s = log|delta - 1|`` (delta = 1 -+ e^s, from 1e-8 to 15/16 below 1 or to 63 above), where
    the size moves smoothly, by bisection on the real coded size.

    A fit that ends 2-5% under budget is only padded (delta < 1, finer latents) when that decodes
    better than the delta-1 file: finer rounding moves the latents off the integers the synthesis
    was trained on, so more bits need not mean more quality (a guard: two decodes). Further under
    budget it is always padded, to keep --bpp's 5% contract."""
    data = coder.data(1.0, bits)
    if 0.98 * max_bytes <= len(data) <= max_bytes:
        return data, 1.0
    if len(data) > max_bytes and net is not None and TRIM == "flips":
        trimmed = _trim(coder, bits, max_bytes, net)
        if trimmed is not None:
            symbols = coder.symbols
            coder.set_symbols(None)
            scaled, delta = _meet_budget(coder, bits, max_bytes, image)
            if image_psnr(reconstruct(scaled)[0], image) > image_psnr(reconstruct(trimmed)[0], image):
                return scaled, delta
            coder.set_symbols(symbols)
            return trimmed, 1.0
    sign = -1.0 if len(data) < max_bytes else 1.0          # under budget: finer latents (delta < 1)
    lo, hi = math.log(1e-8), math.log(15 / 16 if sign < 0 else 63.0)
    best: Optional[tuple[bytes, float]] = (data, 1.0) if len(data) <= max_bytes else None
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        delta = 1.0 + sign * math.exp(mid)
        d = coder.data(delta, bits)
        fits = len(d) <= max_bytes
        if fits and (best is None or len(d) > len(best[0])):
            best = (d, delta)
        # below 1, a larger step away from 1 means a larger file; above 1, a smaller one
        if (sign < 0) == fits:
            lo = mid
        else:
            hi = mid
        if best is not None and len(best[0]) >= 0.98 * max_bytes:
            break
    if best is None:
        px = coder.header.width * coder.header.height * coder.header.frames
        raise ConfigError(f"the latent grid cannot go below {8 * len(coder.data(64.0, bits)) / px:.4f} bpp "
                          f"for this image (target {8 * max_bytes / px:.4f})")
    if sign < 0 and best[1] != 1.0 and len(data) >= 0.95 * max_bytes and \
            image_psnr(reconstruct(best[0])[0], image) < image_psnr(reconstruct(data)[0], image):
        return data, 1.0
    return best
