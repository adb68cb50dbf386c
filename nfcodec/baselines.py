"""Classical codecs to compare against: JPEG, WebP, AVIF (Pillow) and x264, x265, AV1 (PyAV).

Each baseline is an object with ``name``, ``kind`` (``"image"`` or ``"video"``), a default list
of ``settings`` (strings, as they appear in result tables), the meaning of a setting, and

* ``encode(media, setting) -> bytes``: the complete compressed file, every byte counted;
* ``decode(data) -> uint8 array``: (H, W, 3) for images, (T, H, W, 3) for videos, RGB.

=========  ======  ==========================================================  ==============
name       kind    encoder and fixed options                                    setting
=========  ======  ==========================================================  ==============
``jpeg``   image   Pillow (libjpeg-turbo), 4:2:0 chroma subsampling, optimized  quality 0-100
                   Huffman tables (``optimize=True``), baseline (not progressive)
``webp``   image   Pillow (libwebp), lossy, ``method=6`` (slowest, best)        quality 0-100
``avif``   image   Pillow (libavif; AOM encoder here), 4:2:0, default speed     quality 0-100
``x264``   video   PyAV libx264, ``preset=medium``, yuv420p, in MP4             crf 0-51
``x265``   video   PyAV libx265, ``preset=medium``, yuv420p, in MP4             crf 0-51
``av1``    video   PyAV libsvtav1 ``preset=8`` (else libaom-av1 ``cpu-used=6``)  crf 1-63
                   yuv420p, in MP4
=========  ======  ==========================================================  ==============

Video baselines convert RGB to yuv420p the way PyAV does by default
(``VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")``: BT.601,
limited range; the streams are tagged so), and decode back to RGB with the same matrix
(:func:`nfcodec.video_io.read_video`'s conversion), so their PSNR includes the colour
conversion and chroma subsampling loss, like a real delivery chain.  Their byte counts are the
whole MP4 file: container overhead (about 0.5-1 kB for short clips) and the encoder's own
stream headers (x264 writes a ~650-byte settings SEI) are included; x265's ~2.3 kB settings
SEI is switched off (``info=0``) as it carries nothing a decoder uses.  yuv420p needs even
frame sizes: odd ones are refused (resize first).

Availability depends on the Pillow and PyAV builds: :func:`get_baseline` raises a one-line
``ConfigError`` for a codec the installed build cannot run, :func:`available_baselines` lists
the usable ones.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction
from typing import Any, ClassVar, Union

import numpy as np

from .errors import ConfigError, InputError, NFCodecError

__all__ = ["Baseline", "BASELINES", "get_baseline", "available_baselines", "JPEG", "WebP", "AVIF", "X264",
           "X265", "AV1"]

Media = Union[np.ndarray, Any]   # an (H, W, 3) image, a (T, H, W, 3) clip or a nfcodec.media.Video


class Baseline:
    """A classical codec with one integer setting (quality or CRF).

    Subclasses set the class attributes and implement :meth:`encode` and :meth:`decode`.
    """

    name: ClassVar[str]
    kind: ClassVar[str]                  # "image" | "video"
    knob: ClassVar[str]                  # what a setting is: "quality" or "crf"
    low: ClassVar[int]
    high: ClassVar[int]
    higher_is_better: ClassVar[bool]     # quality: higher = more bytes; crf: lower = more bytes
    settings: ClassVar[tuple[str, ...]]  # default sweep, as strings
    description: ClassVar[str]

    @property
    def meaning(self) -> str:
        """One line on what a setting means."""
        direction = "higher" if self.higher_is_better else "lower"
        return f"{self.knob} {self.low}-{self.high} ({direction} = better quality, more bytes)"

    def unavailable(self) -> str | None:
        """Why this codec cannot run with the installed libraries (None when it can)."""
        return None

    def check(self) -> None:
        """Raise ``ConfigError`` when this codec cannot run here."""
        reason = self.unavailable()
        if reason:
            raise ConfigError(reason)

    def parse_setting(self, setting: str | int) -> int:
        """The integer a setting stands for, range-checked.

        Raises:
            ConfigError: not an integer, or outside ``[low, high]``.
        """
        text = str(setting).strip()
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{self.name}: setting {text!r} is not an integer {self.knob} "
                              f"({self.low}-{self.high})") from None
        if not self.low <= value <= self.high:
            raise ConfigError(f"{self.name}: {self.knob} {value} outside [{self.low}, {self.high}]")
        return value

    def encode(self, media: Media, setting: str | int) -> bytes:
        """Compress ``media`` at ``setting``; returns the complete file."""
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a file made by :meth:`encode` to uint8 RGB."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.kind} codec {self.name}: {self.meaning}>"


# --------------------------------------------------------------------------- images (Pillow)


def _as_image(media: Media) -> np.ndarray:
    image = getattr(media, "frames", media)
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"an image codec needs an (H, W, 3) uint8 RGB array, got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    return np.ascontiguousarray(image)


class _PillowCodec(Baseline):
    kind = "image"
    knob = "quality"
    low, high = 0, 100
    higher_is_better = True
    settings = ("10", "30", "50", "70", "90")
    pillow_format: ClassVar[str]
    feature: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    def unavailable(self) -> str | None:
        from PIL import features

        if not features.check(self.feature):
            return f"this Pillow build has no {self.pillow_format} support (codec {self.name!r} unavailable)"
        return None

    def encode(self, media: Media, setting: str | int) -> bytes:
        from PIL import Image

        quality = self.parse_setting(setting)
        self.check()
        buf = io.BytesIO()
        Image.fromarray(_as_image(media), "RGB").save(buf, format=self.pillow_format, quality=quality, **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)


class JPEG(_PillowCodec):
    name = "jpeg"
    pillow_format = "JPEG"
    feature = "jpg"
    options = {"subsampling": "4:2:0", "optimize": True}
    description = "JPEG (Pillow/libjpeg-turbo), 4:2:0, optimized Huffman tables"


class WebP(_PillowCodec):
    name = "webp"
    pillow_format = "WEBP"
    feature = "webp"
    options = {"method": 6}
    description = "WebP lossy (Pillow/libwebp), method 6"


class AVIF(_PillowCodec):
    name = "avif"
    pillow_format = "AVIF"
    feature = "avif"
    description = "AVIF (Pillow/libavif), 4:2:0, default speed"


# --------------------------------------------------------------------------- videos (PyAV)


def _as_clip(media: Media) -> tuple[np.ndarray, Fraction]:
    frames = getattr(media, "frames", media)
    fps = Fraction(getattr(media, "fps", 0) or 0)
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
            and frames.shape[3] == 3 and frames.shape[0] > 0):
        raise InputError(f"a video codec needs a (T, H, W, 3) uint8 RGB clip, got "
                         f"{getattr(frames, 'shape', type(frames).__name__)}")
    return frames, fps


class _PyAVCodec(Baseline):
    kind = "video"
    knob = "crf"
    higher_is_better = False
    encoders: ClassVar[tuple[str, ...]]   # FFmpeg encoder names, first available wins
    standard: ClassVar[str]               # "H.264", "HEVC", "AV1" (for messages)

    def encoder(self) -> str | None:
        """The FFmpeg encoder this build would use (None when it has none of ``encoders``)."""
        from .video_io import _av

        av = _av()
        for name in self.encoders:
            try:
                av.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
        return None

    def unavailable(self) -> str | None:
        if self.encoder() is None:
            return f"this PyAV build has no {self.standard} encoder ({' or '.join(self.encoders)})"
        return None

    def stream_options(self, encoder: str, crf: int) -> dict[str, str]:
        raise NotImplementedError

    def encode(self, media: Media, setting: str | int) -> bytes:
        from av.video.reformatter import ColorRange, Colorspace

        from .video_io import DEFAULT_FPS, _av

        crf = self.parse_setting(setting)
        frames, fps = _as_clip(media)
        t, h, w, _ = frames.shape
        if h % 2 or w % 2:
            raise ConfigError(f"{self.name} (yuv420p) needs an even frame width and height, got {w}x{h}; "
                              "resize the clip (e.g. --resize)")
        encoder = self.encoder()
        if encoder is None:
            self.check()
        av = _av()
        buf = io.BytesIO()
        # bitexact: no creation time in the MP4 header, so the same clip gives the same bytes
        with av.open(buf, "w", format="mp4", container_options={"fflags": "+bitexact"}) as out:
            stream = out.add_stream(encoder, rate=fps or DEFAULT_FPS)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            cc = stream.codec_context
            cc.colorspace, cc.color_range = 5, 1     # tag the stream: BT.601 (BT470BG) matrix, limited range
            stream.options = self.stream_options(encoder, crf)
            for i in range(t):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24").reformat(
                    format="yuv420p", dst_colorspace=Colorspace.ITU601, dst_color_range=ColorRange.MPEG)
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        from .video_io import _av, _frame_rgb

        av = _av()
        try:
            with av.open(io.BytesIO(data), "r") as container:
                stream = container.streams.video[0]
                frames = [_frame_rgb(f, None) for f in container.decode(stream)]
        except (av.FFmpegError, IndexError) as e:
            raise NFCodecError(f"{self.name}: cannot decode the stream ({e.__class__.__name__})") from None
        if not frames:
            raise NFCodecError(f"{self.name}: the stream decoded to no frames")
        return np.stack(frames)


class X264(_PyAVCodec):
    name = "x264"
    standard = "H.264"
    encoders = ("libx264",)
    low, high = 0, 51
    settings = ("18", "23", "28", "33", "38")
    description = "H.264 (libx264), preset medium, yuv420p, MP4"

    def stream_options(self, encoder: str, crf: int) -> dict[str, str]:
        return {"crf": str(crf), "preset": "medium"}


class X265(_PyAVCodec):
    name = "x265"
    standard = "HEVC"
    encoders = ("libx265",)
    low, high = 0, 51
    settings = ("18", "23", "28", "33", "38")
    description = "HEVC (libx265), preset medium, yuv420p, MP4"

    def stream_options(self, encoder: str, crf: int) -> dict[str, str]:
        return {"crf": str(crf), "preset": "medium", "x265-params": "log-level=error:info=0"}


class AV1(_PyAVCodec):
    name = "av1"
    standard = "AV1"
    encoders = ("libsvtav1", "libaom-av1")
    low, high = 1, 63
    settings = ("27", "36", "45", "54", "63")
    description = "AV1 (libsvtav1 preset 8, else libaom-av1 cpu-used 6), yuv420p, MP4"

    def stream_options(self, encoder: str, crf: int) -> dict[str, str]:
        if encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")     # SVT-AV1 prints a banner on every open otherwise
            return {"crf": str(crf), "preset": "8"}
        return {"crf": str(crf), "b": "0", "cpu-used": "6", "row-mt": "1"}


#: Every baseline by name (availability is checked by :func:`get_baseline`).
BASELINES: dict[str, Baseline] = {c.name: c for c in (JPEG(), WebP(), AVIF(), X264(), X265(), AV1())}


def get_baseline(name: str) -> Baseline:
    """The baseline called ``name``, checked to run with the installed Pillow / PyAV.

    Raises:
        ConfigError: unknown name, or a codec this build lacks (e.g. "this PyAV build has no
            AV1 encoder (libsvtav1 or libaom-av1)").
    """
    try:
        codec = BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown codec {name!r} (classical codecs: {', '.join(BASELINES)})") from None
    codec.check()
    return codec


def available_baselines() -> list[str]:
    """Names of the baselines the installed Pillow and PyAV can run."""
    return [name for name, codec in BASELINES.items() if codec.unavailable() is None]
