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
from pathlib import Path
from typing import Callable

import numpy as np

from .bitstream.headers import MAX_FRAME_PIXELS
from .errors import InputError, NFCodecError, OutputExistsError

__all__ = ["load_image", "save_image", "atomic_write", "read_input_bytes", "check_output_path"]

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
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InputError(f"{p}: not a readable image ({e.__class__.__name__})") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read image ({e})") from None


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
    return atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **opts), overwrite=overwrite, inputs=inputs)
