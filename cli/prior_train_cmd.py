"""``nfc prior train``: meta-learn a SIREN prior (tile initialisation) from images and videos, or
(``--arch nerv``) a NeRV prior (clip initialisation) from videos.

A thin layer over :func:`nfcodec.meta.train.train_prior` (docs/meta-learning.md); the command
object :data:`train` is registered on the ``prior`` group by :mod:`nfcodec.cli.main`.  It imports
torch only when it runs.  Under ``torchrun --nproc_per_node=N python -m nfcodec.cli.prior_train_cmd
...`` every rank runs it; only rank 0 shows progress and writes files.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .common import _fail_cleanly, _progress_bar

__all__ = ["train"]


def _command_line() -> str:
    """How this run was started, for the prior's meta (``nfc ...`` or ``python -m ...``)."""
    argv = sys.argv or [""]
    name = Path(argv[0]).name
    if name.endswith("prior_train_cmd.py"):
        head = ["python", "-m", "nfcodec.cli.prior_train_cmd"]
    else:
        head = ["nfc" if name.startswith("nfc") else name]
    return shlex.join(head + argv[1:])


@click.command("train")
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The prior file to write (.nfp).")
@click.option("--arch", type=click.Choice(["siren", "nerv"]), default="siren", show_default=True,
              help="siren: image tiles; nerv: video clips (the NeRV of a video preset).")
@click.option("--width", type=click.IntRange(1, 4096), help="SIREN hidden units per layer.  [default: 64]")
@click.option("--depth", type=click.IntRange(1, 64), help="SIREN hidden sine layers.  [default: 3]")
@click.option("--size", help="SIREN: tile (task) size WIDTHxHEIGHT [default: 64x64]; NeRV: clip size "
                             "FRAMESxWIDTHxHEIGHT, e.g. 8x176x144 (required).")
@click.option("--preset", type=click.Choice(["fast", "default", "high"]), default=None,
              help="NeRV: the video preset whose network, sized for the clip as `nfc encode` sizes it, is "
                   "learned.  [default: default]")
@click.option("--c1", type=click.IntRange(1, 4096), help="NeRV: channels of the base map (with --c2 etc.: "
                                                          "the preset with these knobs, not clip-sized).")
@click.option("--c2", type=click.IntRange(1, 4096), help="NeRV: channels of the first block.")
@click.option("--min-channels", "min_channels", type=click.IntRange(1, 4096), help="NeRV: floor of the block channels.")
@click.option("--mlp-hidden", "mlp_hidden", type=click.IntRange(1, 4096), help="NeRV: hidden units of the MLP.")
@click.option("--min-scale", "min_scale", type=click.FloatRange(0, min_open=True), default=0.5, show_default=True,
              help="Smallest crop scale (task pixels per source pixel; raised where the source is too small).")
@click.option("--max-scale", "max_scale", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Largest crop scale.")
@click.option("--video-stride", "video_stride", type=click.IntRange(1), default=4, show_default=True,
              help="SIREN: every Nth video frame is a source image; NeRV: largest temporal stride of a clip.")
@click.option("--inner-steps", "inner_steps", type=click.IntRange(1), default=16, show_default=True,
              help="K: inner SGD steps per task (the encoder's first steps).")
@click.option("--inner-lr", "inner_lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True,
              help="Inner step size (Meta-SGD: initial value of every learned step size).")
@click.option("--meta-lr", "meta_lr", type=click.FloatRange(min=0, min_open=True), default=3e-4, show_default=True,
              help="Outer Adam learning rate.")
@click.option("--step-size-lr", "step_size_lr", type=click.FloatRange(min=0, min_open=True),
              help="Outer Adam learning rate of the Meta-SGD step sizes [default: meta-lr x inner-lr].")
@click.option("--meta-batch", "meta_batch", type=click.IntRange(1), default=8, show_default=True,
              help="Tasks per meta-step (per process under torchrun).")
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True, help="Dense meta-steps.")
@click.option("--first-order", "first_order", is_flag=True, help="First-order MAML (no second derivatives).")
@click.option("--meta-sgd/--no-meta-sgd", "meta_sgd", default=True, show_default=True,
              help="Learn a step size per parameter (Meta-SGD).")
@click.option("--context-keep", "context_keep", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True, help="GradNCP gamma: fraction of each tile's pixels per inner step (1 = off).")
@click.option("--bootstrap-steps", "bootstrap_steps", type=click.IntRange(0), default=5, show_default=True,
              help="GradNCP L: full-context steps making the bootstrap target (0 = off).")
@click.option("--bootstrap-lambda", "bootstrap_lambda", type=click.FloatRange(0), default=100.0, show_default=True,
              help="GradNCP lambda: weight of the bootstrap distance.")
@click.option("--rescale/--no-rescale", "rescale", default=True, show_default=True,
              help="With --context-keep < 1: the encoder re-scales full-tile gradients (GradNCP Eq. 4).")
@click.option("--sparse-rounds", "sparse_rounds", type=click.IntRange(0), default=0, show_default=True,
              help="Meta-SparseINR: rounds of global magnitude pruning + meta-retraining (0 = dense).")
@click.option("--prune-rate", "prune_rate", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="Fraction of the surviving weights removed per round.")
@click.option("--retrain-steps", "retrain_steps", type=click.IntRange(1),
              help="Meta-steps after each pruning round [default: steps / 5].")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint file (.npz), written atomically.")
@click.option("--checkpoint-every", "checkpoint_every", type=click.IntRange(1), default=100, show_default=True,
              help="Meta-steps between checkpoints (and one at the end).")
@click.option("--resume", is_flag=True, help="Continue from --checkpoint when it exists.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation and task sampling seed.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages.")
@_fail_cleanly
def train(data: tuple[str, ...], output: str, size: str | None, resume: bool, force: bool, as_json: bool,
          quiet: bool, **knobs: Any) -> None:
    """Meta-learn a SIREN prior from DATA (images, videos, folders or globs) and write it to OUTPUT.

    Tasks are random crops of --size (rescaled by 0.5-1, flipped, rotated) from the images and
    from every 4th frame of the videos.  Default: GradNCP as in its paper (K=16 inner steps on 25%
    of each tile, bootstrap L=5, lambda=100) with Meta-SGD step sizes.  Plain Learnit/MAML:
    --inner-steps 4 --context-keep 1 --bootstrap-steps 0 --no-meta-sgd.  Meta-SparseINR:
    --sparse-rounds 3.  Several GPUs: torchrun --nproc_per_node=N -m nfcodec.cli.prior_train_cmd ...

    --arch nerv --size FRAMESxWIDTHxHEIGHT: a NeRV prior for clips of that size, learned on
    clips of the videos in DATA (random crops rescaled by --min-scale..--max-scale, temporal
    strides 1..--video-stride, flips and time reversal); the network is --preset's for that clip.
    """
    from ..errors import ConfigError
    from ..meta.data import parse_tile_size
    from ..meta.train import MetaConfig, train_prior

    if resume and not knobs.get("checkpoint"):
        raise ConfigError("--resume needs --checkpoint PATH")
    rank = int(os.environ.get("RANK", "0") or 0)
    quiet = quiet or rank != 0
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if knobs.get("arch") == "nerv":
        from ..meta.nerv import parse_clip_size

        if size is None:
            raise ConfigError("--arch nerv needs --size FRAMESxWIDTHxHEIGHT (the clips' size, e.g. 8x176x144)")
        wrong = sorted(k for k in ("width", "depth") if k in knobs)
        if wrong:
            raise ConfigError(f"--{wrong[0]} sets a SIREN; a NeRV prior's network is --preset's (or --c1, --c2, "
                              "--min-channels, --mlp-hidden)")
        frames, h, w = parse_clip_size(size)
        config = MetaConfig(size=(h, w), frames=frames, **knobs).validate()
    else:
        wrong = sorted(k for k in ("preset", "c1", "c2", "min_channels", "mlp_hidden") if k in knobs)
        if wrong:
            raise ConfigError(f"--{wrong[0].replace('_', '-')} is a NeRV setting: add --arch nerv")
        config = MetaConfig(size=parse_tile_size(size or "64x64"), **knobs).validate()
    command = _command_line()
    log = None if quiet else (lambda msg: click.echo(msg, err=True))
    progress, close = _progress_bar(quiet or as_json, "meta-training", "K-step PSNR")
    try:
        prior = train_prior(list(data), output, config, progress, resume=resume, command=command, overwrite=force,
                            log=log)
    finally:
        close()
    if rank != 0:
        return
    meta = prior.meta
    if as_json:
        click.echo(json.dumps({"output": output, "algorithm": meta["algorithm"], "steps": meta["steps"],
                               "final_meta_loss": meta["final_meta_loss"], "final_meta_psnr": meta["final_meta_psnr"],
                               "sparsity": meta["sparsity"], "seconds": meta["seconds"], "device": meta["device"],
                               "world_size": meta["world_size"], "bytes": os.path.getsize(output)}))
    elif not quiet:
        th, tw = config.size
        if config.arch == "nerv":
            r = prior.record
            what = (f"NeRV c1={r.c1} mlp_hidden={r.mlp_hidden} blocks {','.join(f'{f}x{c}' for f, c in r.blocks)} "
                    f"for {config.frames}-frame {tw}x{th} clips")
        else:
            what = f"SIREN {config.width}x{config.depth} for {tw}x{th} tiles"
        click.echo(f"{output}: {meta['algorithm']} prior, {what}, "
                   f"{meta['steps']} meta-steps, K={config.inner_steps} PSNR {meta['final_meta_psnr'] or float('nan'):.2f} dB, "
                   f"{os.path.getsize(output)} bytes ({meta['seconds']:.0f} s on {meta['device']}"
                   f"{', x' + str(meta['world_size']) if meta['world_size'] > 1 else ''})")


if __name__ == "__main__":      # torchrun --nproc_per_node=N -m nfcodec.cli.prior_train_cmd DATA... -o PRIOR
    train(prog_name="nfc prior train")
