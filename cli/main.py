"""``nfc``: encode, decode and inspect neural-field (.nfc) files.

Each command parses its options, calls the library and prints.  Library errors become one
line on stderr and exit status 1 (usage errors: 2, from click); no traceback for bad input.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import click

from .. import __version__


def _names(kind: str) -> list[str]:
    """The registered names of a variant kind (CLI choices come from the registries)."""
    if kind == "architecture":
        from ..archs import ARCHS

        return ARCHS.names()
    from ..variants import LAYOUTS, REPRESENTATIONS

    return (LAYOUTS if kind == "layout" else REPRESENTATIONS).names()

__all__ = ["cli", "main"]

from .common import _fail_cleanly, _progress_bar  # noqa: E402  (shared with the sub-command modules)



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nfc")
def cli() -> None:
    """Neural-field codec: the compressed file is a small network fitted to your image or video."""


def _number_list(kind: type, example: str) -> Callable[[Any, Any, str | None], tuple | None]:
    """A click callback parsing comma-separated ``kind`` values."""
    what = "integers" if kind is int else "numbers"

    def parse(ctx: Any, param: Any, value: str | None) -> tuple | None:
        if value is None:
            return None
        try:
            return tuple(kind(v) for v in value.split(","))
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {what}, e.g. {example}") from None

    return parse


_factors = _number_list(int, "5,2,2")
_widths = _number_list(int, "24,48,72,96")
_floats = _number_list(float, "0.1,0.2,0.4,0.8")
_hidden = _number_list(int, "16,16")


@cli.command()
@click.argument("input", type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .nfc file.")
@click.option("--preset", type=click.Choice(["fast", "default", "high"]), default="default", show_default=True,
              help="Image presets (SIREN), video presets (NeRV) or, with --arch grid / grid-video, the latent-grid "
                   "presets; see docs.")
@click.option("--arch", type=click.Choice(_names("architecture")), help="Network (default: siren for images, nerv for videos).")
@click.option("--frames", "frames", help="Videos: frame range A:B[:STEP] (0-based, B excluded), e.g. 0:60.")
@click.option("--resize", help="Videos: scale frames to WxH before encoding, e.g. 320x180.")
@click.option("--width", type=click.IntRange(1, 4096), help="SIREN hidden units per layer.")
@click.option("--depth", type=click.IntRange(1, 64), help="SIREN hidden sine layers.")
@click.option("--steps", type=click.IntRange(1), help="Optimisation steps (NeRV presets count --epochs instead).")
@click.option("--epochs", type=click.IntRange(0), help="Passes over the frames / pixels (0: use --steps).")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True),
              help="Rate control: a file of at most this many bits per pixel (and at least 95% of it).")
@click.option("--psnr", type=click.FloatRange(0, 100, min_open=True, max_open=True),
              help="Rate control: the smallest file found that decodes to at least this PSNR (dB).")
@click.option("--representation", type=click.Choice(_names("representation")),
              help="dense: every weight coded; pruned: magnitude-pruned weights plus coded masks; "
                   "supermask: random weights from --seed, nested masks and scales (no weight values).")
@click.option("--levels", type=click.IntRange(1, 8), help="Supermask: nested mask levels (default 3).")
@click.option("--layout", type=click.Choice(_names("layout")),
              help="single: one network; width-chunks: a SIREN grown level by level, or a grid's latent "
                   "planes coarse to fine; every prefix of the file decodes (see --widths, --growing).")
@click.option("--prior", "prior", metavar="NAME|PATH",
              help="Fit from a meta-learned prior (images: tiles layout; videos: a NeRV prior for clips of "
                   "its frames and size): 'default', a packaged prior's name or a .nfp file; the weights are "
                   "coded as residuals from it (see docs/priors.md).")
@click.option("--no-prior", is_flag=True, help="Fit from scratch even where the preset uses a prior.")
@click.option("--tile", type=click.IntRange(8, 4096), help="tiles layout without a prior: tile side in pixels.")
@click.option("--adapt-steps", type=click.IntRange(0), help="With a prior: its Meta-SGD steps before Adam "
                                                             "(default: the prior's own K).")
@click.option("--tile-steps", type=click.IntRange(0), help="tiles layout: Adam steps of the tiles fit "
                                                           "(default: the preset's; 0: --steps).")
@click.option("--transform", type=click.Choice(["none", "permute", "gamma"]),
              help="Fit a transformed copy of the frames and store the transform (XFRM); decoders invert it. "
                   "permute: seeded pixel permutation; gamma: power law per sample (default none; see "
                   "docs/transforms.md).")
@click.option("--transform-param", type=click.IntRange(0, 2**32 - 1),
              help="permute: the seed (default 0); gamma: the exponent in thousandths, 250-4000 (default 1500).")
@click.option("--widths", callback=_widths,
              help="width-chunks: hidden width after each level, e.g. 24,48,72,96 (default: 4 levels, the "
                   "first half of --width, then equal steps); with --arch grid the latent planes after each "
                   "level, coarsest first, ending at the grid's levels (default: 4,5,6,7 for 7 levels).")
@click.option("--growing", type=click.Choice(["spectral", "spatial", "temporal"]),
              help="width-chunks: each level adds detail (spectral), columns (spatial) or frames (temporal).")
@click.option("--grow-training", type=click.Choice(["progressive", "slimmable"]),
              help="width-chunks: progressive (freeze the levels below, default) or slimmable (all levels "
                   "at once; spectral only).")
@click.option("--level-steps", type=click.IntRange(1), help="width-chunks: Adam steps per level (default: --steps).")
@click.option("--level-bpp", callback=_floats,
              help="width-chunks rate control: cumulative bpp of each level's prefix, e.g. 0.1,0.2,0.4,0.8.")
@click.option("--density", type=click.FloatRange(0.001, 0.5),
              help="Supermask: share of each weight tensor the first level keeps (default 0.2; "
                   "the others follow the linear rule of Okoshi et al.).")
@click.option("--sparsity", type=click.FloatRange(0.0, 0.999),
              help="Pruned: share of weights removed (rate control default: 0.2).")
@click.option("--prune-scope", type=click.Choice(["global", "layer"]),
              help="Pruned: one magnitude threshold for all layers (global) or the same share per layer.")
@click.option("--bits", type=click.IntRange(2, 16), help="Quantization bit depth per tensor (start of the RD search).")
@click.option("--rd-search/--no-rd-search", default=None,
              help="Search per-tensor quantization steps for rate + lambda x distortion (default: on).")
@click.option("--rd-lambda", type=click.FloatRange(0.0, 1e6),
              help="RD search trade-off in bpp per unit of 8-bit MSE (0: automatic, 1%% rate = 1%% MSE).")
@click.option("--qat-mode", type=click.Choice(["ste", "noise"]),
              help="Quantization-aware fine-tune: straight-through rounding or additive uniform noise.")
@click.option("--qat-fraction", type=click.FloatRange(0.0, 1.0),
              help="Append this share of steps of quantization-aware fine-tuning (default 0: plain rounding).")
@click.option("--lr", type=click.FloatRange(1e-7, 1.0), help="Peak learning rate.")
@click.option("--w0", type=click.FloatRange(0.001, 10000), help="SIREN frequency factor (hidden layers).")
@click.option("--batch-pixels", type=click.IntRange(0), help="SIREN: pixels per step (0 = all).")
@click.option("--batch-frames", type=click.IntRange(1, 4096), help="NeRV: frames per step.")
@click.option("--c1", type=click.IntRange(1, 4096), help="NeRV: channels of the base feature map.")
@click.option("--c2", type=click.IntRange(1, 4096), help="NeRV: channels of the first block (halved per block).")
@click.option("--min-channels", type=click.IntRange(1, 4096), help="NeRV: floor of the block channels.")
@click.option("--mlp-hidden", type=click.IntRange(1, 4096), help="NeRV: hidden units of the MLP.")
@click.option("--factors", callback=_factors, help="NeRV: upscale factors, e.g. 5,2,2,2,2 (default: from the size).")
@click.option("--lambda", "grid_lambda", type=click.FloatRange(0.0, 100.0, min_open=True),
              help="grid: rate-distortion trade-off (MSE on [-1, 1] + lambda x bpp), for experts; --bpp picks it.")
@click.option("--grid-levels", type=click.IntRange(1, 12), help="grid: latent levels, 1:1 to 1:2^(L-1) (default 7).")
@click.option("--grid-hidden", callback=_hidden, help="grid: synthesis hidden widths, one or two (e.g. 16,16).")
@click.option("--grid-head-kernel", type=click.Choice(["1", "3", "5", "7"]), callback=lambda c, p, v: None if v is None else int(v),
              help="grid: the RGB layer per pixel (1) or a k x k convolution of the hidden maps.")
@click.option("--grid-iters", type=click.IntRange(0), help="grid: noise-phase steps (preset: fast 400, default 1200, high 4000).")
@click.option("--grid-ste-iters", type=click.IntRange(0), help="grid: straight-through steps after them.")
@click.option("--grid-crop", type=click.IntRange(0, 65535), help="grid: crop side of the training steps (0: whole image).")
@click.option("--grid-arm", type=click.IntRange(0, 32),
              help="grid: hidden units of the latents' learned context network (image presets 16, video presets 8; 0: none, causal4).")
@click.option("--grid-rate", type=click.Choice(["causal", "arm"]),
              help="grid: training rate term, the linear causal proxy or the context network trained with the latents.")
@click.option("--grid-prefix-weight", type=click.FloatRange(0.0, 100.0),
              help="grid, layout width-chunks: weight of a coarser level's distortion in the training loss, so "
                   "that a cut file decodes a coarser image (default 0.1; 0: off).")
@click.option("--grid-quantizer", type=click.Choice(["noise", "softround"]),
              help="grid: noise-phase quantizer, uniform noise or C3-style soft rounding (default: noise).")
@click.option("--seed", type=click.IntRange(0), help="Seed of the initialisation and batches; with supermask also the file's "
                                                   "SEED, from which the decoder regenerates the weights.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--no-meta", is_flag=True, help="Do not store settings in the ancillary meTA chunk.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_fail_cleanly
def encode(input: str, output: str, preset: str, frames: str | None, resize: str | None, no_meta: bool,
           force: bool, as_json: bool, quiet: bool, no_prior: bool, **knobs: Any) -> None:
    """Fit a network to INPUT and write it to OUTPUT as .nfc.

    INPUT is an image (PNG, JPEG, PPM, ...), a video (mp4, mkv, webm, y4m, ...), or a folder or
    glob of PNG frames.  Prints the file's real size, bpp (8 x bytes / (frames x width x height))
    and the PSNR of what `nfc decode` will produce (videos: the mean of per-frame PSNRs and the
    PSNR of the mean MSE).
    """
    from .. import api

    if no_prior:
        if knobs.get("prior"):
            raise click.UsageError("give --prior or --no-prior, not both")
        knobs["prior"] = ""
    progress, close = _progress_bar(quiet or as_json)
    try:
        r = api.encode(input, output, preset=preset, overwrite=force, metadata=not no_meta,
                       progress=progress, frames=frames, resize=resize, **knobs)
    finally:
        close()
    if as_json:
        h = r.info.header
        click.echo(json.dumps({"output": output, "bytes": r.nbytes, "bpp": r.bpp, "psnr": r.psnr,
                               "mean_frame_psnr": r.mean_frame_psnr, "frames": h.frames,
                               "fps": f"{h.fps_num}/{h.fps_den}", "width": h.width, "height": h.height,
                               "seconds": r.seconds, "fit_seconds": r.fit.seconds, "device": r.fit.device,
                               "rate_control": r.rate_control, "config": r.config.to_dict(),
                               **({"levels": list(r.levels)} if r.levels else {})}))
    elif not quiet:
        click.echo(f"{output}: {r.summary()}")
        for lv in r.levels:
            cover = f", covers {lv['cover']}" if lv["cover"] else ""
            click.echo(f"  level {lv['level']}: {lv.get('unit', 'width')} {lv['width']}, decodes from the first "
                       f"{lv['end']} bytes "
                       f"({lv['bpp']:.4f} bpp), PSNR {lv['psnr']:.2f} dB{cover}")
        if r.rate_control:
            rc = r.rate_control
            chosen = ", ".join(f"{k}={v}" for k, v in rc.items() if k not in ("mode", "target", "bpp"))
            what = f"network sized for the clip (target {rc['target']} bpp)" if rc["mode"] == "clip" else \
                f"rate control ({rc['mode']} {rc['target']})"
            click.echo(f"{what}: {chosen}")


@cli.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Image (.png, ...) or video: .mkv (FFV1), .mp4 (x264 RGB qp 0), .y4m, frames/%04d.png.")
@click.option("--frames", "frames", help="Videos: decode only frames A:B[:STEP].")
@click.option("--crf", type=click.IntRange(0, 51), help="Videos: lossy x264 yuv420p delivery encode at this CRF.")
@click.option("--backend", type=click.Choice(["auto", "numpy", "torch"]), default="auto", show_default=True,
              help="Decoder arithmetic backend; format 2 files give the same pixels with each.")
@click.option("--device", help="torch backend: cpu, cuda or cuda:N.")
@click.option("--no-limits", is_flag=True,
              help="Lift the decoder's size and work limits (trusted files only; see docs/cli.md).")
@click.option("--level", type=click.IntRange(1), help="width-chunks files: decode this level (default: the last).")
@click.option("--strict", is_flag=True,
              help="Refuse a cut or damaged width-chunks file instead of decoding its last complete level.")
@click.option("--prior", "priors", multiple=True, type=click.Path(path_type=str),
              help="A prior file or directory to search first (repeatable; then $NFC_PRIOR_PATH, then the "
                   "packaged priors).")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@_fail_cleanly
def decode(input: str, output: str, frames: str | None, crf: int | None, backend: str, device: str | None,
           no_limits: bool, level: int | None, strict: bool, priors: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Decode an .nfc file to an image or a video (frames are written as they are decoded).

    A width-chunks file cut anywhere after its first level decodes its last complete level and
    says so on stderr (--strict refuses it); any other file must be whole.
    """
    from .. import api
    from ..decoder import DecodeLimits

    limits = DecodeLimits.unlimited() if no_limits else None
    r = api.decode(input, output, overwrite=force, frames=frames, crf=crf, backend=backend, device=device,
                   limits=limits, level=level, strict=strict, prior=priors)
    if r.note:
        click.echo(f"nfc: {r.note}", err=True)
    if not quiet:
        h = r.info.header
        width = r.image.shape[1] if r.image is not None else (r.frames.shape[2] if r.frames is not None else h.width)
        what = f"{r.written} frames of {width}x{h.height}" if h.media == 1 else f"{width}x{h.height}"
        lv = f", level {r.level} of {r.levels}" if r.levels > 1 else ""
        click.echo(f"{output}: {what} from {r.info.nbytes} bytes ({r.info.bpp:.4f} bpp{lv})")


@cli.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.argument("output", type=click.Path(dir_okay=False, path_type=str))
@click.option("--level", type=click.IntRange(1), help="Keep levels 1 to this one.")
@click.option("--max-bytes", type=click.IntRange(1), help="Keep as many levels as fit in this many bytes.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@_fail_cleanly
def truncate(input: str, output: str, level: int | None, max_bytes: int | None, force: bool, quiet: bool) -> None:
    """Write a shorter, valid width-chunks file: the first levels of INPUT (a server's operation).

    OUTPUT decodes to exactly what `nfc decode --level K INPUT` gives.
    """
    from .. import api

    if (level is None) == (max_bytes is None):
        raise click.UsageError("give --level or --max-bytes (exactly one)")
    data = api.truncate(input, output, level=level, max_bytes=max_bytes, overwrite=force)
    if not quiet:
        info = api.probe(data)
        click.echo(f"{output}: level {info.header.n_segments}, {len(data)} bytes")


@cli.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also list every coded tensor (model, bits per value) and pruning mask (coder, bits per element).")
@_fail_cleanly
def info(input: str, as_json: bool, verbose: bool) -> None:
    """Show a .nfc file's header, architecture and chunk table (no decoding)."""
    from ..api import probe
    from ..bitstream import read_container, tensor_report
    from ..media import read_input_bytes

    from ..bitstream import TruncatedError

    data = read_input_bytes(input)
    try:
        si = probe(data)
    except TruncatedError:
        if not _progressive(data):
            raise
        si = probe(data, allow_truncated=True)     # a cut width-chunks file: its complete levels
    from ..archs import ARCHS
    from ..variants import REPRESENTATIONS

    tensors, masks = [], []
    chunks = read_container(data, allow_truncated=si.truncated).chunks
    rep = REPRESENTATIONS.by_id(si.header.representation)
    payload = rep.describe(ARCHS.by_id(si.header.arch).param_shapes(si.arch), chunks)
    masks = payload.pop("masks", [])      # per-mask rows (pruned), listed with -v
    if verbose:
        tensors = [t for c in chunks if c.ctype == b"TDAT" for t in tensor_report(c.data)]
    else:
        masks = []
    decoding = "exact" if si.version[0] >= 2 else "float32"
    levels = _levels(data)
    xfrm = _transform(chunks)
    if as_json:
        click.echo(json.dumps({**si.as_dict(), "decoding": decoding, "payload": payload,
                               **({"levels": levels} if levels else {}),
                               **({"transform": xfrm} if xfrm else {}),
                               **({"tensors": tensors, "masks": masks} if verbose else {})}, default=str))
        return
    click.echo(f"{input}: nfc v{si.version[0]}.{si.version[1]}, {si.nbytes} bytes, {si.bpp:.4f} bpp"
               + (f" (cut: {len(levels)} of its {si.header.n_segments} levels complete)" if si.truncated else ""))
    click.echo(f"  {'decoding':<15}" + ("exact arithmetic (the same pixels everywhere)" if decoding == "exact" else
                                         "float32 renderer of format 1.x (pixels may differ across machines)"))
    for name, value in si.header.describe():
        click.echo(f"  {name:<15}{value}")
    h = si.header
    if h.media == 1:
        from fractions import Fraction

        rate = Fraction(h.fps_num, h.fps_den)
        seconds = f", {float(h.frames / rate):.2f} s" if rate else ""
        click.echo(f"  {'video':<15}{h.frames} frames of {h.width}x{h.height} at "
                   f"{f'{h.fps_num}/{h.fps_den}' if rate else 'unknown'} fps ({float(rate):.3f}{seconds})")
    click.echo(f"  architecture ({si.arch.NAME}):")
    for name, value in si.arch.describe():
        click.echo(f"    {name:<13}{value}")
    click.echo(f"  payload ({rep.name}):")
    for name, value in payload.items():
        if name == "levels":
            for row in value:
                click.echo(f"    level {row['level']:<7}kept {row['kept']} of {row['coded_over']} coded positions "
                           f"(density {row['density']:.4f} of the masked weights)")
            continue
        click.echo(f"    {name:<21}{value}")
    if xfrm:
        click.echo(f"  {'transform':<15}{xfrm['name']} (param {xfrm['param']}); decoders invert it after rendering")
    if levels:
        click.echo(f"  levels ({levels[0]['growing']} growing):")
        for lv in levels:
            cover = f"  covers {lv['cover']} {'columns' if lv['growing'] == 'spatial' else 'frames'}" \
                if lv["cover"] else ""
            psnr = f"  PSNR {lv['psnr']:.2f} dB" if lv.get("psnr") is not None else ""
            click.echo(f"    level {lv['level']}: {lv['unit']} {lv['width']:<5} bytes [{lv['begin']}, {lv['end']})  "
                       f"{lv['bpp']:.4f} bpp{psnr}{cover}")
    click.echo("  chunks:")
    for c in si.chunks:
        kind = "critical" if c.critical else "ancillary"
        click.echo(f"    {c.ctype}  offset {c.offset:>8}  {c.length:>8} bytes  {kind:<9}  {c.description}")
    for t in tensors:
        click.echo(f"    tensor {t['index']:>3}: {t['n']:>7} values  step {t['step']:>3}  "
                   f"{t['model']:<9}  {t['bits_per_symbol']:.3f} bits/value")
    for m in masks:
        click.echo(f"    mask   {m['index']:>3}: {m['n']:>7} values  kept {m['kept']:>7}  "
                   f"{m['coder']:<9}  {m['bits_per_element']:.3f} bits/value")


def _transform(chunks: Any) -> dict[str, Any] | None:
    """The XFRM chunk's transform (docs/transforms.md), or None without one."""
    from ..bitstream import FormatError
    from ..bitstream.headers import TRANSFORMS, TransformRecord

    found = [c for c in chunks if c.ctype == b"XFRM"]
    if not found:
        return None
    try:
        rec = TransformRecord.unpack(found[0].data)
    except FormatError as e:
        return {"name": "invalid", "param": None, "error": str(e)}
    return {"name": TRANSFORMS[rec.transform], "id": rec.transform, "param": rec.param}


def _progressive(data: bytes) -> bool:
    """Whether a (possibly cut) file's layout decodes from a prefix."""
    from ..bitstream import read_container
    from ..bitstream.headers import StreamHeader
    from ..variants import LAYOUTS

    heads = [c for c in read_container(data, allow_truncated=True).chunks if c.ctype == b"NHDR"]
    return bool(heads) and LAYOUTS.by_id(StreamHeader.unpack(heads[0].data).layout).progressive


def _levels(data: bytes) -> list[dict[str, Any]]:
    """``nfc info``'s level table of a width-chunks file, whole or cut (empty for other layouts)."""
    from ..archs import ARCHS
    from ..bitstream import read_container, unpack_arch
    from ..bitstream.headers import StreamHeader
    from ..variants import LAYOUTS, REPRESENTATIONS

    container = read_container(data, allow_truncated=True)
    header = StreamHeader.unpack(next(c.data for c in container.chunks if c.ctype == b"NHDR"))
    layout = LAYOUTS.by_id(header.layout)
    if not layout.progressive:
        return []
    record = unpack_arch(header.arch, next(c.data for c in container.chunks if c.ctype == b"ARCH"))
    plan = layout.plan(container, header, record, ARCHS.by_id(header.arch), REPRESENTATIONS.by_id(header.representation))
    pixels = header.frames * header.width * header.height
    unit = ARCHS.by_id(header.arch).growth.unit
    return [{"level": lv.index, "width": lv.width, "unit": unit, "cover": lv.cover, "growing": plan.growing,
             "begin": lv.begin,
             "end": lv.end, "bpp": round(8 * lv.end / pixels, 6),
             "psnr": plan.psnr[lv.index - 1] if len(plan.psnr) >= lv.index else None} for lv in plan.levels]


def main() -> None:
    cli(prog_name="nfc")


from . import eval_cmd  # noqa: E402,F401  (registers `nfc eval`; kept last: it needs `cli` and `_fail_cleanly`)


from .prior_cmd import prior_group  # noqa: E402
from .prior_train_cmd import train as _prior_train  # noqa: E402

prior_group.add_command(_prior_train)
cli.add_command(prior_group)
