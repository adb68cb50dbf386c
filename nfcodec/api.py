"""The library API: ``encode``, ``decode``, ``probe``.

Sources may be paths or in-memory objects (an (H, W, 3) uint8 array to encode, ``bytes`` to
decode or probe).  Passing ``output=`` writes the result atomically: nothing is written on
failure, an existing file is never replaced unless ``overwrite=True``, and the input is never
overwritten.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Union

import numpy as np

from .bitstream import StreamInfo
from .bitstream import probe as _probe
from .config import CodecConfig, get_preset
from .media import atomic_write, check_output_path, load_image, read_input_bytes, save_image
from .results import DecodeResult, EncodeResult

__all__ = ["encode", "decode", "probe", "EncodeResult", "DecodeResult"]

PathLike = Union[str, os.PathLike]

def _load_source(source: PathLike | bytes) -> tuple[bytes, tuple[PathLike, ...]]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), ()
    return read_input_bytes(source), (source,)


def encode(source: PathLike | np.ndarray, output: PathLike | None = None, *, preset: str = "default",
           config: CodecConfig | None = None, overwrite: bool = False, metadata: bool = True,
           progress: Callable[[int, int, float], None] | None = None, **knobs: Any) -> EncodeResult:
    """Compress an image into a ``.nfc`` stream.

    Args:
        source: image path (anything Pillow reads) or an (H, W, 3) uint8 RGB array.
        output: where to write the ``.nfc`` file (optional; ``result.data`` always holds it).
        preset: ``fast``, ``default`` or ``high`` (ignored when ``config`` is given).
        config: a full :class:`~nfcodec.config.CodecConfig`.
        overwrite: allow replacing an existing ``output``.
        metadata: store the settings in an ancillary ``meTA`` chunk (~100 bytes).
        progress: callback ``(step, total, psnr_db)`` during fitting.
        **knobs: flat overrides, e.g. ``width=96, depth=5, steps=500, bits=10, device="cuda"``.

    Returns:
        :class:`EncodeResult` with ``data``, ``psnr``, ``bpp`` and the decoder's reconstruction.

    Raises:
        InputError, ConfigError, OutputExistsError (before any fitting starts).
    """
    from .encoder import encode_image

    inputs: tuple[PathLike, ...] = ()
    if isinstance(source, np.ndarray):
        image = source
    else:
        image, inputs = load_image(source), (source,)
    if output is not None:
        check_output_path(output, overwrite=overwrite, inputs=inputs)
    cfg = (config if config is not None else get_preset(preset)).replace(**knobs)
    result = encode_image(image, cfg, preset=None if config is not None else preset,
                          metadata=metadata, progress=progress)
    if output is not None:
        atomic_write(output, lambda tmp: tmp.write_bytes(result.data), overwrite=overwrite, inputs=inputs)
    return result


def decode(source: PathLike | bytes, output: PathLike | None = None, *, overwrite: bool = False) -> DecodeResult:
    """Decode a ``.nfc`` stream (path or bytes) to an (H, W, 3) uint8 image.

    Args:
        source: ``.nfc`` path or its bytes.
        output: optional image path to write (PNG recommended; format from the extension).
        overwrite: allow replacing an existing ``output``.

    Raises:
        BitstreamError subclasses for malformed data; InputError; OutputExistsError.
    """
    from .decoder import decode_bytes

    data, inputs = _load_source(source)
    if output is not None:
        check_output_path(output, overwrite=overwrite, inputs=inputs)
    decoded = decode_bytes(data)
    result = DecodeResult(decoded.image, decoded.info)
    if output is not None:
        save_image(output, result.image, overwrite=overwrite, inputs=inputs)
    return result


def probe(source: PathLike | bytes, *, allow_truncated: bool = False) -> StreamInfo:
    """Describe a ``.nfc`` stream (header, architecture, chunk table, bpp) without decoding it."""
    data, _ = _load_source(source)
    return _probe(data, allow_truncated=allow_truncated)
