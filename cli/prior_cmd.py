"""``nfc prior``: inspect meta-learned priors (``.nfp`` files; docs/priors.md).

``prior_group`` is a click group; :mod:`nfcodec.cli.main` registers it on ``nfc``.  Errors are
printed as one line with a non-zero exit, as by every ``nfc`` command (``_fail_cleanly``).
"""
from __future__ import annotations

import json
from typing import Any

import click

from .common import _fail_cleanly

__all__ = ["prior_group", "format_info"]


@click.group("prior", context_settings={"help_option_names": ["-h", "--help"]})
def prior_group() -> None:
    """Inspect meta-learned priors (.nfp files) that streams are coded against."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def format_info(where: str, d: dict[str, Any], record: Any = None) -> list[str]:
    """The text lines of ``nfc prior info`` for ``describe()`` output ``d``.

    Args:
        where: What was asked for (a path or a prior name), shown first.
        d: :func:`nfcodec.priors.describe` of the prior.
        record: The ARCH record, for its pretty field values (default: the raw values of ``d``).
    """
    size = d["size"]
    frames = f"{size['frames']} frames of " if d["media"] == "video" else ""
    lines = [f"{where}: nfc prior {d['name']!r}, {d['bytes']} bytes",
             f"  {'sha256':<15}{d['hash']}",
             f"  {'media':<15}{d['media']}",
             f"  {'size':<15}{frames}{size['width']}x{size['height']} (the signal or tile it is for)",
             f"  architecture ({d['arch']}):"]
    fields = record.describe() if record is not None else [(k, str(v)) for k, v in d["record"].items()]
    lines += [f"    {name:<13}{value}" for name, value in fields]
    lines.append(f"  {'parameters':<15}{d['parameters']} in {len(d['tensors'])} tensors, "
                 f"{_pct(d['nonzero_fraction'])} nonzero")
    if d["lrs"] is not None:
        s = d["lrs"]
        lines.append(f"  {'step sizes':<15}Meta-SGD, " + (
            f"min {s['min']:.4g}, median {s['median']:.4g}, mean {s['mean']:.4g}, max {s['max']:.4g}" if s else "none"))
    if d["masks"] is not None:
        m = d["masks"]
        lines.append(f"  {'masks':<15}keep {m['kept']} of {d['parameters']} values (density {m['density']:.4f})")
    lines.append("  tensors:")
    for t in d["tensors"]:
        shape = "x".join(map(str, t["shape"]))
        nz = t["nonzero"] / t["count"] if t["count"] else 0.0
        lines.append(f"    tensor {t['index']:>3}: shape {shape:<12} {t['count']:>8} values  step {t['step']:>3} "
                     f"({t['step_value']:.4g})  {_pct(nz):>6} nonzero  max |v| {t['max_abs']:.4g}")
    if d["meta"]:
        lines.append("  meta:")
        for key, value in d["meta"].items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            lines.append(f"    {key:<13}{text}")
    return lines


@prior_group.command("info")
@click.argument("prior", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_fail_cleanly
def info(prior: str, as_json: bool) -> None:
    """Show a prior's architecture, size, tensors, step sizes, masks, training settings and hash.

    PRIOR is a path to an .nfp file, or the name of a prior in $NFC_PRIOR_PATH or packaged.
    """
    from ..priors import describe, load_prior

    p = load_prior(prior)
    d = describe(p)
    if as_json:
        click.echo(json.dumps(d, default=str))
        return
    for line in format_info(prior, d, p.record):
        click.echo(line)
