"""nfcodec: a neural-field image and video codec.

The compressed file *is* a small network fitted to one image (SIREN) or one clip (NeRV, or a
SIREN over (t, row, col)): its quantized weights are entropy-coded into a versioned, chunked
container (see ``docs/format.md`` and ``docs/video.md``).

Public API (imported lazily so that ``import nfcodec.bitstream`` never loads torch)::

    import nfcodec
    result = nfcodec.encode("in.png", "out.nfc", preset="fast")
    image = nfcodec.decode("out.nfc").image
    info = nfcodec.probe("out.nfc")
    nfcodec.encode("clip.mp4", "clip.nfc", preset="fast", frames="0:30")
    for k, frame in nfcodec.decode_frames("clip.nfc", frames="10:12"): ...
    rows = nfcodec.evaluate.run_eval(["a.png"], ["jpeg", "nfc"], settings={"nfc": ["preset=fast"]})
"""
from __future__ import annotations

import os as _os

# In a source checkout bitstream/ and cli/ sit next to nfcodec/ (installed, they are
# nfcodec/bitstream and nfcodec/cli).  Extending __path__ lets `nfcodec.bitstream` resolve
# to ./bitstream when the checkout itself is on sys.path (running from the repository root).
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "bitstream")) and _os.path.isfile(
    _os.path.join(_root, "bitstream", "container.py")
):
    __path__.append(_root)  # type: ignore[name-defined]

__version__ = "0.1.0"

_LAZY = {
    "encode": "nfcodec.api",
    "decode": "nfcodec.api",
    "decode_frames": "nfcodec.api",
    "probe": "nfcodec.api",
    "decode_progressive": "nfcodec.api",
    "truncate": "nfcodec.api",
    "ProgressiveLevel": "nfcodec.api",
    "read_video": "nfcodec.video_io",
    "EncodeResult": "nfcodec.results",
    "DecodeResult": "nfcodec.results",
    "CodecConfig": "nfcodec.config",
    "PRESETS": "nfcodec.config",
    "NFCodecError": "nfcodec.errors",
    "ConfigError": "nfcodec.errors",
    "InputError": "nfcodec.errors",
    "OutputExistsError": "nfcodec.errors",
    "UnsupportedFeatureError": "nfcodec.errors",
    "LimitError": "nfcodec.errors",
    "BitstreamError": "nfcodec.errors",
    "FormatError": "nfcodec.errors",
    "DecodeLimits": "nfcodec.decoder",
}

__all__ = sorted(_LAZY) + ["__version__"]


# Submodules reachable as attributes without an explicit import (``nfcodec.evaluate.run_eval``).
_LAZY_MODULES = ("evaluate", "bdrate", "baselines", "metrics")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"nfcodec.{name}")
    raise AttributeError(f"module 'nfcodec' has no attribute {name!r}")
