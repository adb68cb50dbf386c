"""Reading input images and writing outputs safely.

Inputs go through Pillow (PNG, JPEG, PPM/PGM, BMP, TIFF, WebP, ...).  The codec works on
8-bit RGB: grayscale and palette images are expanded to RGB, RGBA is accepted only when its
alpha channel is fully opaque, and 16-bit or float images are refused with a clear error.

Every file nfcodec writes goes through :func:`atomic_write`: data lands in a temporary file
next to the target and is renamed into place only when complete, so a failed encode or decode
never leaves a partial output, and an existing file (or the input itself) is never overwritten
unless asked for.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from .bitstream.headers import MAX_FRAME_PIXELS
from .errors import InputError, NFCodecError, OutputExistsError

__all__ = ["load_image", "save_image", "atomic_write", "read_input_bytes", "check_output_path", "Video",
           "VIDEO_SUFFIXES", "IMAGE_SUFFIXES", "is_image_path", "is_video_source", "parse_frame_range", "resolve_frame_range", "parse_size"]

#: Extensions read as videos through PyAV (anything else is tried as an image first).
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".y4m", ".mov", ".avi", ".m4v", ".ts", ".mpg", ".mpeg", ".nut", ".ivf"}

# Pillow modes we expand to RGB without losing information.
_TO_RGB = {"1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV"}


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a regular file: {path}")


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole input file, with a one-line error when it is missing or not a file."""
    p = Path(path)
    _check_input_file(p)
    return p.read_bytes()


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load an image as an (H, W, 3) uint8 RGB array.

    Raises:
        InputError: missing file, not an image, 16-bit/float samples, RGBA with transparency,
            or more than ``MAX_FRAME_PIXELS`` pixels.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    _check_input_file(p)
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > MAX_FRAME_PIXELS:
                raise InputError(f"{p}: {w}x{h} image exceeds the {MAX_FRAME_PIXELS}-pixel limit")
            mode = im.mode
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"))
                if (rgba[..., 3] != 255).any():
                    raise InputError(f"{p}: image has transparency (alpha channel); flatten it to RGB first")
                return np.ascontiguousarray(rgba[..., :3])
            if mode not in _TO_RGB:
                raise InputError(f"{p}: {mode} images are not supported (8-bit RGB or grayscale only)")
            return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InputError(f"{p}: not a readable image ({e.__class__.__name__})") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read image ({e})") from None
    except MemoryError:
        raise InputError(f"{p}: the image does not fit in memory") from None
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types on malformed files
        # (SyntaxError, ValueError, EOFError, struct.error, IndexError, ...): all mean "unreadable".
        raise InputError(f"{p}: not a readable image ({e.__class__.__name__}: {e})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False,
                      inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Validate an output path before any work is done.

    Raises:
        OutputExistsError: the path exists and ``overwrite`` is false, or it is one of ``inputs``.
        NFCodecError: its directory does not exist.
    """
    out = Path(path)
    for src in inputs:
        if _same_file(out, Path(src)):
            raise OutputExistsError(f"refusing to overwrite the input file {src}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output file exists: {out} (use --force to overwrite)")
    if out.exists() and out.is_dir():
        raise OutputExistsError(f"output path is a directory: {out}")
    if not out.parent.exists():
        raise NFCodecError(f"output directory does not exist: {out.parent}")
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False,
                 inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file keeps ``path``'s suffix so format-by-extension writers work.  On any
    error the temporary file is removed and ``path`` is left untouched.
    """
    out = check_output_path(path, overwrite=overwrite, inputs=inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out


_WRITABLE = {".png": "PNG", ".ppm": "PPM", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
             ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False,
               inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write an (H, W, 3) uint8 image; the format follows the extension (PNG recommended).

    Lossless formats (PNG, PPM, BMP, TIFF) store the decoded pixels exactly; WebP is written
    lossless; JPEG adds its own loss (quality 95) and is offered only for convenience.
    """
    fmt = _WRITABLE.get(Path(path).suffix.lower())
    if fmt is None:
        raise NFCodecError(f"cannot write image format {Path(path).suffix or '(none)'!r}; "
                           f"use one of {', '.join(sorted(_WRITABLE))}")
    from PIL import Image

    opts = {"WEBP": {"lossless": True}, "JPEG": {"quality": 95}}.get(fmt, {})
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")

    def write(tmp: Path) -> None:
        try:
            im.save(tmp, format=fmt, **opts)
        except (ValueError, OSError) as e:   # e.g. WebP above 16383 px, JPEG above 65500 px
            raise NFCodecError(f"cannot write {im.width}x{im.height} as {fmt} to {path}: {e}") from None

    return atomic_write(path, write, overwrite=overwrite, inputs=inputs)


# --------------------------------------------------------------------------- videos (no PyAV here)


@dataclass(frozen=True)
class Video:
    """A clip held as 8-bit RGB: ``frames`` is (T, H, W, 3) uint8; ``fps`` 0 means unknown."""

    frames: np.ndarray
    fps: Fraction = Fraction(0)
    source: str = "array"

    def __post_init__(self) -> None:
        f = self.frames
        if not (isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.ndim == 4 and f.shape[3] == 3):
            raise InputError("a video must be a (T, H, W, 3) uint8 RGB array")
        if f.shape[0] == 0:
            raise InputError(f"{self.source} has no frames")
        if min(f.shape[1:3]) < 1:
            raise InputError(f"{self.source}: frames have no pixels: shape {f.shape}")
        if f.shape[1] * f.shape[2] > MAX_FRAME_PIXELS:
            raise InputError(f"{self.source}: {f.shape[2]}x{f.shape[1]} frames exceed the {MAX_FRAME_PIXELS}-pixel limit")
        if self.fps < 0:
            raise InputError(f"{self.source}: negative frame rate {self.fps}")


#: Extensions always read as still images (Pillow).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pbm", ".pnm", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def is_image_path(path: str | os.PathLike) -> bool:
    """A path with a still-image extension (``IMAGE_SUFFIXES``)."""
    return Path(str(path)).suffix.lower() in IMAGE_SUFFIXES


def is_video_source(path: str | os.PathLike) -> bool:
    """A directory, a glob pattern or a path with a video extension (``VIDEO_SUFFIXES``)."""
    text = str(path)
    return Path(text).is_dir() or any(ch in text for ch in "*?[") or Path(text).suffix.lower() in VIDEO_SUFFIXES


def parse_frame_range(spec: str | slice | range | None) -> slice | None:
    """Parse ``"A:B[:STEP]"`` (Python slice syntax, A and B optional, no negatives) into a slice.

    Raises:
        ConfigError: malformed text, a negative number or a step below 1.
    """
    from .errors import ConfigError

    if spec is None or isinstance(spec, slice):
        return spec
    if isinstance(spec, range):
        return slice(spec.start, spec.stop, spec.step)
    parts = str(spec).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        nums = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ConfigError(f"--frames {spec!r}: expected A:B or A:B:STEP (e.g. 0:60 or 0:60:2)") from None
    if any(n is not None and n < 0 for n in nums) or (len(nums) == 3 and nums[2] is not None and nums[2] < 1):
        raise ConfigError(f"--frames {spec}: frame numbers must be >= 0 and STEP >= 1")
    return slice(*nums)


def _slice_text(sl: slice) -> str:
    text = f"{'' if sl.start is None else sl.start}:{'' if sl.stop is None else sl.stop}"
    return text + (f":{sl.step}" if sl.step not in (None, 1) else "")


def resolve_frame_range(sl: slice | None, total: int) -> range:
    """The frame indices a slice selects from ``total`` frames.

    Raises:
        ConfigError: the range starts at or ends past the end of the video, or is empty.
    """
    from .errors import ConfigError

    if sl is None:
        return range(total)
    start, stop, step = sl.start or 0, total if sl.stop is None else sl.stop, sl.step or 1
    if start >= total or stop > total or start >= stop:
        raise ConfigError(f"--frames {_slice_text(sl)} outside the video's {total} frames")
    return range(start, stop, step)


def parse_size(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """Parse ``"WxH"`` (or a (W, H) tuple) into ``(width, height)``.

    Raises:
        ConfigError: malformed text or a side outside [1, 65535].
    """
    from .errors import ConfigError

    if spec is None:
        return None
    try:
        w, h = (int(v) for v in spec.lower().split("x")) if isinstance(spec, str) else (int(spec[0]), int(spec[1]))
    except ValueError:
        raise ConfigError(f"--resize {spec!r}: expected WIDTHxHEIGHT, e.g. 320x180") from None
    if not (1 <= w <= 65535 and 1 <= h <= 65535):
        raise ConfigError(f"--resize {spec}: width and height must be in [1, 65535]")
    return w, h
