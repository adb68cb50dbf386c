"""Rate-distortion evaluation: run codecs over images or clips, measure, tabulate, plot.

:func:`run_eval` encodes every input with every codec at every setting, decodes the bytes
back and measures the decoded pixels against the source itself (codecs' own numbers are never
used).  Each measurement is a :class:`Row`; rows are appended to a CSV as they are produced, so
a long run can be stopped and resumed.  :func:`bd_table` computes Bjontegaard deltas between
codecs (:mod:`nfcodec.bdrate`), :func:`plot_rd` draws the rate-distortion curves and
:func:`format_table` / :func:`format_bd` make markdown tables.  ``nfc eval`` (docs/eval.md)
is the command-line front end.

Codecs are named by strings:

* the classical baselines of :mod:`nfcodec.baselines` (``jpeg``, ``webp``, ``avif`` for images;
  ``x264``, ``x265``, ``av1`` for videos), whose settings are integers (quality or CRF) and
  which have a default sweep;
* our codec, ``nfc`` or ``nfc-<representation>`` (``nfc-dense``, ``nfc-pruned``, ...), whose
  settings are comma-separated ``key=value`` keyword arguments of :func:`nfcodec.encode`
  (``preset=fast``, ``bpp=0.3``, ``psnr=30``, ``width=32,steps=500``; a tuple value is written
  with colons, ``factors=5:2:2``); it has no default sweep.

Measures (all on 8-bit RGB, decoded vs source, peak 255):

* ``psnr``: PSNR for an image; for a clip the mean of the per-frame PSNRs;
* ``psnr_pooled``: PSNR of the mean squared error over all samples (equal to ``psnr`` for images);
* ``msssim``: MS-SSIM (mean over frames for clips) by :func:`nfcodec.metrics.ms_ssim`: the 5
  standard scales when the shorter side exceeds 160 pixels, otherwise the scales that fit
  (recorded in ``msssim_levels``; 0 and NaN for sides of 10 pixels or less);
* ``bpp``: 8 x file bytes / (frames x width x height), every byte of the file counted.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .errors import ConfigError, InputError, NFCodecError

if TYPE_CHECKING:
    from .baselines import Baseline

__all__ = ["Row", "CodecSpec", "EvalPlan", "COLUMNS", "METRICS", "parse_codec", "parse_nfc_setting", "plan_eval",
           "run_eval", "read_rows", "write_csv", "write_json", "bd_table", "mean_curves", "plot_rd", "format_table",
           "format_bd", "default_anchor"]

PathLike = Union[str, os.PathLike]

#: Quality measures that BD tables and plots can use (``msssim`` in dB: -10 log10(1 - MS-SSIM)).
METRICS = ("psnr", "psnr_pooled", "msssim")
_METRIC_LABEL = {"psnr": "PSNR (dB)", "psnr_pooled": "PSNR of the mean MSE (dB)", "msssim": "MS-SSIM (dB)"}

# Keyword arguments of nfcodec.encode that an nfc setting may use besides the config knobs.
_NFC_EXTRA = ("preset", "bpp", "psnr", "metadata")
# ... and the ones it may not (the evaluation applies them to every codec, or they make no sense here).
_NFC_REFUSED = {"frames": "an evaluation option (frames=), not a codec setting",
                "resize": "an evaluation option (resize=), not a codec setting",
                "fps": "taken from the clip", "output": "not used: files stay in memory",
                "overwrite": "not used: files stay in memory", "config": "not expressible as text; use knobs",
                "progress": "not a setting",
                "representation": "chosen by the codec name (nfc-dense, nfc-pruned, ...)"}


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One measured point: one file, one codec, one setting.

    ``psnr`` is the mean of per-frame PSNRs for a clip and ``psnr_pooled`` the PSNR of the
    mean MSE (both equal for an image); ``msssim`` is averaged over frames and computed with
    ``msssim_levels`` scales; ``encode_s`` / ``decode_s`` are wall-clock seconds in this process.
    """

    file: str
    codec: str
    setting: str
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    psnr_pooled: float
    msssim: float
    msssim_levels: int
    encode_s: float
    decode_s: float

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a job: ``(file, codec, setting)``."""
        return self.file, self.codec, self.setting

    @property
    def msssim_db(self) -> float:
        """MS-SSIM on a dB scale, ``-10 log10(1 - msssim)``."""
        from .metrics import msssim_db

        return msssim_db(self.msssim)

    def metric(self, name: str) -> float:
        """The quality measure ``name`` (one of :data:`METRICS`; ``msssim`` in dB)."""
        _check_metric(name)
        return self.msssim_db if name == "msssim" else float(getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Row":
        """Build a row from CSV/JSON values (strings or numbers; ``None`` reads as NaN)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            v = d[f.name]
            if f.type in ("int", int):
                out[f.name] = int(v)
            elif f.type in ("float", float):
                out[f.name] = math.nan if v is None or v == "" else float(v)
            else:
                out[f.name] = str(v)
        return cls(**out)


#: CSV / JSON columns, in order.
COLUMNS = tuple(f.name for f in fields(Row))


def _check_metric(name: str) -> None:
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r} (choose from {', '.join(METRICS)})")


# --------------------------------------------------------------------------- codec specs


@dataclass(frozen=True)
class CodecSpec:
    """A codec named in an evaluation: a classical baseline or ``nfc[-representation]``."""

    name: str
    kind: str                           # "image", "video" or "any" (nfc)
    baseline: Optional[Baseline] = None  # the classical codec, or None for nfc
    representation: str | None = None   # nfc-<representation>; None for plain nfc
    arch: str | None = None             # nfc-<architecture> (nfc-grid); None: the preset's

    @property
    def is_nfc(self) -> bool:
        return self.baseline is None

    @property
    def default_settings(self) -> tuple[str, ...]:
        """The default sweep (empty for nfc, whose settings must be given)."""
        return tuple(self.baseline.settings) if self.baseline is not None else ()

    def normalize_setting(self, setting: str | int | float) -> str:
        """Validate a setting and return its canonical text (as stored in the results).

        Raises:
            ConfigError: an invalid setting for this codec.
        """
        if self.baseline is not None:
            return str(self.baseline.parse_setting(setting))
        parse_nfc_setting(str(setting), codec=self.name)
        parts = (part.partition("=") for part in str(setting).split(",") if part.strip())
        return ",".join(f"{k.strip().replace('-', '_')}={v.strip()}" for k, _, v in parts)

    def check_setting(self, setting: str, video: bool) -> None:
        """Validate an nfc setting's values against the encoder configuration (no encoding)."""
        if self.baseline is not None:
            return
        from .config import get_preset

        kwargs = parse_nfc_setting(setting, codec=self.name)
        knobs = {k: v for k, v in kwargs.items() if k not in _NFC_EXTRA}
        arch = self.arch or knobs.get("arch") or ("nerv" if video else "siren")
        if self.arch and knobs.get("arch", self.arch) != self.arch:
            raise ConfigError(f"{self.name} {setting}: arch= is chosen by the codec name ({self.arch})")
        knobs.pop("arch", None)
        try:
            get_preset(str(kwargs.get("preset", "default")), video=arch == "nerv", arch=arch).replace(
                arch=arch,
                **knobs, **({"representation": self.representation} if self.representation else {}))
        except ConfigError as e:
            raise ConfigError(f"{self.name} {setting}: {e}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{self.name} {setting}: a value has the wrong type") from None
        for key in ("bpp", "psnr"):
            value = kwargs.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{self.name} {setting}: {key} must be a number > 0")
        if not isinstance(kwargs.get("metadata", True), bool):
            raise ConfigError(f"{self.name} {setting}: metadata must be true or false")


def _registered_representations() -> list[str]:
    from .variants import REPRESENTATIONS

    return REPRESENTATIONS.names()


def parse_codec(name: str) -> CodecSpec:
    """Resolve a codec name: a baseline (``jpeg``, ``x264``, ...), ``nfc`` or ``nfc-<representation>``.

    Raises:
        ConfigError: an unknown name, an unknown representation, or a baseline that the
            installed Pillow / PyAV cannot run.
    """
    from .baselines import BASELINES, get_baseline

    text = str(name).strip().lower()
    if text == "nfc":
        return CodecSpec("nfc", "any")
    if text.startswith("nfc-"):
        rep = text[4:]
        known = _registered_representations()
        from .archs import ARCHS

        if rep in ARCHS.names() and rep not in known:      # nfc-grid: an architecture with its own presets
            media = ARCHS.by_name(rep).media
            kind = "any" if len(media) > 1 else "image" if media == (0,) else "video"
            return CodecSpec(text, kind, arch=rep)
        if rep not in known:
            raise ConfigError(f"unknown codec {name!r}: {rep!r} is not a representation ({', '.join(known)}) "
                              f"or an architecture ({', '.join(ARCHS.names())}) (use nfc-{known[0]}, ...)")
        return CodecSpec(text, "any", representation=rep)
    if text in BASELINES:
        codec = get_baseline(text)
        return CodecSpec(text, codec.kind, baseline=codec)
    raise ConfigError(f"unknown codec {name!r} (choose from {', '.join(BASELINES)}, nfc, nfc-<representation>, nfc-grid, nfc-grid-video)")


def _nfc_value(key: str, text: str, codec: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if ":" in text:
        try:
            return tuple(int(p) for p in text.split(":"))
        except ValueError:
            raise ConfigError(f"{codec}: {key}={text!r}: a colon-separated value must be integers, "
                              "e.g. factors=5:2:2") from None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_nfc_setting(setting: str, *, codec: str = "nfc") -> dict[str, Any]:
    """Parse an nfc setting, ``"key=value[,key=value...]"``, into keyword arguments of ``nfcodec.encode``.

    Values become ``int``, ``float``, ``bool`` (true/false) or a tuple of ints (``5:2:2``),
    else stay text.  Keys are the encoder knobs (:data:`nfcodec.config.KNOBS`) plus ``preset``,
    ``bpp``, ``psnr`` (rate control targets) and ``metadata``.

    Raises:
        ConfigError: empty setting, a part without ``=``, a repeated or unknown key, or a key
            that is an evaluation option (``frames``, ``resize``) or the codec name's job
            (``representation``).
    """
    from .config import KNOBS

    text = str(setting).strip()
    if not text:
        raise ConfigError(f"{codec}: empty setting (use e.g. preset=fast, bpp=0.3 or width=32,steps=500)")
    out: dict[str, Any] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not eq or not key or not value:
            raise ConfigError(f"{codec}: setting part {part!r} is not key=value "
                              "(e.g. preset=fast, bpp=0.3, width=32,steps=500)")
        if key in _NFC_REFUSED:
            raise ConfigError(f"{codec}: {key}= is {_NFC_REFUSED[key]}")
        if key not in KNOBS and key not in _NFC_EXTRA:
            known = ", ".join(sorted(set(KNOBS) | set(_NFC_EXTRA)))
            raise ConfigError(f"{codec}: unknown setting {key!r} (known: {known})")
        if key in out:
            raise ConfigError(f"{codec}: {key}= given twice in {text!r}")
        out[key] = _nfc_value(key, value, codec)
    return out


def default_anchor(kind: str) -> str:
    """The default BD anchor: ``jpeg`` for images, ``x264`` for videos."""
    return "x264" if kind == "video" else "jpeg"


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class EvalPlan:
    """A validated evaluation (see :func:`plan_eval`): what :func:`run_eval` will run."""

    files: tuple[str, ...]
    kind: str                                     # "image" | "video"
    codecs: tuple[CodecSpec, ...]
    settings: dict[str, tuple[str, ...]]
    frames: Optional[slice]                       # parsed --frames (videos)
    resize: Optional[tuple[int, int]]             # parsed --resize (videos)

    @property
    def jobs(self) -> int:
        """Number of (file, codec, setting) jobs."""
        return len(self.files) * sum(len(self.settings[c.name]) for c in self.codecs)


def _input_kind(path: str) -> str:
    from .media import is_video_source

    return "video" if is_video_source(path) else "image"


def _check_exists(path: str) -> None:
    import glob

    if any(ch in path for ch in "*?["):
        if not glob.glob(path):
            raise InputError(f"no files match {path}")
    elif not Path(path).exists():
        raise InputError(f"input file not found: {path}")


def plan_eval(inputs: Sequence[PathLike] | PathLike, codecs: Sequence[str] | str, *,
              settings: Mapping[str, Sequence[str | int | float]] | None = None,
              frames: str | slice | range | None = None, resize: str | tuple[int, int] | None = None) -> EvalPlan:
    """Validate an evaluation without running it (what :func:`run_eval` does first).

    Checks that inputs exist and are all images or all videos, that every codec is known, runs
    here and suits the inputs, that every codec has settings (given or default) and that every
    setting parses.  Returns the plan (``files``, ``kind``, ``codecs``, ``settings``, ``jobs``).

    Raises:
        InputError, ConfigError: with a one-line message, before any encoding.
    """
    from .media import parse_frame_range, parse_size

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(codecs, str):
        codecs = [codecs]
    files = tuple(dict.fromkeys(os.path.normpath(str(p)) for p in inputs))
    if not files:
        raise ConfigError("no inputs to evaluate")
    if not codecs:
        raise ConfigError("no codecs to evaluate")
    for f in files:
        _check_exists(f)
    kinds = {f: _input_kind(f) for f in files}
    if len(set(kinds.values())) > 1:
        image = next(f for f, k in kinds.items() if k == "image")
        video = next(f for f, k in kinds.items() if k == "video")
        raise ConfigError(f"cannot mix images and videos in one evaluation ({image} is an image, {video} a video)")
    kind = next(iter(kinds.values()))
    sel, size = parse_frame_range(frames), parse_size(resize)
    if kind == "image" and (sel is not None or size is not None):
        raise ConfigError("frames and resize apply to videos only")
    specs: list[CodecSpec] = []
    for name in codecs:
        spec = parse_codec(name)
        if spec.kind not in ("any", kind):
            raise ConfigError(f"{spec.name} is {'a video' if spec.kind == 'video' else 'an image'} codec "
                              f"but the inputs are {kind}s")
        if spec.name not in {s.name for s in specs}:
            specs.append(spec)
    given = {parse_codec(k).name: v for k, v in (settings or {}).items()}
    unused = [k for k in given if k not in {s.name for s in specs}]
    if unused:
        raise ConfigError(f"settings given for {', '.join(unused)}, which is not among the codecs evaluated")
    table: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        raw = given.get(spec.name)
        if isinstance(raw, (str, int, float)):
            raw = [raw]
        if raw is None or len(raw) == 0:
            if not spec.default_settings:
                raise ConfigError(f"{spec.name} has no default settings: give some, e.g. preset=fast, bpp=0.3 "
                                  "or width=32,steps=500")
            raw = spec.default_settings
        normalized = tuple(dict.fromkeys(spec.normalize_setting(s) for s in raw))
        for s in normalized:
            spec.check_setting(s, video=kind == "video")
        table[spec.name] = normalized
    return EvalPlan(files, kind, tuple(specs), table, sel, size)


# --------------------------------------------------------------------------- running


def _load_media(path: str, kind: str, frames: Any, size: tuple[int, int] | None) -> Any:
    """An (H, W, 3) image or a :class:`~nfcodec.media.Video`."""
    if kind == "video":
        from .video_io import read_video

        return read_video(path, frames=frames, resize=size)
    from .media import load_image

    return load_image(path)


def _encode_decode(spec: CodecSpec, media: Any, setting: str) -> tuple[np.ndarray, int, float, float]:
    """Run one job: (decoded pixels, file bytes, encode seconds, decode seconds)."""
    video = not isinstance(media, np.ndarray)
    if spec.baseline is not None:
        t0 = time.perf_counter()
        data = spec.baseline.encode(media, setting)
        t1 = time.perf_counter()
        decoded = spec.baseline.decode(data)
        return decoded, len(data), t1 - t0, time.perf_counter() - t1
    import nfcodec

    kwargs = parse_nfc_setting(setting, codec=spec.name)
    if spec.representation:
        kwargs["representation"] = spec.representation
    if spec.arch:
        kwargs["arch"] = spec.arch
    source = media.frames if video else media
    if video and media.fps:
        kwargs["fps"] = media.fps
    t0 = time.perf_counter()
    result = nfcodec.encode(source, **kwargs)
    t1 = time.perf_counter()
    data = bytes(result.data)
    t2 = time.perf_counter()
    if video:
        decoded = np.stack([frame for _, frame in nfcodec.decode_frames(data)])
    else:
        decoded = nfcodec.decode(data).image
    return decoded, len(data), t1 - t0, time.perf_counter() - t2


def _measure(file: str, spec: CodecSpec, setting: str, media: Any) -> Row:
    from .metrics import bpp, ms_ssim, mse, psnr

    source = media if isinstance(media, np.ndarray) else media.frames
    decoded, nbytes, enc_s, dec_s = _encode_decode(spec, media, setting)
    if decoded.shape != source.shape or decoded.dtype != np.uint8:
        raise NFCodecError(f"{spec.name} {setting}: decoded {decoded.dtype} {decoded.shape} does not match the "
                           f"source {source.shape} ({file})")
    clip = source.ndim == 4
    t, h, w = (source.shape[0] if clip else 1), source.shape[-3], source.shape[-2]
    if clip:
        per_frame = [psnr(decoded[i], source[i]) for i in range(t)]
        mean_psnr = float(np.mean(per_frame))
        m = mse(decoded, source)
        pooled = math.inf if m == 0 else 10.0 * math.log10(255.0 ** 2 / m)
    else:
        mean_psnr = pooled = psnr(decoded, source)
    value, levels = ms_ssim(decoded, source)
    return Row(file, spec.name, setting, t, w, h, nbytes, bpp(nbytes, t * h * w), mean_psnr, pooled, value, levels,
               enc_s, dec_s)


def run_eval(inputs: Sequence[PathLike] | PathLike, codecs: Sequence[str] | str, *,
             settings: Mapping[str, Sequence[str | int | float]] | None = None,
             out_csv: PathLike | None = None, out_json: PathLike | None = None, resume: bool = True,
             progress: Callable[[int, int, str], None] | None = None,
             frames: str | slice | range | None = None, resize: str | tuple[int, int] | None = None) -> list[Row]:
    """Encode every input with every codec at every setting and measure the decoded result.

    Args:
        inputs: image paths, or video paths (a video file, a folder or glob of PNG frames);
            not both.
        codecs: codec names: ``jpeg``, ``webp``, ``avif`` (images), ``x264``, ``x265``, ``av1``
            (videos), ``nfc`` or ``nfc-<representation>`` (both).
        settings: codec name -> settings to run (default: each baseline's default sweep; nfc
            has none and must be given one), e.g. ``{"jpeg": [20, 50, 80],
            "nfc": ["width=16,steps=200", "preset=fast"]}``.
        out_csv: append each row to this CSV as soon as it is measured (the file, and its
            folder, are created, or started afresh, when the first new row is ready: an
            evaluation that fails early leaves nothing behind).
        out_json: rewrite this JSON file (all rows of ``out_csv``, or of this run) after each row.
        resume: reuse the rows already in ``out_csv`` for the same (file, codec, setting)
            instead of measuring them again; ``False`` measures everything and replaces
            ``out_csv``'s rows with the new ones.
        progress: callback ``(done_jobs, total_jobs, label)`` called before each job and once at
            the end (``done == total``, empty label).
        frames: videos only: ``"A:B[:STEP]"`` frames read from every input (for every codec).
        resize: videos only: ``"WxH"`` to scale every clip to before any codec sees it.

    Returns:
        The rows of this evaluation (reused ones included), in job order: for each file, for
        each codec, for each setting.

    Raises:
        InputError, ConfigError: bad inputs or settings (before any work); ConfigError when
        ``out_csv`` holds rows for a file measured at another size or frame count; codec errors.
    """
    plan = plan_eval(inputs, codecs, settings=settings, frames=frames, resize=resize)
    csv_path = None if out_csv is None else Path(out_csv)
    all_rows = _read_csv_for_resume(csv_path) if csv_path is not None and resume else []
    fresh = csv_path is not None and not all_rows     # (re)start the file at the first new row
    done_keys = {r.key: r for r in all_rows}
    rows: list[Row] = []
    done, total = 0, plan.jobs
    for file in plan.files:
        media = _load_media(file, plan.kind, plan.frames, plan.resize)
        _check_reused(file, media, done_keys, out_csv)
        for spec in plan.codecs:
            for setting in plan.settings[spec.name]:
                old = done_keys.get((file, spec.name, setting))
                if old is not None:
                    rows.append(old)
                    done += 1
                    continue
                if progress is not None:
                    progress(done, total, f"{spec.name} {setting} {os.path.basename(file)}")
                try:
                    row = _measure(file, spec, setting, media)
                except NFCodecError as e:      # name the job (the results so far stay in out_csv)
                    raise type(e)(f"{file}: {spec.name} {setting}: {e}") from e
                rows.append(row)
                all_rows.append(row)
                done_keys[row.key] = row
                if csv_path is not None:
                    if fresh:
                        csv_path.parent.mkdir(parents=True, exist_ok=True)
                        csv_path.write_text(_csv_header())
                        fresh = False
                    _append_csv(csv_path, row)
                if out_json is not None:
                    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
                    write_json(all_rows if csv_path is not None else rows, out_json)
                done += 1
        del media
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        write_json(all_rows if csv_path is not None else rows, out_json)
    if progress is not None:
        progress(total, total, "")
    return rows


def _check_reused(file: str, media: Any, rows: Mapping[tuple[str, str, str], Row], out_csv: PathLike | None) -> None:
    shape = media.shape if isinstance(media, np.ndarray) else media.frames.shape
    t, h, w = (1, *shape[:2]) if len(shape) == 3 else shape[:3]
    for (f, _, _), r in rows.items():
        if f == file and (r.frames, r.width, r.height) != (t, w, h):
            raise ConfigError(f"{out_csv} holds results for {file} measured on {r.frames} frame(s) of "
                              f"{r.width}x{r.height}, but this run reads {t} of {w}x{h}; use another output "
                              "or do not resume")


# --------------------------------------------------------------------------- files


def _csv_header() -> str:
    return ",".join(COLUMNS) + "\n"


def _read_csv_for_resume(path: Path) -> list[Row]:
    """The rows a results CSV already holds ([] when there is none); a cut last line is removed."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    text = path.read_text()
    if not text.startswith(_csv_header().rstrip("\n")):
        raise ConfigError(f"{path} is not a results file of nfc eval (expected columns {', '.join(COLUMNS)})")
    if not text.endswith("\n"):             # a run killed in the middle of a line: drop that line
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    return _rows_from_csv(text, path)


def _rows_from_csv(text: str, path: PathLike) -> list[Row]:
    rows = []
    for i, d in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            rows.append(Row.from_dict(d))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: line {i} is not a valid result row") from None
    return rows


def _format_value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _append_csv(path: Path, row: Row) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format_value(getattr(row, c)) for c in COLUMNS])
    with open(path, "a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()


def write_csv(rows: Iterable[Row], path: PathLike) -> None:
    """Write rows as CSV (header + one line per row), atomically, replacing ``path``."""
    from .media import atomic_write

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_format_value(getattr(row, c)) for c in COLUMNS])
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()), overwrite=True)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _json_safe(v.item())
    return v


def write_json(rows: Iterable[Row | Mapping[str, Any]], path: PathLike) -> None:
    """Write rows (or BD-table dicts) as a JSON list of objects, atomically, replacing ``path``.

    Non-finite numbers (NaN, and the infinite PSNR of a lossless point) are written as ``null``.
    """
    from .media import atomic_write

    items = [r.as_dict() if isinstance(r, Row) else dict(r) for r in rows]
    text = json.dumps([{k: _json_safe(v) for k, v in d.items()} for d in items], indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)


def read_rows(path: PathLike) -> list[Row]:
    """Read the rows of a results file written by :func:`run_eval` (``.csv``) or :func:`write_json` (``.json``).

    Raises:
        InputError: missing file.  ConfigError: not a results file.
    """
    from .media import read_input_bytes

    text = read_input_bytes(path).decode("utf-8", errors="replace")
    if str(path).lower().endswith(".json"):
        try:
            return [Row.from_dict(d) for d in json.loads(text)]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"{path} is not a results file of nfc eval") from None
    if not text.startswith(_csv_header().rstrip("\n")):
        raise ConfigError(f"{path} is not a results file of nfc eval (expected columns {', '.join(COLUMNS)})")
    return _rows_from_csv(text[: text.rfind("\n") + 1], path)


# --------------------------------------------------------------------------- BD tables


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _points(rows: Sequence[Row], file: str, codec: str, metric: str) -> tuple[list[float], list[float], int]:
    """Rates and qualities of one curve; non-finite qualities (lossless PSNR, no MS-SSIM) dropped."""
    rates, quality, dropped = [], [], 0
    for r in rows:
        if r.file == file and r.codec == codec:
            q = r.metric(metric)
            if math.isfinite(q):
                rates.append(r.bpp)
                quality.append(q)
            else:
                dropped += 1
    return rates, quality, dropped


def bd_table(rows: Sequence[Row], anchors: Sequence[str] | str | None = None, *, metric: str = "psnr",
             methods: Sequence[str] = ("akima", "cubic")) -> list[dict[str, Any]]:
    """Bjontegaard deltas of every codec against every anchor, per file and averaged.

    For each anchor and each other codec there is one entry per file (BD on that file's two
    curves, rate = bpp, quality = ``metric``) and one with ``file="(mean)"``: the arithmetic
    mean of the per-file values over the files where they are defined (as in the JVET common
    test conditions), with ``files`` counting them.  Points with a non-finite quality (the
    infinite PSNR of a lossless point) are left out.

    Args:
        rows: results of :func:`run_eval` or :func:`read_rows`.
        anchors: codec names to compare against (default: every classical baseline present,
            :func:`default_anchor` first; if there is none, the first codec).
        metric: ``psnr`` (default), ``psnr_pooled`` or ``msssim`` (in dB, -10 log10(1 - MS-SSIM)).
        methods: interpolation methods; the first is the primary one (its notes are reported).

    Returns:
        Dicts with ``anchor, codec, file, metric, bd_rate_<method>`` (percent, negative = fewer
        bits), ``bd_db_<method>`` (dB of ``metric``, positive = better), ``overlap`` (share of the
        quality range both cover), ``points_anchor, points_test`` (or ``files`` for means) and
        ``reason`` (why a value is NaN, or a caution).

    Raises:
        ConfigError: an anchor with no rows, an unknown metric or method.
    """
    from .baselines import BASELINES
    from .bdrate import METHODS, bd_compare

    _check_metric(metric)
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown BD method {m!r} (choose from {', '.join(METHODS)})")
    codecs, files = _ordered(r.codec for r in rows), _ordered(r.file for r in rows)
    if isinstance(anchors, str):
        anchors = [anchors]
    if anchors is None or len(anchors) == 0:
        baselines = [c for c in codecs if c in BASELINES]
        video = any(r.frames > 1 for r in rows) or any(c in ("x264", "x265", "av1") for c in codecs)
        first = default_anchor("video" if video else "image")
        anchors = sorted(baselines, key=lambda c: c != first) or codecs[:1]
    for a in anchors:
        if a not in codecs:
            raise ConfigError(f"anchor {a!r} has no results (codecs in the results: {', '.join(codecs) or 'none'})")
    keys = [f"bd_{k}_{m}" for m in methods for k in ("rate", "db")]
    out: list[dict[str, Any]] = []
    for anchor in anchors:
        for codec in codecs:
            if codec == anchor:
                continue
            per_file = []
            for f in files:
                ra, qa, da = _points(rows, f, anchor, metric)
                rt, qt, dt = _points(rows, f, codec, metric)
                entry = {"anchor": anchor, "codec": codec, "file": f, "metric": metric,
                         **bd_compare(ra, qa, rt, qt, methods=tuple(methods)),
                         "points_anchor": len(ra), "points_test": len(rt)}
                if da or dt:
                    entry["reason"] = "; ".join(filter(None, [f"left out {da + dt} point(s) with infinite or "
                                                              f"undefined {metric}", entry["reason"]]))
                per_file.append(entry)
            out.extend(per_file)
            out.append(_mean_entry(anchor, codec, metric, keys, per_file))
    return out


def _mean_entry(anchor: str, codec: str, metric: str, keys: list[str],
                per_file: list[dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"anchor": anchor, "codec": codec, "file": "(mean)", "metric": metric}
    notes, empty = [], False
    for k in keys:
        vals = [e[k] for e in per_file if math.isfinite(e[k])]
        entry[k] = float(np.mean(vals)) if vals else math.nan
        if 0 < len(vals) < len(per_file):
            notes.append(f"{k} over {len(vals)} of {len(per_file)} files")
        empty = empty or not vals
    overlaps = [e["overlap"] for e in per_file if math.isfinite(e["overlap"])]
    entry["overlap"] = float(np.mean(overlaps)) if overlaps else math.nan
    entry["files"] = sum(1 for e in per_file if math.isfinite(e[keys[0]]))
    if empty:          # some value is n/a everywhere: say why (the files' own reasons, each kind once)
        kinds: dict[str, str] = {}            # reason with its numbers blanked -> first wording
        for part in (p for e in per_file if e["reason"] for p in e["reason"].split("; ")):
            kinds.setdefault(re.sub(r"[\d.]+", "#", part), part)
        notes.extend(kinds.values())
    entry["reason"] = "; ".join(notes)
    return entry


# --------------------------------------------------------------------------- curves, plots, tables


def mean_curves(rows: Sequence[Row], metric: str = "psnr") -> dict[str, list[dict[str, Any]]]:
    """Per codec, the RD points averaged over files: ``{codec: [{setting, bpp, quality, msssim_db, files,
    encode_s, decode_s}, ...]}`` sorted by bpp.

    A setting contributes a point only when every file of ``rows`` has a result for it (so each
    point averages the same files) and its ``metric`` is finite on all of them; bpp, quality
    (dB) and seconds are arithmetic means over the files.
    """
    _check_metric(metric)
    files = _ordered(r.file for r in rows)
    out: dict[str, list[dict[str, Any]]] = {}
    for codec in _ordered(r.codec for r in rows):
        points = []
        for setting in _ordered(r.setting for r in rows if r.codec == codec):
            group = [r for r in rows if r.codec == codec and r.setting == setting]
            qualities = [r.metric(metric) for r in group]
            if {r.file for r in group} != set(files) or not all(math.isfinite(q) for q in qualities):
                continue
            ms = [r.msssim_db for r in group]
            points.append({"setting": setting, "files": len(group),
                           "bpp": float(np.mean([r.bpp for r in group])), "quality": float(np.mean(qualities)),
                           "msssim_db": float(np.mean(ms)) if all(math.isfinite(v) for v in ms) else math.nan,
                           "encode_s": float(np.mean([r.encode_s for r in group])),
                           "decode_s": float(np.mean([r.decode_s for r in group]))})
        out[codec] = sorted(points, key=lambda p: p["bpp"])
    return out


def plot_rd(rows: Sequence[Row], path: PathLike, metric: str = "psnr") -> None:
    """Draw rate-distortion curves to a PNG: bpp (log scale) vs ``metric``, and vs MS-SSIM (dB).

    One line per codec through its :func:`mean_curves` points (averaged over files at each
    setting); the MS-SSIM panel is left out when no row has an MS-SSIM.  Written atomically
    (an existing ``path`` is replaced).  Uses matplotlib's Agg backend.

    Raises:
        ConfigError: unknown metric, or no point to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .media import atomic_write

    if metric == "msssim":
        raise ConfigError("plot_rd draws MS-SSIM in its own panel; choose psnr or psnr_pooled for the first")
    curves = mean_curves(rows, metric)
    if not any(curves.values()):
        raise ConfigError("no complete rate-distortion point to plot")
    panels = [(metric, "quality")]
    if any(math.isfinite(p["msssim_db"]) for pts in curves.values() for p in pts):
        panels.append(("msssim", "msssim_db"))
    from matplotlib.ticker import FuncFormatter

    files = len(_ordered(r.file for r in rows))
    levels = sorted({r.msssim_levels for r in rows if r.msssim_levels})
    labels = dict(_METRIC_LABEL)
    if levels and levels != [5]:
        labels["msssim"] = f"MS-SSIM (dB; {'/'.join(map(str, levels))} of 5 scales)"
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, (name, key) in zip(axes[0], panels):
        for codec, pts in curves.items():
            pts = [p for p in pts if math.isfinite(p[key])]
            if pts:
                ax.plot([p["bpp"] for p in pts], [p[key] for p in pts], marker="o", ms=4, label=codec)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:e}"[0] in "235" else ""))
        ax.tick_params(axis="x", which="minor", labelsize=8)
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(labels[name])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{labels[name].split(' (')[0]}, mean of {files} file{'s' if files != 1 else ''}")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), overwrite=True)
    finally:
        plt.close(fig)


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.{digits}f}")
    return str(v)


def format_table(rows: Sequence[Row], metric: str = "psnr") -> str:
    """A markdown table of the RD points averaged over files (see :func:`mean_curves`)."""
    curves = mean_curves(rows, metric)
    files = len(_ordered(r.file for r in rows))
    head = (f"| codec | setting | bpp | {_METRIC_LABEL[metric]} | MS-SSIM (dB) | encode (s) | decode (s) |\n"
            "|---|---|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| {codec} | {p['setting']} | {p['bpp']:.4f} | {_fmt(p['quality'], 2)} | "
                   f"{_fmt(p['msssim_db'], 2)} | {p['encode_s']:.3f} | {p['decode_s']:.3f} |\n"
                   for codec, pts in curves.items() for p in pts)
    return f"Mean over {files} file{'s' if files != 1 else ''}.\n\n" + head + body


def format_bd(bd: Sequence[Mapping[str, Any]], *, per_file: bool = False) -> str:
    """A markdown table of :func:`bd_table` entries (the ``(mean)`` ones unless ``per_file``)."""
    entries = [e for e in bd if per_file or e["file"] == "(mean)"]
    if not entries:
        return "No BD values (a BD table needs at least two codecs).\n"
    methods = [k[len("bd_rate_"):] for k in entries[0] if k.startswith("bd_rate_")]
    label = {"psnr": "PSNR", "psnr_pooled": "PSNR-pooled", "msssim": "MS-SSIM"}[entries[0]["metric"]]
    cols = ["codec", "anchor"] + (["file"] if per_file else []) + \
        [f"BD-rate {m} (%)" for m in methods] + [f"BD-{label} {m} (dB)" for m in methods] + \
        ["points" if per_file else "files", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if i < 2 + per_file else "---:"
                                                          for i in range(len(cols) - 1)) + "|---|"]
    for e in entries:
        vals = [e["codec"], e["anchor"]] + ([e["file"]] if per_file else []) + \
            [_fmt(e[f"bd_rate_{m}"], 2) for m in methods] + [_fmt(e[f"bd_db_{m}"], 3) for m in methods] + \
            [str(e["files"]) if "files" in e else f"{e['points_anchor']}/{e['points_test']}", e["reason"] or ""]
        lines.append("| " + " | ".join(v.replace("|", "/") for v in vals) + " |")
    return "\n".join(lines) + "\n"
