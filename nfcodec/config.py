"""Encoder configuration: frozen dataclasses, presets and flat knob overrides.

Only :class:`ModelConfig` reaches the file (through the architecture record); the quantization
bit depth picks table indices that are sent; :class:`FitConfig` is encoder-only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ModelConfig", "QuantConfig", "FitConfig", "PruneConfig", "SupermaskConfig", "GrowConfig", "TileConfig",
           "TransformConfig", "GridConfig", "CodecConfig", "PRESETS", "VIDEO_PRESETS", "GRID_PRESETS", "GRID_VIDEO_PRESETS", "ARCH_PRESETS", "GRID_DEFAULT_LAMBDA", "KNOBS", "SIZE_KNOBS", "get_preset"]


def _check(name: str, value: Any, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise ConfigError(f"{name}={value} outside [{lo}, {hi}]")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "siren"
    width: int = 64        # hidden units per layer: the main rate knob (params ~ depth * width^2)
    depth: int = 5         # hidden sine layers; deeper SIRENs fit detail better per parameter
    w0: float = 30.0       # sine frequency of hidden layers (SIREN paper value)
    w0_first: float = 30.0 # sine frequency of the first layer: sets the finest detail it starts with
    # NeRV (videos; see nfcodec/models/nerv.py).  Params ~ mlp_hidden*c1*h0*w0 + sum of block convs.
    c1: int = 16           # channels of the base feature map (the MLP output is c1 x h0 x w0)
    c2: int = 64           # output channels of the first NeRV block, halved after each block ...
    min_channels: int = 16 # ... but never below this
    mlp_hidden: int = 128  # hidden units of the MLP on the positional encoding
    pe_b: float = 1.25     # positional encoding base b (paper: 1.25)
    pe_l: int = 80         # positional encoding levels l: 2l features (paper: 80)
    kernel: int = 3        # conv kernel of the NeRV blocks
    head_kernel: int = 3   # conv kernel of the RGB head
    factors: tuple[int, ...] = ()  # NeRV upscale factors; () = derived from the frame size
    # Latent grid (arch grid, images; nfcodec/archs/grid.py): latent levels 1:1 .. 1:2^(L-1)
    # (capped by the image size) and the synthesis MLP's hidden widths (one or two layers).
    grid_levels: int = 7
    grid_hidden: tuple[int, ...] = (16, 16)
    grid_head_kernel: int = 1   # the RGB layer: 1 per pixel, 3 a 3x3 convolution of the hidden maps

    def __post_init__(self) -> None:
        _check("width", self.width, 1, 4096)
        _check("depth", self.depth, 1, 64)
        _check("w0", self.w0, 0.001, 10000)
        _check("w0_first", self.w0_first, 0.001, 10000)
        for name in ("c1", "c2", "min_channels", "mlp_hidden"):
            _check(name, getattr(self, name), 1, 4096)
        _check("pe_b", self.pe_b, 1.0, 4.0)
        _check("pe_l", self.pe_l, 1, 128)
        for name in ("kernel", "head_kernel"):
            _check(name, getattr(self, name), 1, 7)
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be odd")
        object.__setattr__(self, "factors", tuple(int(f) for f in self.factors))
        _check("grid_levels", self.grid_levels, 1, 12)
        if self.grid_head_kernel not in (1, 3, 5, 7):
            raise ConfigError(f"grid_head_kernel={self.grid_head_kernel} must be 1, 3, 5 or 7")
        object.__setattr__(self, "grid_hidden", tuple(int(h) for h in self.grid_hidden))
        if not 1 <= len(self.grid_hidden) <= 2 or any(not 1 <= h <= 256 for h in self.grid_hidden):
            raise ConfigError(f"grid_hidden={self.grid_hidden}: one or two hidden widths in [1, 256]")
        if len(self.factors) > 6 or any(not 1 <= f <= 8 for f in self.factors):
            raise ConfigError(f"factors={self.factors}: at most 6 upscale factors, each in [1, 8]")


@dataclass(frozen=True)
class QuantConfig:
    bits: int = 10               # per-tensor bit depth: step = max|w| / (2^(bits-1) - 1), snapped to the table
    # Optional quantization-aware fine-tune appended to the fit (qat_fraction x steps more steps,
    # straight-through rounding).  Off by default: at 10 bits plain rounding costs ~0.1 dB and
    # the fine-tune measured no gain (docs/benchmarks.md, benchmarks/qat.py).
    qat_fraction: float = 0.0
    qat_lr: float = 0.001        # its Adam rate, as a fraction of each tensor's quantization step
    qat_mode: str = "ste"        # ste (straight-through rounding) | noise (additive uniform noise of one step)
    # Rate-distortion search of the per-tensor steps after the fit (nfcodec.rdsearch), starting
    # from the `bits` steps: minimise bpp + rd_lambda * MSE (8-bit scale) with the real coder.
    # rd_lambda = 0 picks lambda = bpp0 / MSE0 at the starting steps, i.e. 1% of rate is worth
    # 1% of MSE (0.043 dB): about 3 dB per doubling of the rate.  rd_search=False: `bits` only.
    rd_search: bool = True
    rd_lambda: float = 0.0

    def __post_init__(self) -> None:
        _check("bits", self.bits, 2, 16)
        if self.qat_mode not in ("ste", "noise"):
            raise ConfigError(f"qat_mode={self.qat_mode!r} must be 'ste' or 'noise'")
        _check("qat_fraction", self.qat_fraction, 0.0, 1.0)
        _check("qat_lr", self.qat_lr, 0.0, 100.0)
        _check("rd_lambda", self.rd_lambda, 0.0, 1e6)


@dataclass(frozen=True)
class FitConfig:
    steps: int = 3000            # Adam steps
    lr: float = 2e-3             # peak learning rate (short warm-up, cosine decay to lr * final_lr_ratio)
    final_lr_ratio: float = 0.05
    warmup_steps: int = 50
    batch_pixels: int = 16384    # pixels per step (0 = full image); minibatches are ~40x cheaper on CPU
    seed: int = 0                # init and batches; the supermask representation also stores it (SEED)
    device: str = "auto"         # auto | cpu | cuda | cuda:N
    amp: bool = True             # bf16 autocast on CUDA (ignored on CPU, where bf16 is slower)
    epochs: int = 0              # NeRV: passes over the frames (0: use `steps`); steps = epochs * ceil(T / batch_frames)
    batch_frames: int = 2        # NeRV: frames per step

    def __post_init__(self) -> None:
        _check("steps", self.steps, 1, 10_000_000)
        _check("lr", self.lr, 1e-7, 1.0)
        _check("final_lr_ratio", self.final_lr_ratio, 0.0, 1.0)
        _check("warmup_steps", self.warmup_steps, 0, 10_000_000)
        _check("batch_pixels", self.batch_pixels, 0, 2**31)
        _check("seed", self.seed, 0, 2**63 - 1)
        _check("epochs", self.epochs, 0, 10_000_000)
        _check("batch_frames", self.batch_frames, 1, 4096)


@dataclass(frozen=True)
class PruneConfig:
    """Magnitude pruning (``representation="pruned"``; encoder only, see :mod:`nfcodec.prune`).

    After the float fit, ``prune_rounds`` rounds each remove more of the smallest weights
    (geometric schedule up to ``sparsity``) and fine-tune the survivors for
    ``prune_fraction x steps / prune_rounds`` steps with the pruned weights held at zero.
    """

    sparsity: float = 0.0        # share of prunable weights removed (0 = none)
    prune_scope: str = "global"  # global (one threshold over all weight matrices) | layer (same share per layer)
    prune_rounds: int = 3        # iterative prune-then-fine-tune rounds
    prune_fraction: float = 0.3  # fine-tune steps over all rounds, as a share of the fit's steps

    def __post_init__(self) -> None:
        _check("sparsity", self.sparsity, 0.0, 0.999)
        if self.prune_scope not in ("global", "layer"):
            raise ConfigError(f"prune_scope={self.prune_scope!r} must be 'global' or 'layer'")
        _check("prune_rounds", self.prune_rounds, 1, 100)
        _check("prune_fraction", self.prune_fraction, 0.0, 10.0)


@dataclass(frozen=True)
class SupermaskConfig:
    """Supermask with seed (``representation="supermask"``; see :mod:`nfcodec.reps.supermask`).

    The weights are frozen random values from ``FitConfig.seed``; the fit trains one score per
    weight and ``levels - 1`` scales.  Level densities: ``density`` then the linear rule of
    Okoshi et al. (0.2 -> 0.2 / 0.0595 / 0.0129 for 3 levels, as in the paper).
    """

    levels: int = 3              # nested masks N (paper: 3)
    density: float = 0.2         # k_1, share of each weight tensor the first mask keeps (paper: 0.2)
    score_lr: float = 0.03       # Adam peak rate of the scores and scales (paper sweeps 0.015-0.2; 0.03 measured best of 0.003-0.1)

    def __post_init__(self) -> None:
        _check("levels", self.levels, 1, 8)
        _check("density", self.density, 0.001, 0.5)
        _check("score_lr", self.score_lr, 1e-6, 10.0)


GROWINGS = ("spectral", "spatial", "temporal")
GROW_TRAININGS = ("progressive", "slimmable")


@dataclass(frozen=True)
class GrowConfig:
    """Layout ``width-chunks`` (:mod:`nfcodec.grow`): a SIREN that grows in width, level by level.

    ``widths`` are the hidden widths after each level (strictly increasing; () = :data:`DEFAULT_LEVELS`
    levels, the first half of the model's ``width``, then equal steps: ``nfcodec.grow.default_widths``).
    ``growing``: ``spectral`` (every level the whole
    signal, more detail), ``spatial`` (level k: the first k/K of the columns) or ``temporal`` (video:
    the first k/K of the frames).  ``grow_training``: ``progressive`` (the paper's Alg. 1: each level
    fits its new units with the older ones frozen, as quantized) or ``slimmable`` (Alg. 2: all levels
    together, the loss summed over the widths; spectral only).  ``level_steps``: Adam steps per level
    (0: the fit's ``steps``).  ``level_bpp``: cumulative bits per pixel of each level's prefix (rate
    control; one per level).
    """

    widths: tuple[int, ...] = ()
    growing: str = "spectral"
    grow_training: str = "progressive"
    level_steps: int = 0
    level_bpp: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "level_bpp", tuple(float(b) for b in self.level_bpp))
        if self.widths and (len(self.widths) > 64 or any(not 1 <= w <= 4096 for w in self.widths)
                            or any(a >= b for a, b in zip(self.widths, self.widths[1:]))):
            raise ConfigError(f"widths={','.join(map(str, self.widths))}: 1 to 64 strictly increasing widths in "
                              "[1, 4096]")
        if self.growing not in GROWINGS:
            raise ConfigError(f"growing={self.growing!r} must be one of {', '.join(GROWINGS)}")
        if self.grow_training not in GROW_TRAININGS:
            raise ConfigError(f"grow_training={self.grow_training!r} must be one of {', '.join(GROW_TRAININGS)}")
        _check("level_steps", self.level_steps, 0, 10**7)
        if any(not b > 0 for b in self.level_bpp) or any(a >= b for a, b in zip(self.level_bpp, self.level_bpp[1:])):
            raise ConfigError(f"level_bpp={','.join(map(str, self.level_bpp))}: positive and strictly increasing "
                              "(each level's cumulative size)")


@dataclass(frozen=True)
class TileConfig:
    """Layout ``tiles`` (:mod:`nfcodec.tile_encoder`): one small SIREN per tile, fitted together.

    ``prior``: a prior file's path or a packaged prior's name (``default`` = the packaged prior of
    the media kind); ``""`` fits from scratch; ``auto`` (a preset's choice) = ``default`` where it
    applies (an image, a packaged prior installed, no layout, representation or architecture
    chosen that cannot use it) and ``""`` elsewhere.  With a prior, its architecture and tile size
    are used (``tile`` and the model's width/depth are ignored).  ``tile``: the tile side without a
    prior.  ``adapt_steps``: Meta-SGD steps with the prior's learned per-parameter step sizes
    before the Adam fine-tune (-1: the prior's own K).  ``tile_steps``: Adam steps of the tiles
    fit (0: the fit's ``steps``); a tiled step costs ~40x less than a whole-image SIREN step.
    """

    prior: str = ""
    tile: int = 64
    adapt_steps: int = -1
    tile_steps: int = 0

    def __post_init__(self) -> None:
        _check("tile", self.tile, 8, 4096)
        _check("adapt_steps", self.adapt_steps, -1, 10**5)
        _check("tile_steps", self.tile_steps, 0, 10_000_000)


#: ``transform`` knob values (``none``: no XFRM chunk) and the ``transform_param`` each uses when
#: it is not given (-1): ``permute``'s seed, ``gamma``'s exponent in thousandths (docs/transforms.md).
TRANSFORM_DEFAULT_PARAM = {"none": 0, "permute": 0, "gamma": 1500}


@dataclass(frozen=True)
class TransformConfig:
    """An invertible data transform (the ``XFRM`` chunk; :mod:`nfcodec.transforms`, docs/transforms.md).

    The network is fitted to ``forward(frames)``; every decoder renders it and applies the exact
    inverse.  ``transform``: ``none`` (default: no XFRM chunk, the file is unchanged), ``permute``
    (a seeded random permutation of each frame's pixels) or ``gamma`` (a power law per sample).
    ``transform_param``: permute's seed (any u32), gamma's exponent in thousandths (250 .. 4000);
    -1: :data:`TRANSFORM_DEFAULT_PARAM`.
    """

    transform: str = "none"
    transform_param: int = -1

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORM_DEFAULT_PARAM:
            raise ConfigError(f"transform={self.transform!r} must be one of {', '.join(TRANSFORM_DEFAULT_PARAM)}")
        if self.transform_param != -1:
            from .bitstream.errors import FieldRangeError
            from .transforms import record_for

            try:
                record_for("identity" if self.transform == "none" else self.transform, self.transform_param)
            except FieldRangeError as e:
                raise ConfigError(f"transform_param={self.transform_param} does not fit transform "
                                  f"{self.transform}: {e}") from None

    @property
    def param(self) -> int:
        """The parameter written to XFRM (the transform's default when not given)."""
        return TRANSFORM_DEFAULT_PARAM[self.transform] if self.transform_param == -1 else self.transform_param


#: Quantizers of the grid fit's noise phase (an encoder choice: the file does not record it).
GRID_QUANTIZERS = ("noise", "softround")
#: Training rate term of the grid fit: the linear causal proxy, or the ``arm`` coder's own network trained
#: with the latents (Cool-chic's joint training; docs/grid.md).
GRID_RATES = ("causal", "arm")
#: Where a --bpp fit's lambda starts (GridConfig.grid_lambda_start; nfcodec.grid_encoder.start_lambda).
GRID_LAMBDA_STARTS = ("bpp", "webp")


@dataclass(frozen=True)
class GridConfig:
    """The rate-distortion fit of the latent grid (arch ``grid``; :mod:`nfcodec.grid_encoder`).

    Loss ``D + lambda * R``: D the MSE on the [-1, 1] scale, R the latents' estimated bits per
    pixel under the checkerboard context model.  ``grid_iters`` steps with uniform noise on the
    latents (cosine learning rate from ``grid_lr``), then ``grid_ste_iters`` steps with
    straight-through rounding (cosine from ``grid_ste_lr``), each step on a random
    ``grid_crop`` crop (0: the whole image); the file holds the rounded latents.  ``grid_lambda`` 0: from the --bpp target (a controller
    moves lambda during the fit) or :data:`GRID_DEFAULT_LAMBDA`.
    """

    grid_iters: int = 1200
    grid_ste_iters: int = 300
    grid_crop: int = 0               # crop side of the training steps (0: whole image)
    grid_lr: float = 5e-2
    grid_ste_lr: float = 2e-3
    # The synthesis network's learning rate as a multiple of grid_lr (both phases).
    grid_synthesis_lr_scale: float = 1.0
    # The latents' learning rate near the high-quality end (0: grid_lr always): while the fit's lambda
    # (the controller's, with a target) is at LR_LAMBDA_LO (2.5e-4) or below the latents (and the rate
    # model) train at grid_lr_high, at LR_LAMBDA_HI (1e-3) or above at grid_lr, in between
    # geometrically in lambda (nfcodec.grid_encoder.latent_lr).
    grid_lr_high: float = 0.0
    # The synthesis's multiple of grid_lr at the same low lambdas (0: grid_synthesis_lr_scale at every
    # lambda): grid_synthesis_lr_scale at LR_LAMBDA_HI or above, this at LR_LAMBDA_LO or below,
    # geometric between (nfcodec.grid_encoder.synthesis_lr).
    grid_synthesis_lr_scale_high: float = 0.0
    grid_lambda: float = 0.0
    # Where a --bpp fit's lambda starts (grid_lambda 0): "bpp" from the target alone
    # (GRID_DEFAULT_LAMBDA x (0.5 / bpp)^1.3), "webp" from the image too: webp_lambda_per_mse(bpp) times
    # the MSE WebP reaches on the image at the target rate (nfcodec.grid_encoder.start_lambda).
    grid_lambda_start: str = "bpp"
    grid_weight_bits: int = 0       # synthesis weight bit depth (0: searched among 6..10)
    # Noise phase quantizer: "noise" (y + U(-1/2, 1/2)) or "softround" (C3 / Cool-chic: soft
    # rounding around Kumaraswamy noise, temperature 0.3 -> 0.1 and noise shape 2 -> 1 over the phase).
    grid_quantizer: str = "noise"
    # The latents' learned context network (entropy model ``arm``, format 2.7): hidden units of its
    # two layers (0: none, the latents use causal4) and the Adam steps of its final fit.
    grid_arm: int = 8
    grid_arm_steps: int = 3000
    grid_rate: str = "causal"
    # Layout width-chunks only: weight of a coarser level's distortion in the loss (each step one
    # of the file's coarser levels, at random: its finer planes zeroed, as a cut file decodes them;
    # 0.1 cost no measurable quality at the full level, docs/grid.md "Streamable levels").
    grid_prefix_weight: float = 0.1
    # Video grids (arch grid-video): pixels of the frames each training step fits (the frames are
    # drawn at random, grid_batch_pixels // (H * W) of them, at least one).
    grid_batch_pixels: int = 2**18

    def __post_init__(self) -> None:
        if self.grid_quantizer not in GRID_QUANTIZERS:
            raise ConfigError(f"grid_quantizer={self.grid_quantizer!r} must be one of {', '.join(GRID_QUANTIZERS)}")
        _check("grid_iters", self.grid_iters, 0, 10_000_000)
        _check("grid_ste_iters", self.grid_ste_iters, 0, 10_000_000)
        _check("grid_crop", self.grid_crop, 0, 65535)
        _check("grid_batch_pixels", self.grid_batch_pixels, 1, 2**26)
        if 0 < self.grid_crop < 32:
            raise ConfigError(f"grid_crop={self.grid_crop}: 0 (whole image) or at least 32")
        _check("grid_lr", self.grid_lr, 1e-7, 1.0)
        _check("grid_ste_lr", self.grid_ste_lr, 1e-8, 1.0)
        _check("grid_synthesis_lr_scale", self.grid_synthesis_lr_scale, 1e-4, 100.0)
        _check("grid_lr_high", self.grid_lr_high, 0.0, 1.0)
        _check("grid_synthesis_lr_scale_high", self.grid_synthesis_lr_scale_high, 0.0, 100.0)
        _check("grid_lambda", self.grid_lambda, 0.0, 100.0)
        _check("grid_weight_bits", self.grid_weight_bits, 0, 16)
        _check("grid_arm", self.grid_arm, 0, 32)
        _check("grid_arm_steps", self.grid_arm_steps, 1, 1_000_000)
        _check("grid_prefix_weight", self.grid_prefix_weight, 0.0, 100.0)
        if self.grid_lambda_start not in GRID_LAMBDA_STARTS:
            raise ConfigError(f"grid_lambda_start={self.grid_lambda_start!r} must be one of "
                              f"{', '.join(GRID_LAMBDA_STARTS)}")
        if self.grid_rate not in GRID_RATES:
            raise ConfigError(f"grid_rate={self.grid_rate!r} must be one of {', '.join(GRID_RATES)}")
        if self.grid_rate == "arm" and not self.grid_arm:
            raise ConfigError("grid_rate='arm' trains the context network: it needs grid_arm > 0")
        if 0 < self.grid_weight_bits < 4:
            raise ConfigError(f"grid_weight_bits={self.grid_weight_bits}: 0 (searched) or 4..16")


#: lambda of a grid encode without a --bpp target or --lambda (about 0.5 bpp on kodim01).
GRID_DEFAULT_LAMBDA = 0.003

#: Levels of a width-chunks stream when no widths are given.
DEFAULT_LEVELS = 4


@dataclass(frozen=True)
class CodecConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    supermask: SupermaskConfig = field(default_factory=SupermaskConfig)
    grow: GrowConfig = field(default_factory=GrowConfig)
    tiles: TileConfig = field(default_factory=TileConfig)
    representation: str = "dense"
    layout: str = "single"
    xfrm: TransformConfig = field(default_factory=TransformConfig)
    grid: GridConfig = field(default_factory=GridConfig)

    def replace(self, **knobs: Any) -> "CodecConfig":
        """Return a copy with flat knobs (``width=96, steps=500, bits=7, ...``) overridden.

        ``None`` values are ignored so CLI options that were not given can be passed through.
        """
        parts: dict[str, dict[str, Any]] = {k: {} for k in ("model", "quant", "fit", "prune", "supermask", "grow",
                                                             "tiles", "xfrm", "grid", "")}
        for name, value in knobs.items():
            if value is None:
                continue
            if name not in KNOBS:
                raise ConfigError(f"unknown setting {name!r} (known: {', '.join(sorted(KNOBS))})")
            parts[KNOBS[name]][name] = value
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, **parts["model"]),
            quant=dataclasses.replace(self.quant, **parts["quant"]),
            fit=dataclasses.replace(self.fit, **parts["fit"]),
            prune=dataclasses.replace(self.prune, **parts["prune"]),
            supermask=dataclasses.replace(self.supermask, **parts["supermask"]),
            grow=dataclasses.replace(self.grow, **parts["grow"]),
            tiles=dataclasses.replace(self.tiles, **parts["tiles"]),
            xfrm=dataclasses.replace(self.xfrm, **parts["xfrm"]),
            grid=dataclasses.replace(self.grid, **parts["grid"]),
            **parts[""],
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KNOBS: dict[str, str] = {
    **{f.name: "model" for f in dataclasses.fields(ModelConfig)},
    **{f.name: "quant" for f in dataclasses.fields(QuantConfig)},
    **{f.name: "fit" for f in dataclasses.fields(FitConfig)},
    **{f.name: "prune" for f in dataclasses.fields(PruneConfig)},
    **{f.name: "supermask" for f in dataclasses.fields(SupermaskConfig)},
    **{f.name: "grow" for f in dataclasses.fields(GrowConfig)},
    **{f.name: "tiles" for f in dataclasses.fields(TileConfig)},
    **{f.name: "xfrm" for f in dataclasses.fields(TransformConfig)},
    **{f.name: "grid" for f in dataclasses.fields(GridConfig)},
    "representation": "",
    "layout": "",
}

#: The knobs that set a network's size: given any of them, a default video encode keeps the
#: preset's size instead of sizing the network for the clip (nfcodec.ratecontrol.clip_sized).
SIZE_KNOBS = frozenset({"width", "depth", "c1", "c2", "min_channels", "mlp_hidden"})

# Presets, tuned on a 2-core CPU for Kodak-sized (768x512) images; see docs/benchmarks.md.
PRESETS: dict[str, CodecConfig] = {
    # Quick look.  Images: 64x64 tiles from the packaged default-image prior (prior="auto": where it
    # applies), 2000 batched tile steps, about 30 s for 768x512 on 2 CPU cores (docs/benchmarks.md,
    # "Fast encoding from learned priors"); elsewhere (--no-prior, other layouts, supermask) one
    # SIREN 48x4 fitted from scratch in 1000 steps, about 40 s.
    "fast": CodecConfig(ModelConfig(width=48, depth=4), QuantConfig(bits=10), FitConfig(steps=1000, lr=2e-3),
                        tiles=TileConfig(prior="auto", tile_steps=2000)),
    # The default trade-off: about 2 minutes for 768x512 on 2 CPU cores (~0.35 bpp on Kodak).
    "default": CodecConfig(ModelConfig(width=64, depth=5), QuantConfig(bits=10), FitConfig(steps=3000, lr=2e-3)),
    # More parameters and steps: higher rate and quality; ~10 minutes for 768x512 on CPU (use a GPU).
    "high": CodecConfig(ModelConfig(width=96, depth=6), QuantConfig(bits=10), FitConfig(steps=6000, lr=1e-3)),
}


# Video presets (NeRV), sized for CPU encodes of small clips (QCIF to 320x180, tens of frames) on
# 2 cores; on a GPU use more epochs.  The model (so the file) does not grow with the clip length,
# so longer clips get fewer bits per pixel.  Measured CPU cost: docs/video.md.
VIDEO_PRESETS: dict[str, CodecConfig] = {
    # Quick look: ~0.1-0.2 M weights.
    "fast": CodecConfig(ModelConfig(arch="nerv", c1=8, c2=32, min_channels=12, mlp_hidden=64), QuantConfig(bits=8),
                        FitConfig(epochs=60, batch_frames=2, lr=5e-3, warmup_steps=20)),
    # The default trade-off: ~0.3-0.6 M weights.
    "default": CodecConfig(ModelConfig(arch="nerv", c1=16, c2=64, min_channels=16, mlp_hidden=96), QuantConfig(bits=8),
                           FitConfig(epochs=150, batch_frames=2, lr=5e-3, warmup_steps=30)),
    # More channels and epochs (use a GPU).
    "high": CodecConfig(ModelConfig(arch="nerv", c1=32, c2=96, min_channels=24, mlp_hidden=128), QuantConfig(bits=8),
                        FitConfig(epochs=300, batch_frames=2, lr=5e-3, warmup_steps=50)),
}


# Latent-grid presets (arch grid, images) for 768x512 on 2 CPU cores (docs/benchmarks.md, "Latent
# grid"): fast measured 73 s (target <= 2 min), default 196-229 s (target <= 10 min); high is for GPUs.
#: The learning rates of the fast and default presets: the latents at GRID_PRESET_LR, rising to
#: GRID_PRESET_LR_HIGH while the fit's lambda is low (GridConfig.grid_lr_high), the synthesis network
#: at GRID_PRESET_LR x GRID_PRESET_SYNTHESIS_LR_SCALE = 0.05.  Tenth round: one rate of 0.1 for both
#: against GridConfig's 0.05 gave +0.17 / +0.31 / +0.29 / +0.46 dB at --bpp 0.25 / 0.5 / 1.0 / 1.5 on
#: kodim01/03/05/09, and 0.2 for both diverged.  Twelfth round: the divergence is the synthesis's;
#: with the synthesis at 0.05, latents at 0.2 lifted the smooth images' high rates by 2-3 dB in a
#: training-only probe (kodim03 and kodim12 at --bpp 1.5, fast preset) and cost the textured kodim01
#: and kodim05, whose fits run at a higher lambda, hence the rule on lambda (docs/grid.md "Learning
#: rates").  Not measured for high's 5000 steps nor for video grids, which keep 0.05 for both.
GRID_PRESET_LR = 0.1
GRID_PRESET_LR_HIGH = 0.2
GRID_PRESET_SYNTHESIS_LR_SCALE = 0.5
#: Where the fast and default presets' --bpp fits start lambda (GridConfig.grid_lambda_start):
#: from WebP's MSE on the image at the target rate.  Fourteenth session, default preset, kodim03/05/09
#: against the twelfth-round record: +0.08 dB at equal rate over the four rates (-0.04 / -0.07 /
#: +0.20 / +0.23 dB at --bpp 0.25 / 0.5 / 1.0 / 1.5; docs/grid.md "Where lambda starts"); fast against
#: itself +0.91 dB at 1.0 bpp, -0.21 dB at 0.5 (smooth images lose at 0.5 with both).  high
#: (unmeasured) and the video presets keep "bpp".
GRID_PRESET_LAMBDA_START = "webp"
#: The image presets' context network (``grid_arm``): 16 hidden units instead of GridConfig's 8 (514
#: weights against 194 stored in the file).  Seventeenth session, kodim03/09/05: default preset against
#: the Kodak record kodak-r15 +0.05 / +0.12 / +0.16 dB at equal rate at --bpp 0.25 / 1.0 / 1.5 (+0.10 dB
#: over the 9 files, 8 of them better); fast preset against itself at 0.5 bpp +0.12 dB at -0.6% bits,
#: 1.12x the encode time (docs/grid.md "The entropy model").  The video presets keep 8 (unmeasured).
GRID_PRESET_ARM = 16
GRID_PRESETS: dict[str, CodecConfig] = {
    # Whole-image steps (random crops measured worse per second: docs/benchmarks.md, "Latent grid").
    "fast": CodecConfig(ModelConfig(arch="grid"),
                        grid=GridConfig(grid_iters=400, grid_ste_iters=100, grid_crop=0, grid_arm_steps=1500,
                                        grid_lr=GRID_PRESET_LR, grid_lr_high=GRID_PRESET_LR_HIGH,
                                        grid_synthesis_lr_scale=GRID_PRESET_SYNTHESIS_LR_SCALE,
                                        grid_lambda_start=GRID_PRESET_LAMBDA_START, grid_arm=GRID_PRESET_ARM)),
    "default": CodecConfig(ModelConfig(arch="grid"),
                           grid=GridConfig(grid_iters=1200, grid_ste_iters=300, grid_crop=0, grid_lr=GRID_PRESET_LR,
                                           grid_lr_high=GRID_PRESET_LR_HIGH,
                                           grid_synthesis_lr_scale=GRID_PRESET_SYNTHESIS_LR_SCALE,
                                           grid_lambda_start=GRID_PRESET_LAMBDA_START, grid_arm=GRID_PRESET_ARM)),
    "high": CodecConfig(ModelConfig(arch="grid", grid_hidden=(32, 32)),
                        grid=GridConfig(grid_iters=4000, grid_ste_iters=1000, grid_crop=0, grid_arm=GRID_PRESET_ARM)),
}


# Video latent-grid presets (arch grid-video): each step fits grid_batch_pixels of frames (QCIF:
# 10 frames of 120), so a video needs more steps than an image; sized for carphone (176x144, 120
# frames) on 2 CPU cores (docs/grid.md "Video grids").
GRID_VIDEO_PRESETS: dict[str, CodecConfig] = {
    "fast": CodecConfig(ModelConfig(arch="grid-video"),
                        grid=GridConfig(grid_iters=800, grid_ste_iters=200, grid_arm_steps=1500)),
    "default": CodecConfig(ModelConfig(arch="grid-video"),
                           grid=GridConfig(grid_iters=2400, grid_ste_iters=600)),
    "high": CodecConfig(ModelConfig(arch="grid-video", grid_hidden=(32, 32)),
                        grid=GridConfig(grid_iters=8000, grid_ste_iters=2000)),
}
#: The presets of an architecture with its own trainer, by name (the others use PRESETS / VIDEO_PRESETS).
ARCH_PRESETS: dict[str, dict[str, CodecConfig]] = {"grid": GRID_PRESETS, "grid-video": GRID_VIDEO_PRESETS}


def get_preset(name: str, *, video: bool = False, arch: str = "") -> CodecConfig:
    """Return the image preset ``name`` (or the video preset with ``video=True``).

    Raises:
        ConfigError: unknown preset name.
    """
    table = ARCH_PRESETS.get(arch) or (VIDEO_PRESETS if video else PRESETS)
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(table)})") from None
