"""The library API: ``encode``, ``decode``, ``decode_frames``, ``probe``.

Sources may be paths or in-memory objects (an (H, W, 3) uint8 image or (T, H, W, 3) uint8 clip
to encode, ``bytes`` to decode or probe).  Passing ``output=`` writes the result atomically: nothing is written on
failure, an existing file is never replaced unless ``overwrite=True``, and the input is never
overwritten.
"""
from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from .bitstream import StreamInfo
from .bitstream import probe as _probe
from .config import SIZE_KNOBS, CodecConfig, get_preset
from .decoder import DecodeLimits
from .errors import ConfigError, InputError
from .media import (Video, check_output_path, is_image_path, is_video_source, load_image,
                    parse_frame_range, parse_size, read_input_bytes, resolve_frame_range, save_image)
from .results import DecodeResult, EncodeResult

__all__ = ["encode", "decode", "decode_frames", "decode_progressive", "truncate", "ProgressiveLevel", "probe", "EncodeResult", "DecodeResult", "DecodeLimits"]

PathLike = Union[str, os.PathLike]


def _load_source(source: PathLike | bytes) -> tuple[bytes, tuple[PathLike, ...]]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), ()
    return read_input_bytes(source), (source,)


def encode(source: PathLike | np.ndarray | Video, output: PathLike | None = None, *, preset: str = "default",
           config: CodecConfig | None = None, overwrite: bool = False, metadata: bool = True,
           progress: Callable[[int, int, float], None] | None = None, frames: str | slice | range | None = None,
           resize: str | tuple[int, int] | None = None, fps: Fraction | int | None = None,
           bpp: float | None = None, psnr: float | None = None, **knobs: Any) -> EncodeResult:
    """Compress an image or a video into a ``.nfc`` stream.

    Args:
        source: image path (anything Pillow reads), video path (mp4, mkv, webm, y4m, ...; see
            :data:`nfcodec.media.VIDEO_SUFFIXES`), folder or glob of PNG frames, an (H, W, 3)
            uint8 image array, a (T, H, W, 3) uint8 clip, or a :class:`Video` (``nfcodec.read_video``).
        output: where to write the ``.nfc`` file (optional; ``result.data`` always holds it).
        preset: ``fast``, ``default`` or ``high`` (image presets for SIREN, video presets for NeRV;
            ignored when ``config`` is given).
        config: a full :class:`~nfcodec.config.CodecConfig`.
        overwrite: allow replacing an existing ``output``.
        metadata: store the settings in an ancillary ``meTA`` chunk (~100 bytes).
        progress: callback ``(step, total, psnr_db)`` during fitting.
        frames: videos only: ``"A:B[:STEP]"`` or a slice of frames to encode.
        resize: videos only: ``"WxH"`` or ``(W, H)`` to scale frames to before encoding.
        fps: frame rate of a clip array (exact, e.g. ``Fraction(30000, 1001)``; default unknown).
        bpp: rate control: a file of at most ``bpp`` bits per pixel and at least 95% of it; the
            model size, sparsity (pruned) and quantization steps are chosen (see
            :mod:`nfcodec.ratecontrol`).  ``result.rate_control`` holds the chosen settings.
        psnr: rate control: the smallest file found whose decoded PSNR is at least ``psnr`` dB
            (several fits).  Exclusive with ``bpp``.
        **knobs: flat overrides, e.g. ``width=96, steps=500, bits=10, device="cuda"``; for videos
            ``arch="siren"``, ``c1=16, c2=64, epochs=100, batch_frames=2, factors=(5, 2, 2)``.
            ``transform="permute"|"gamma"`` (``transform_param=N``): fit a transformed copy of the
            frames and write an ``XFRM`` chunk, which every decoder inverts after rendering; the
            reported PSNR and reconstruction are against the original frames (docs/transforms.md).

    Returns:
        :class:`EncodeResult` with ``data``, ``psnr``, ``bpp`` and the decoder's reconstruction.

    Raises:
        InputError, ConfigError, OutputExistsError (before any fitting starts).
    """
    if bpp is not None and psnr is not None:
        raise ConfigError("give a target bpp or a target psnr, not both")
    if bpp is not None or psnr is not None:
        from .ratecontrol import check_target

        check_target("bpp" if bpp is not None else "psnr", bpp if bpp is not None else psnr)
    media, inputs = _load_media(source, frames, resize, fps)
    if output is not None:
        check_output_path(output, overwrite=overwrite, inputs=inputs)
    video = isinstance(media, Video)
    cfg = _resolve_config(preset, config, video, knobs)
    if cfg.tiles.prior == "auto":
        cfg = dataclasses.replace(cfg, tiles=dataclasses.replace(cfg.tiles, prior=_auto_prior(cfg, video, knobs, bpp, psnr)))
    if cfg.tiles.prior and video:        # a clip: one NeRV coded from the prior, layout single (prior_encoder)
        if cfg.model.arch != "nerv":
            raise ConfigError(f"arch {cfg.model.arch} videos cannot be coded from a prior (NeRV videos can)")
        if cfg.layout != "single":
            raise ConfigError(f"layout {cfg.layout} cannot be coded from a prior (a video's single layout is)")
    elif cfg.tiles.prior and cfg.layout != "tiles":
        if cfg.layout != "single":
            raise ConfigError(f"layout {cfg.layout} cannot be coded from a prior (the tiles layout is)")
        cfg = dataclasses.replace(cfg, layout="tiles")      # an image prior is learned for tiles
    name = None if config is not None else preset
    if video:
        arr, media_id, rate = media.frames, 1, media.fps
    else:
        from .encoder import check_image

        check_image(media)
        arr, media_id, rate = media[None], 0, Fraction(0)
    from .variants import LAYOUTS

    sizing = video and config is None and not SIZE_KNOBS & {k for k, v in knobs.items() if v is not None}
    from .xfrm_stream import transform_record

    xfrm = transform_record(cfg)
    fit_arr, fit_cfg, fit_bpp = arr, cfg, bpp
    if xfrm is not None:           # any layout: fit the transformed frames, then write XFRM (xfrm_stream)
        from .xfrm_stream import prepare

        fit_arr, fit_cfg, fit_bpp = prepare(arr, cfg, xfrm, bpp, psnr)
    try:
        result = LAYOUTS.by_name(cfg.layout).encode(fit_arr, media_id, rate, fit_cfg, preset=name, metadata=metadata,
                                                    progress=progress, bpp=fit_bpp, psnr=psnr, sizing=sizing)
    except ConfigError as e:
        if xfrm is None or fit_cfg is cfg and fit_bpp is None:
            raise
        from .xfrm_stream import XFRM_BYTES

        raise ConfigError(f"{e} (targets less the {XFRM_BYTES}-byte XFRM chunk of transform "
                          f"{cfg.xfrm.transform})") from None
    if xfrm is not None:
        from .xfrm_stream import finish

        result = finish(result, xfrm, arr, media_id, bpp, cfg.grow.level_bpp)
    if output is not None:
        result.save(output, overwrite=overwrite, inputs=inputs)
    return result


#: A preset's ``prior="auto"`` applies from this ``--bpp`` target up (and without a target): below
#: it the fixed tiled network of the default prior, quantized coarser, loses to a scratch SIREN
#: sized by rate control (docs/benchmarks.md, "Fast encoding from learned priors").
AUTO_PRIOR_MIN_BPP = 0.3


def _auto_prior(cfg: CodecConfig, video: bool, knobs: dict[str, Any], bpp: float | None = None,
                psnr: float | None = None) -> str:
    """A preset's ``prior="auto"``: ``default`` where the packaged prior applies, else ``""``
    (scratch): an image, a default prior installed, no layout chosen but tiles, no
    representation, architecture, width or depth chosen (the prior fixes the network), no
    ``psnr`` target and no ``bpp`` target below :data:`AUTO_PRIOR_MIN_BPP`.

    Never a video: the packaged ``default-video`` NeRV prior (8-frame 176x144 clips) is ahead of
    scratch in PSNR and bytes at equal Adam steps up to 400, but at the default preset's 600 steps
    its RD curve on carphone was behind scratch for 2 of 3 fit seeds (docs/benchmarks.md, "Video
    (NeRV) priors (issue 12)"), so no video preset uses it unless ``--prior`` asks for it."""
    from .priors import default_prior
    from .variants import REPRESENTATIONS

    given = {k for k, v in knobs.items() if v is not None}
    if video or cfg.model.arch != "siren" or ("layout" in given and cfg.layout != "tiles"):
        return ""
    if given & (SIZE_KNOBS | {"arch", "representation"}):   # a network chosen: the prior would ignore it
        return ""
    if psnr is not None or (bpp is not None and bpp < AUTO_PRIOR_MIN_BPP):
        return ""
    if not getattr(REPRESENTATIONS.by_name(cfg.representation), "priors", False):
        return ""
    return "default" if default_prior(0) is not None else ""


def _load_media(source: PathLike | np.ndarray, frames: Any, resize: Any,
                fps: Fraction | int | None) -> tuple[np.ndarray | Video, tuple[PathLike, ...]]:
    """An image array or a :class:`Video`, and the input paths to protect from overwriting."""
    if isinstance(source, Video):      # e.g. from nfcodec.read_video: its own frame rate
        if frames is not None or resize is not None:
            raise ConfigError("frames= and resize= apply when reading a file; select frames of a Video yourself")
        return source, ()
    if isinstance(source, np.ndarray) and source.ndim == 4:
        sel = parse_frame_range(frames)
        clip = source if sel is None else source[list(resolve_frame_range(sel, source.shape[0]))]
        if parse_size(resize) is not None:
            raise ConfigError("resize= works on video files; resize arrays before encoding")
        rate = Fraction(fps or 0)
        if rate.denominator >= 2**31 or rate.numerator >= 2**31:
            rate = rate.limit_denominator(1_000_000)   # e.g. fps=29.97 (a float) -> 2997/100
        return Video(clip, rate), ()
    if isinstance(source, np.ndarray):
        if frames is not None or resize is not None:
            raise ConfigError("frames= and resize= apply to videos only")
        return source, ()
    return _load_path(source, frames, resize), (source,)


def _load_path(source: PathLike, frames: Any, resize: Any) -> np.ndarray | Video:
    """Videos by extension, folder or glob; images by extension; anything else: Pillow, then PyAV."""
    from .video_io import read_video

    if is_video_source(source) or (not is_image_path(source) and (frames is not None or resize is not None)):
        return read_video(source, frames=frames, resize=parse_size(resize))
    if frames is not None or resize is not None:
        raise ConfigError("frames= and resize= apply to videos only")
    try:
        return load_image(source)
    except InputError:
        if is_image_path(source) or not os.path.isfile(source):
            raise
        try:                    # an unknown extension that Pillow cannot read: try PyAV
            return read_video(source)
        except InputError:
            pass
        raise


def _resolve_config(preset: str, config: CodecConfig | None, video: bool, knobs: dict[str, Any]) -> CodecConfig:
    """The preset table follows the architecture: NeRV presets for videos, SIREN ones otherwise."""
    if config is not None:
        return config.replace(**knobs)
    arch = knobs.get("arch") or ("nerv" if video else "siren")
    return get_preset(preset, video=arch == "nerv", arch=arch).replace(**{**knobs, "arch": arch})


def decode(source: PathLike | bytes, output: PathLike | None = None, *, overwrite: bool = False,
           frames: str | slice | range | None = None, crf: int | None = None, backend: str = "auto",
           device: str | None = None, limits: DecodeLimits | None = None, level: int | None = None,
           strict: bool = False, prior: PathLike | Sequence[PathLike] = ()) -> DecodeResult:
    """Decode a ``.nfc`` stream (path or bytes): an image, or a video (streamed to ``output``).

    Args:
        source: ``.nfc`` path or its bytes.
        output: image path (PNG recommended) for an image; for a video ``.mkv`` (FFV1),
            ``.mp4`` (x264 RGB qp 0), ``.y4m`` or a PNG pattern like ``frames/%04d.png``.
        overwrite: allow replacing an existing ``output``.
        frames: videos only: ``"A:B[:STEP]"`` or a slice of frames to decode.
        crf: videos only: write a lossy x264 yuv420p delivery encode with this CRF.
        backend: ``auto`` (default), ``numpy`` or ``torch``.  Format 2.x files decode to the
            same pixels with every backend; ``auto`` takes numpy (no torch import) unless a GPU
            ``device`` is given.  Format 1.x files decode with torch only.
        device: torch backend: ``cpu``, ``cuda`` or ``cuda:N``.
        limits: the decoder's limits (:class:`~nfcodec.decoder.DecodeLimits`; default
            :data:`~nfcodec.decoder.DEFAULT_LIMITS`).
        level: width-chunks streams: the level to decode (1-based; default the last one).
        strict: refuse a cut or damaged width-chunks stream instead of decoding its last complete
            level (``result.note`` says when that happened).  Other layouts are always strict.
        prior: a prior file or directory (or several) to search first for the prior a stream coded
            against one needs; then ``$NFC_PRIOR_PATH`` and the packaged priors (:mod:`nfcodec.priors`).

    Returns:
        :class:`DecodeResult`: ``image`` for an image; for a video ``frames`` (in memory, when no
        output is given) or ``written`` (frames streamed to ``output``); ``level``, ``levels``
        and ``note`` say what was decoded.  A spatially grown level's image holds the columns it
        covers, a temporally grown level's video the frames it covers.

    Raises:
        BitstreamError subclasses for malformed data; InputError; ConfigError; OutputExistsError;
        UnsupportedFeatureError; LimitError.
    """
    from .decoder import open_stream

    data, inputs = _load_source(source)
    stream = open_stream(data, backend=backend, device=device, limits=limits, level=level, partial=not strict,
                         priors=_paths(prior))
    if stream.header.media == 0:
        if frames is not None or crf is not None:
            raise ConfigError("frames= and crf= apply to videos only")
        if output is not None:
            check_output_path(output, overwrite=overwrite, inputs=inputs)
        result = DecodeResult(stream.render(0), stream.info, backend=stream.backend, **_level_fields(stream))
        if output is not None:
            save_image(output, result.image, overwrite=overwrite, inputs=inputs)
        return result
    return _decode_video(stream, inputs, output, overwrite, frames, crf, limits)


def _level_fields(stream: Any) -> dict[str, Any]:
    return {"level": stream.level, "levels": stream.levels, "note": stream.note}


def _decode_video(stream: Any, inputs: tuple[PathLike, ...], output: PathLike | None, overwrite: bool,
                  frames: Any, crf: int | None, limits: DecodeLimits | None) -> DecodeResult:
    from .decoder import DEFAULT_LIMITS, iter_frames
    from .errors import LimitError
    from .video_io import check_video_output, write_video

    h, info = stream.header, stream.info
    width = stream.out_width
    wanted = resolve_frame_range(parse_frame_range(frames), stream.n_frames)
    if output is None:
        if crf is not None:
            raise ConfigError("crf= needs an output file")
        need = len(wanted) * width * h.height * 3
        cap = (limits or DEFAULT_LIMITS).max_output_bytes
        if need > cap:
            raise LimitError(f"decoding {len(wanted)} frames of {width}x{h.height} into memory needs "
                             f"{need / 2**20:,.0f} MiB (limit {cap / 2**20:,.0f} MiB): give an output file, "
                             "use decode_frames, or select fewer frames")
        got = np.stack([f for _, f in iter_frames(stream, wanted)])
        return DecodeResult(None, info, frames=got, indices=tuple(wanted), backend=stream.backend,
                            **_level_fields(stream))
    check_video_output(output, overwrite=overwrite, inputs=inputs, crf=crf, width=width, height=h.height,
                       indices=wanted)
    n = write_video(output, iter_frames(stream, wanted), width=width, height=h.height,
                    fps=Fraction(h.fps_num, h.fps_den), crf=crf, overwrite=overwrite, inputs=inputs)
    return DecodeResult(None, info, indices=tuple(wanted), written=n, backend=stream.backend, **_level_fields(stream))


def _paths(prior: Any) -> tuple[str, ...]:
    if isinstance(prior, (str, os.PathLike)):
        return (os.fspath(prior),)
    return tuple(os.fspath(p) for p in prior)


def decode_frames(source: PathLike | bytes, frames: str | slice | range | None = None, *, backend: str = "auto",
                  device: str | None = None, limits: DecodeLimits | None = None, prior: Any = ()
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """Decode video frames one at a time: yields ``(k, (H, W, 3) uint8)`` for each selected k.

    Each frame is rendered from its own index only, so any subset costs only those frames and
    frame k alone equals frame k of a full decode.  An image stream yields ``(0, image)``.
    ``backend``, ``device`` and ``limits`` are as for :func:`decode`.

    Raises:
        BitstreamError subclasses for malformed data; ConfigError for frames outside the video;
        UnsupportedFeatureError; LimitError.
    """
    from .decoder import iter_frames, open_stream

    data, _ = _load_source(source)
    stream = open_stream(data, backend=backend, device=device, limits=limits, priors=_paths(prior))
    wanted = resolve_frame_range(parse_frame_range(frames), stream.header.frames)
    return iter_frames(stream, wanted)


@dataclasses.dataclass(frozen=True)
class ProgressiveLevel:
    """One level of :func:`decode_progressive`, decoded as soon as its bytes arrived.

    Attributes:
        level, levels: this level (1-based) of how many in the whole stream.
        end: the byte offset where the level ends (a prefix of this many bytes decodes it).
        received: bytes received when it was decoded.
        image: the decoded image (image streams; a spatially grown level: its columns).
        stream: the level's decoder, to render video frames (``stream.frames(range(stream.n_frames))``).
    """

    level: int
    levels: int
    end: int
    received: int
    image: Optional[np.ndarray]
    stream: Any


def _pieces(source: Any) -> Iterator[bytes]:
    """Byte chunks from a socket (``recv``), a file-like object (``read1`` when it has one: it
    returns what has arrived instead of waiting for a full buffer; else ``read``), a path, bytes,
    or an iterable of byte chunks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _pieces(f)
    elif hasattr(source, "recv") or hasattr(source, "read1") or hasattr(source, "read"):
        read = getattr(source, "recv", None) or getattr(source, "read1", None) or source.read
        while True:
            piece = read(1 << 16)
            if not piece:
                return
            yield bytes(piece)
    else:
        for piece in source:
            yield bytes(piece)


def decode_progressive(source: Any, *, backend: str = "auto", device: str | None = None,
                       limits: DecodeLimits | None = None) -> Iterator[ProgressiveLevel]:
    """Decode a stream while it arrives: yields each level as soon as its bytes are in.

    ``source``: a socket (``recv``), a file-like object (``read1`` or ``read``: a socket file, an
    HTTP response body), an iterable of byte chunks, bytes or a path.  A width-chunks stream yields levels 1, 2, ... (each identical to
    ``decode(..., level=k)``); any other stream yields its one level once the whole file has
    arrived.  Nothing is decoded twice and no level waits for the end of the stream.

    Raises:
        TruncatedError: the source ended before any level was complete (or, for another layout,
            before the end of the file); the other errors of :func:`decode`.
    """
    from .bitstream import ChecksumError, TruncatedError
    from .decoder import open_stream, stream_levels

    buf = bytearray()
    done = 0
    for piece in _pieces(source):
        if not piece:
            continue
        buf += piece
        try:
            ends = stream_levels(bytes(buf))
        except ChecksumError:
            break               # damaged: the levels before the damage were already yielded
        while done < len(ends):
            done += 1
            stream = open_stream(bytes(buf[:ends[done - 1]]), backend=backend, device=device, limits=limits,
                                 level=done, partial=True)
            image = stream.render(0) if stream.header.media == 0 else None
            yield ProgressiveLevel(done, stream.levels, ends[done - 1], len(buf), image, stream)
            if done == stream.levels:
                return
    if done == 0:
        open_stream(bytes(buf), backend=backend, device=device, limits=limits, partial=True)  # raises why
        raise TruncatedError(f"the stream ended at byte {len(buf)} before its first level was complete")


def truncate(source: PathLike | bytes, output: PathLike | None = None, *, level: int | None = None,
             max_bytes: int | None = None, overwrite: bool = False) -> bytes:
    """A valid shorter width-chunks file: the first ``level`` levels, or as many as fit ``max_bytes``.

    Its decode equals ``decode(source, level=k)`` (the server's operation of a progressive stream:
    the headers say ``k`` levels, the first ``k`` segments are copied unchanged).

    Raises:
        ConfigError: neither or both of ``level`` / ``max_bytes``, a level the file lacks, or a
            size below the first level's; UnsupportedFeatureError: not a width-chunks stream.
    """
    from .widthchunks import truncated_file

    if (level is None) == (max_bytes is None):
        raise ConfigError("give level= or max_bytes=, exactly one")
    data, inputs = _load_source(source)
    if output is not None:
        check_output_path(output, overwrite=overwrite, inputs=inputs)
    out = truncated_file(data, level=level, max_bytes=max_bytes)
    if output is not None:
        from .media import atomic_write

        atomic_write(output, lambda tmp: tmp.write_bytes(out), overwrite=overwrite, inputs=inputs)
    return out


def probe(source: PathLike | bytes, *, allow_truncated: bool = False) -> StreamInfo:
    """Describe a ``.nfc`` stream (header, architecture, chunk table, bpp) without decoding it."""
    data, _ = _load_source(source)
    return _probe(data, allow_truncated=allow_truncated)
