"""``nfc eval``: rate-distortion evaluation against classical codecs (registered on the ``nfc`` group).

A thin layer over :mod:`nfcodec.evaluate`; the full reference is docs/eval.md.  Imported at the
end of :mod:`nfcodec.cli.main`, so the command exists before the group runs; it imports the
library (numpy, torch, PyAV, matplotlib) only when it runs.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .main import _fail_cleanly, cli

__all__ = ["eval_command", "parse_setting_options"]

_METRICS = ("psnr", "psnr_pooled", "msssim")
_OUTPUTS = ("results.csv", "results.json", "rd.png", "bdrate.md", "bdrate.csv")


def parse_setting_options(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``-s CODEC:S1/S2/...`` options -> ``{codec: [settings]}`` (in order, repeated options add up).

    Settings are separated by ``/``; classical codecs (integer settings) also take commas,
    ``-s jpeg:10,30,50``; for nfc a comma joins the ``key=value`` parts of one setting.

    Raises:
        click.BadParameter: an option without ``CODEC:`` or with an empty setting.
    """
    out: dict[str, list[str]] = {}
    for value in values:
        codec, colon, rest = value.partition(":")
        codec = codec.strip().lower()
        if not colon or not codec or not rest.strip():
            raise click.BadParameter(f"{value!r}: expected CODEC:SETTING[/SETTING...], e.g. jpeg:10/50/90 or "
                                     "nfc:preset=fast/bpp=0.3", param_hint="'-s' / '--setting'")
        parts = rest.split("/")
        if not codec.startswith("nfc"):
            parts = [p for chunk in parts for p in chunk.split(",")]
        if any(not p.strip() for p in parts):
            raise click.BadParameter(f"{value!r}: empty setting between separators", param_hint="'-s' / '--setting'")
        out.setdefault(codec, []).extend(p.strip() for p in parts)
    return out


def _progress(quiet: bool) -> tuple[Callable[[int, int, str], None] | None, Callable[[], Any]]:
    """A tqdm bar over the jobs (stderr, terminals only), created at the first call."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bars: list[Any] = []

    def update(done: int, total: int, label: str) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="eval", unit="job", file=sys.stderr, leave=False, dynamic_ncols=True,
                             disable=None))
        bars[0].update(done - bars[0].n)
        bars[0].set_postfix_str(label, refresh=True)

    return update, lambda: bars and bars[0].close()


def _list_codecs() -> None:
    from ..baselines import BASELINES
    from ..evaluate import _registered_representations

    click.echo(f"{'codec':<11}{'kind':<7}{'default settings':<22}setting")
    for name, codec in BASELINES.items():
        why = codec.unavailable()
        status = f"  [unavailable: {why}]" if why else ""
        click.echo(f"{name:<11}{codec.kind:<7}{'/'.join(codec.settings):<22}{codec.meaning}{status}")
    reps = ", ".join(f"nfc-{r}" for r in _registered_representations())
    click.echo(f"{'nfc':<11}{'both':<7}{'(none: give some)':<22}key=value[,key=value]: preset=, bpp=, psnr=, "
               "or knobs (width=, steps=, ...)")
    click.echo(f"{'':<11}{'':<7}{'':<22}also {reps}")
    click.echo(f"{'nfc-grid':<11}{'image':<7}{'(none: give some)':<22}the latent grid (arch grid): preset=, bpp=, "
               "or knobs (grid_lambda=, grid_iters=, ...)")
    click.echo(f"{'nfc-grid-video':<11}{'video':<7}{'(none: give some)':<22}the video latent grid (arch grid-video): "
               "the same settings")


def _write_bd_csv(bd: list[dict[str, Any]], path: Path) -> None:
    from ..media import atomic_write

    cols = list(dict.fromkeys(k for e in bd for k in e))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", restval="")
    writer.writeheader()
    for e in bd:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in e.items()})
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()), overwrite=True)


@cli.command("eval")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@click.option("-c", "--codec", "codecs", multiple=True, metavar="NAME",
              help="Codec to run (repeat): jpeg, webp, avif, x264, x265, av1, nfc, nfc-<representation>, nfc-grid, "
                   "nfc-grid-video.")
@click.option("-s", "--setting", "settings", multiple=True, metavar="CODEC:S[/S...]",
              help="Settings of a codec (repeat), e.g. jpeg:10/50/90, nfc:preset=fast/bpp=0.3, "
                   "nfc-dense:width=32,steps=500. Replaces the codec's default sweep; adds the codec.")
@click.option("-o", "--out", "out", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Output folder: results.csv, results.json, rd.png, bdrate.md, bdrate.csv.")
@click.option("--frames", metavar="A:B[:STEP]",
              help="Videos: frame range A:B[:STEP] read from every clip, for every codec.")
@click.option("--resize", metavar="WxH", help="Videos: scale every clip to WxH before any codec sees it.")
@click.option("--anchor", "anchors", multiple=True, metavar="CODEC",
              help="BD anchor (repeat; default: every classical codec run, jpeg/x264 first).")
@click.option("--metric", type=click.Choice(_METRICS), default="psnr", show_default=True,
              help="Quality for BD tables and the plot's first panel (msssim in dB).")
@click.option("--no-resume", is_flag=True, help="Measure everything again (results.csv is started afresh).")
@click.option("--list-codecs", is_flag=True, help="List the codecs, their default settings and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
@_fail_cleanly
def eval_command(inputs: tuple[str, ...], codecs: tuple[str, ...], settings: tuple[str, ...], out: str | None,
                 frames: str | None, resize: str | None, anchors: tuple[str, ...], metric: str, no_resume: bool,
                 list_codecs: bool, quiet: bool) -> None:
    """Compare codecs on INPUTS (images, or videos): bpp, PSNR, MS-SSIM, timings, BD-rate, RD plot.

    Every codec encodes every input at each of its settings; the bytes are decoded back and
    measured against the source.  Each result is appended to DIR/results.csv at once, so an
    interrupted run resumes where it stopped when the same command is run again.
    """
    if list_codecs:
        _list_codecs()
        return
    if not inputs:
        raise click.UsageError("no INPUTS: give image or video files to evaluate")
    if out is None:
        raise click.UsageError("missing option '-o' / '--out' (the folder for the results)")
    table = parse_setting_options(settings)
    names = list(dict.fromkeys([c.strip().lower() for c in codecs] + list(table)))
    if not names:
        raise click.UsageError("no codecs: use --codec NAME and/or --setting CODEC:SETTINGS")

    from .. import evaluate
    from ..errors import ConfigError

    plan = evaluate.plan_eval(inputs, names, settings=table, frames=frames, resize=resize)  # validate first
    run_names = [c.name for c in plan.codecs]
    anchors = tuple(a.strip().lower() for a in anchors)
    for a in anchors:
        if a not in run_names:
            raise ConfigError(f"--anchor {a}: not among the codecs evaluated ({', '.join(run_names)})")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"--out {out} exists and is not a folder")
    csv_path = folder / "results.csv"      # created with the first result: a failed start writes nothing
    progress, close = _progress(quiet)
    try:
        rows = evaluate.run_eval(plan.files, names, settings=table, out_csv=csv_path,
                                 out_json=folder / "results.json", resume=not no_resume, progress=progress,
                                 frames=frames, resize=resize)
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; the results so far are in {csv_path} "
                                   "(run the same command again to resume)") from None
    finally:
        close()

    bd = evaluate.bd_table(rows, list(anchors) or None, metric=metric)
    _write_bd_csv(bd, folder / "bdrate.csv")
    header = (f"# nfc eval: {len(plan.files)} {plan.kind}{'s' if len(plan.files) != 1 else ''}, "
              f"{', '.join(names)}\n\n")
    label = {"psnr": "BD-PSNR", "psnr_pooled": "BD-PSNR (pooled)", "msssim": "BD-MS-SSIM (dB)"}[metric]
    md = (header + f"## BD-rate and {label}, mean over files\n\n" + evaluate.format_bd(bd)
          + "\n## Rate-distortion points\n\n" + evaluate.format_table(rows, metric if metric != "msssim" else "psnr"))
    from ..media import atomic_write

    atomic_write(folder / "bdrate.md", lambda tmp: tmp.write_text(md), overwrite=True)
    try:
        evaluate.plot_rd(rows, folder / "rd.png", metric=metric if metric != "msssim" else "psnr")
        plotted = True
    except ConfigError as e:
        plotted = False
        if not quiet:
            click.echo(f"nfc: note: no plot: {e}", err=True)
    if not quiet:
        click.echo(evaluate.format_bd(bd), nl=False)
        written = [n for n in _OUTPUTS if n != "rd.png" or plotted]
        click.echo(f"{len(rows)} results; wrote {', '.join(str(folder / n) for n in written)}")
