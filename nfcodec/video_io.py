"""Video input and output through PyAV (imported lazily: only this module touches ``av``).

Reading: the first video stream (audio and other streams are ignored), decoded with FFmpeg and
converted to 8-bit RGB by swscale in one call that also resizes when asked.  The colour matrix
and range are the stream's own (``frame.colorspace`` / ``frame.color_range``), passed
explicitly to ``VideoFrame.reformat``; when the stream does not say, we assume **BT.601,
limited (MPEG) range** -- FFmpeg's own default -- except for the ``yuvj*`` pixel formats, which
are full range by definition.  RGB sources (FFV1/x264rgb/PNG) are copied without a matrix.  A
folder or glob of PNG frames is read with Pillow (sorted by name).

Frame rate: ``stream.average_rate``, else ``stream.guessed_rate``, as an exact fraction; when
neither is known (or for PNG frames) it is 0/1 ("unknown") in the header and writers use 25 fps.

Writing (decoded frames, one at a time, through :func:`nfcodec.media.atomic_write`):

==============  ====================================================  ==========
output          codec / pixel format                                  exact RGB?
==============  ====================================================  ==========
``.mkv``        FFV1, ``bgr0``                                        yes
``.mp4``        libx264rgb, ``rgb24``, ``qp=0``                       yes
``.y4m``        raw ``yuv444p`` (BT.601 limited range)                no (YUV only)
``%04d.png``    one PNG per frame (numbered by frame index)           yes
``crf=N``       libx264 ``yuv420p`` CRF N, preset medium (.mp4/.mkv)   no (delivery)
==============  ====================================================  ==========
"""
from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .bitstream.errors import BitstreamError
from .errors import ConfigError, InputError, NFCodecError, OutputExistsError
from .media import Video, atomic_write, check_output_path, load_image, parse_frame_range, resolve_frame_range

__all__ = ["read_video", "write_video", "check_video_output", "stream_rate", "DEFAULT_FPS", "LOSSLESS_SUFFIXES",
           "is_png_pattern"]

#: Frame rate written when the stream's rate is unknown (0/1 in the header).
DEFAULT_FPS = Fraction(25)
#: Output kinds that store the decoded RGB frames exactly (without ``crf``).
LOSSLESS_SUFFIXES = (".mkv", ".mp4", ".png")

_FFMPEG_COLORSPACE = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def _av() -> Any:
    os.environ.setdefault("SVT_LOG", "1")
    import av   # PyAV's FFmpeg logging stays off (its default): a Python log callback can deadlock threaded decoding

    return av


def stream_rate(stream: Any) -> Fraction:
    """The exact frame rate of a PyAV stream: average_rate, else guessed_rate, else 0 (unknown)."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
        return Fraction(0)
    rate = Fraction(rate)
    return rate if max(rate.numerator, rate.denominator) < 2**31 else rate.limit_denominator(2**20)


def _color_args(frame: Any) -> dict[str, Any]:
    """swscale source matrix/range for a YUV frame (BT.601 limited when the stream does not say)."""
    from av.video.reformatter import ColorRange, Colorspace

    fmt = frame.format.name
    if fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "rgba", "bgra", "0rgb", "0bgr", "pal")):
        return {}
    full = frame.color_range == 2 or fmt.startswith("yuvj")
    return {"src_colorspace": getattr(Colorspace, _FFMPEG_COLORSPACE.get(frame.colorspace, "ITU601")),
            "src_color_range": ColorRange.JPEG if full else ColorRange.MPEG, "dst_color_range": ColorRange.JPEG}


def _frame_rgb(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
    kwargs = _color_args(frame)
    if size is not None and size != (frame.width, frame.height):
        down = size[0] * size[1] < frame.width * frame.height
        kwargs.update(width=size[0], height=size[1], interpolation="AREA" if down else "BICUBIC")
    return frame.reformat(format="rgb24", **kwargs).to_ndarray()


def _png_files(source: str) -> list[Path]:
    p = Path(source)
    files = sorted(p.glob("*.png")) if p.is_dir() else sorted(Path(f) for f in _glob.glob(source))
    if not files:
        raise InputError(f"{source} has no frames (no PNG files)")
    return files


def _read_png_frames(source: str, sel: slice | None, size: tuple[int, int] | None) -> Video:
    from PIL import Image

    files = _png_files(source)
    frames = []
    for k in resolve_frame_range(sel, len(files)):
        image = load_image(files[k])
        if frames and image.shape != frames[0].shape:
            raise InputError(f"{files[k]}: {image.shape[1]}x{image.shape[0]} differs from the first frame's size")
        if size is not None and size != (image.shape[1], image.shape[0]):
            down = size[0] * size[1] < image.shape[0] * image.shape[1]
            resample = Image.Resampling.BOX if down else Image.Resampling.BICUBIC
            image = np.asarray(Image.fromarray(image).resize(size, resample), dtype=np.uint8)
        frames.append(image)
    return Video(np.stack(frames), Fraction(0), source)


def read_video(source: str | os.PathLike, *, frames: str | slice | range | None = None,
               resize: tuple[int, int] | None = None) -> Video:
    """Read a clip (first video stream) as (T, H, W, 3) uint8 RGB with its exact frame rate.

    Args:
        source: a video file (mp4, mkv, webm, y4m, ...), a folder of PNG frames or a glob.
        frames: ``"A:B[:STEP]"`` or a slice: which frames to keep (decoding stops after B).
        resize: ``(width, height)`` to scale every frame to (swscale area / bicubic).

    Returns:
        A :class:`~nfcodec.media.Video`.

    Raises:
        InputError: missing or unreadable file, no video stream, no frames.
        ConfigError: ``frames`` outside the video.
    """
    sel, text = parse_frame_range(frames), str(source)
    if Path(text).is_dir() or any(ch in text for ch in "*?["):
        return _read_png_frames(text, sel, resize)
    path = Path(text)
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    av = _av()
    try:
        container = av.open(text)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a readable video ({e.__class__.__name__})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        kept, total = _decode_range(av, container, stream, sel, resize, path)
        if total == 0:
            raise InputError(f"{path} has no frames")
        resolve_frame_range(sel, total)   # raises for a range outside the video
        return Video(_stack_releasing(kept), stream_rate(stream), str(path))


def _stack_releasing(frames: list[np.ndarray]) -> np.ndarray:
    """Stack frames into one (T, H, W, 3) array, dropping each list entry once copied (peak ~1x, not 2x)."""
    out = np.empty((len(frames), *frames[0].shape), np.uint8)
    for i in range(len(frames)):
        out[i], frames[i] = frames[i], None  # type: ignore[call-overload]
    return out


def _decode_range(av: Any, container: Any, stream: Any, sel: slice | None, size: tuple[int, int] | None,
                  path: Path) -> tuple[list[np.ndarray], int]:
    """Decode frames in order, keeping the selected ones; stops after the range's end."""
    start, stop, step = (0, None, 1) if sel is None else (sel.start or 0, sel.stop, sel.step or 1)
    kept: list[np.ndarray] = []
    count = 0
    try:
        for frame in container.decode(stream):
            if stop is not None and count >= stop:
                break
            if count >= start and (count - start) % step == 0:
                kept.append(_frame_rgb(frame, size))
            count += 1
    except av.FFmpegError as e:
        raise InputError(f"{path}: cannot decode frame {count} ({e.__class__.__name__})") from None
    return kept, count


def is_png_pattern(path: str | os.PathLike) -> bool:
    """An output like ``frames/%04d.png`` (a printf pattern with a .png suffix)."""
    return "%" in Path(path).name and str(path).lower().endswith(".png")


def _codec_setup(suffix: str, crf: int | None, width: int, height: int) -> tuple[str, str, dict[str, str]]:
    if crf is not None:
        if suffix not in (".mp4", ".mkv"):
            raise ConfigError(f"--crf applies to .mp4 and .mkv outputs, not {suffix}")
        if width % 2 or height % 2:
            raise ConfigError(f"--crf (x264 yuv420p) needs an even width and height, got {width}x{height}; "
                              "write a lossless output instead")
        return "libx264", "yuv420p", {"crf": str(crf), "preset": "medium"}
    table = {".mkv": ("ffv1", "bgr0", {}), ".mp4": ("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"}),
             ".y4m": ("wrapped_avframe", "yuv444p", {})}
    if suffix not in table:
        raise NFCodecError(f"cannot write video format {suffix or '(none)'!r}; use .mkv, .mp4, .y4m "
                           "or a PNG pattern such as frames/%04d.png")
    return table[suffix]


def _mux(path: Path, frames: Iterable[tuple[int, np.ndarray]], width: int, height: int, fps: Fraction,
         setup: tuple[str, str, dict[str, str]]) -> int:
    av = _av()
    codec, pix_fmt, options = setup
    n = 0
    try:
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=fps or DEFAULT_FPS)
            stream.width, stream.height, stream.pix_fmt, stream.options = width, height, pix_fmt, options
            for _, rgb in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format=pix_fmt)
                frame.pts = n
                out.mux(stream.encode(frame))
                n += 1
            out.mux(stream.encode())
    except (BitstreamError, NFCodecError):
        raise                                  # the decoder's own errors (FormatError is a ValueError too)
    except (av.FFmpegError, ValueError) as e:  # PyAV / FFmpeg refusing the stream (size, codec, muxer)
        raise NFCodecError(f"cannot write a {width}x{height} {codec} video: {e}") from None
    return n


def write_video(path: str | os.PathLike, frames: Iterable[tuple[int, np.ndarray]], *, width: int, height: int,
                fps: Fraction = Fraction(0), crf: int | None = None, overwrite: bool = False,
                inputs: tuple[str | os.PathLike, ...] = ()) -> int:
    """Write ``(index, (H, W, 3) uint8)`` frames as they come; returns the number written.

    The container follows the extension (table in the module docstring); ``crf`` selects a
    lossy x264 yuv420p delivery encode.  Nothing is left behind on failure.

    Raises:
        ConfigError: ``crf`` with an output that cannot take it, or odd sizes for yuv420p.
        NFCodecError: unknown extension.  OutputExistsError: see :func:`atomic_write`.
    """
    if is_png_pattern(path):
        if crf is not None:
            raise ConfigError("--crf applies to .mp4 and .mkv outputs, not PNG frames")
        return _write_png_frames(str(path), frames, overwrite=overwrite)
    setup = _codec_setup(Path(path).suffix.lower(), crf, width, height)
    count: list[int] = []
    atomic_write(path, lambda tmp: count.append(_mux(tmp, frames, width, height, fps, setup)),
                 overwrite=overwrite, inputs=inputs)
    return count[0]


def _write_png_frames(pattern: str, frames: Iterable[tuple[int, np.ndarray]], *, overwrite: bool) -> int:
    """Write frames into a temporary folder, then move them into place (frame k -> ``pattern % k``)."""
    from PIL import Image

    folder = Path(pattern).parent
    if not folder.is_dir():
        raise NFCodecError(f"output directory does not exist: {folder}")
    try:
        pattern % 0
    except (TypeError, ValueError):
        raise ConfigError(f"bad PNG pattern {pattern!r}: use one integer field, e.g. frames/%04d.png") from None
    tmp = Path(tempfile.mkdtemp(prefix=".nfc-frames-", dir=folder))
    try:
        names = []
        for k, rgb in frames:
            target = Path(pattern % k)
            if target.exists() and not overwrite:
                raise OutputExistsError(f"output file exists: {target} (use --force to overwrite)")
            try:
                Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(tmp / f"{k}.png", format="PNG")
            except ValueError as e:
                raise NFCodecError(f"cannot write {target}: {e}") from None
            names.append((tmp / f"{k}.png", target))
        for src, dst in names:
            os.replace(src, dst)
        return len(names)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)


def check_video_output(path: str | os.PathLike, *, overwrite: bool, inputs: tuple[str | os.PathLike, ...] = (),
                       crf: int | None = None, width: int = 2, height: int = 2, indices: Iterable[int] = ()) -> None:
    """Validate a video output (extension, crf, existing file or frame files) before any decoding work.

    Raises:
        ConfigError, NFCodecError, OutputExistsError: as :func:`write_video` would, but up front.
    """
    if is_png_pattern(path):
        if crf is not None:
            raise ConfigError("--crf applies to .mp4 and .mkv outputs, not PNG frames")
        if not Path(path).parent.is_dir():
            raise NFCodecError(f"output directory does not exist: {Path(path).parent}")
        try:
            existing = next((Path(str(path) % k) for k in indices if Path(str(path) % k).exists()), None)
        except (TypeError, ValueError):
            raise ConfigError(f"bad PNG pattern {str(path)!r}: use one integer field, e.g. frames/%04d.png") from None
        if existing is not None and not overwrite:
            raise OutputExistsError(f"output file exists: {existing} (use --force to overwrite)")
        return
    _codec_setup(Path(path).suffix.lower(), crf, width, height)
    check_output_path(path, overwrite=overwrite, inputs=inputs)
