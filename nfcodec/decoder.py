"""The decoder: bytes -> pixels.  Imports no training code, and no torch on the numpy backend.

    bytes --read_container--> chunks --NHDR/ARCH--> architecture, representation, layout
          --limits (parameters, memory, work, pixels per byte), before anything is allocated
          --representation.materialize--> integer weights (record headers checked first)
          --format 2.x: arch.program--> exact program --backend (numpy | torch)--> frame k
          --format 1.x: torch module, float32 renderer (platform-dependent, kept for old files)

A stream with an ``XFRM`` chunk (format.md section 4d; :mod:`nfcodec.transforms`) is rendered as
any other, then every frame (or the pixels of a partial level) goes through the exact inverse.

A width-chunks stream (:mod:`nfcodec.widthchunks`) decodes any of its levels; opened with
``partial=True`` a cut or damaged one decodes its last complete level (``DecodedStream.note``
says which and why).

An image is frame 0 of a one-frame stream.  Video frames are rendered one at a time, each from
its own index only, so any subset decodes without the others and memory holds one frame.

Every critical chunk must be consumed: a stream with a critical chunk that its representation
and layout do not read (``SEED``, ``SCAL``, ``PRIR`` in a supermask stream, say) is
refused with :class:`~nfcodec.errors.UnsupportedFeatureError` rather than decoded wrongly.
``XFRM`` is read by every stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from .archs import ARCHS, ArchSpec, param_count
from .bitstream import (ChecksumError, Container, FormatError, StreamHeader, StreamInfo, TruncatedError,
                        read_container, unpack_arch)
from .bitstream.headers import PriorRef, TransformRecord
from .bitstream.probe import describe
from .errors import ConfigError, LimitError, UnsupportedFeatureError
from .exact import BACKENDS, get_ops
from .variants import LAYOUTS, REPRESENTATIONS

__all__ = ["DecodeLimits", "DEFAULT_LIMITS", "DecodedImage", "DecodedStream", "decode_bytes", "open_stream",
           "iter_frames", "choose_backend", "build_program", "BACKEND_CHOICES"]

#: What ``backend=`` accepts.
BACKEND_CHOICES = ("auto",) + BACKENDS

_STRUCTURAL = frozenset({b"NHDR", b"ARCH", b"NEND", b"XFRM"})   # XFRM: read by every stream (4d)
#: Read when both the representation and the layout code weights against a prior.
_PRIOR = frozenset({b"PRIR"})


@dataclass(frozen=True)
class DecodeLimits:
    """What a file may ask of the decoder; checked from NHDR/ARCH before any tensor exists.

    Attributes:
        max_params: parameters of the network (the weights the decoder holds).
        max_frame_work: work to render one frame, in multiply-add equivalents
            (:attr:`nfcodec.archs.Costs.work`: multiply-adds plus 32 per activation); about 8 s
            at the limit on 2 CPU cores.
        max_peak_bytes: working memory to render one frame (feature maps, tiles, the frame).
        min_bpp: the whole stream must carry at least this many bits per decoded pixel; a file
            that would expand further (a tiny file claiming a huge frame or millions of
            frames) is refused as a decompression bomb.
        max_output_bytes: a video decoded into memory (no output file) holds at most this.
    """

    max_params: int = 2**25
    max_frame_work: int = 2**38
    max_peak_bytes: int = 2**31
    min_bpp: float = 2.0**-12
    max_output_bytes: int = 2**32

    @classmethod
    def unlimited(cls) -> "DecodeLimits":
        """No limits (trusted files only)."""
        return cls(max_params=2**62, max_frame_work=2**126, max_peak_bytes=2**62, min_bpp=0.0,
                   max_output_bytes=2**62)


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray     # (H, W, 3) uint8
    info: StreamInfo
    backend: str = "numpy"


@dataclass
class DecodedStream:
    """A stream ready to render: header, record, architecture, and its exact program (or, for a
    format 1.x file, its float32 torch module)."""

    header: StreamHeader
    record: Any
    arch: ArchSpec
    info: StreamInfo
    backend: str
    program: Any = None                 # format 2.x
    model: Any = None                   # format 1.x (torch module)
    ops: Any = field(default=None, repr=False)
    level: int = 1                      # the level decoded (1-based) ...
    levels: int = 1                     # ... of this many in the whole stream
    n_frames: int = 0                   # frames the decoded level reconstructs (0: NHDR.frames)
    out_width: int = 0                  # columns it reconstructs (0: NHDR.width)
    note: str = ""                      # why a cut or damaged file decoded fewer levels
    plan: Any = field(default=None, repr=False)
    transform: Optional[TransformRecord] = None   # XFRM (None: no chunk, or identity)

    def __post_init__(self) -> None:
        self.n_frames = self.n_frames or self.header.frames
        self.out_width = self.out_width or self.header.width

    @property
    def exact(self) -> bool:
        return self.program is not None

    def render(self, k: int) -> np.ndarray:
        """Frame ``k`` as (H, W', 3) uint8 (0 for an image; ``W' = out_width``), after XFRM's inverse."""
        from .transforms import apply_inverse, inverse_values, render_positions

        xfrm = self.transform
        if not self.exact:
            frame = self.arch.legacy_render(self.model, self.record, self.header, k)
            return frame if xfrm is None else apply_inverse(frame, xfrm, frame_index=k)
        with self.ops.session():
            if self.out_width == self.header.width:
                frame = self.program.render(self.ops, k)
                return frame if xfrm is None else apply_inverse(frame, xfrm, frame_index=k)
            h, w = self.header.height, self.header.width   # a spatial level: its columns of the output
            idx = (np.arange(h, dtype=np.int64)[:, None] * w + np.arange(self.out_width, dtype=np.int64)).ravel()
            if xfrm is None:
                return self.program.render_pixels(self.ops, k, idx).reshape(h, self.out_width, 3)
            got = self.program.render_pixels(self.ops, k, render_positions(xfrm, h, w, idx))
            return inverse_values(got, xfrm).reshape(h, self.out_width, 3)

    def frames(self, ks: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Render frames one at a time, sharing one backend session."""
        if not self.exact:
            for k in ks:
                yield k, self.render(k)
            return
        with self.ops.session():
            for k in ks:
                yield k, self.render(k)


def _one(container: Container, ctype: bytes) -> bytes:
    found = [c.data for c in container.chunks if c.ctype == ctype]
    if len(found) != 1:
        raise FormatError(f"stream has {len(found)} {ctype.decode()} chunks, needs exactly one")
    return found[0]


def _check_consumed(container: Container, rep: Any, layout: Any) -> None:
    used = _STRUCTURAL | rep.consumes | layout.consumes | (_PRIOR if rep.priors and layout.priors else frozenset())
    for c in container.chunks:
        if c.critical and c.ctype not in used:
            raise UnsupportedFeatureError(
                f"critical chunk {c.name} at offset {c.offset} is not used by a {rep.name} stream with "
                f"layout {layout.name}: this decoder cannot decode it correctly")


#: The float32 renderer of format 1.x files (torch, one block of pixels at a time) is several
#: times slower per activation than the exact numpy backend: its work counts this many times.
LEGACY_WORK_FACTOR = 4


def _check_limits(arch: ArchSpec, record: Any, header: StreamHeader, shapes: Sequence[tuple[int, ...]],
                  nbytes: int, limits: DecodeLimits, legacy: bool = False) -> None:
    name = arch.name
    params = param_count(shapes)
    if params > limits.max_params:
        raise LimitError(f"ARCH: this {name} has {params:,} parameters, more than the decoder limit "
                         f"{limits.max_params:,}")
    costs = arch.costs(record, header)
    work = costs.work * (LEGACY_WORK_FACTOR if legacy else 1)
    if work > limits.max_frame_work:
        raise LimitError(f"one {header.width}x{header.height} frame of this {name} costs {work:.3g} "
                         f"multiply-add equivalents ({costs.macs:.3g} multiply-adds, {costs.activations:.3g} "
                         f"activations{', float32 renderer of format 1.x' if legacy else ''}), more than the "
                         f"decoder limit {limits.max_frame_work:.3g}")
    if costs.peak_bytes > limits.max_peak_bytes:
        raise LimitError(f"rendering one frame of this {name} needs {costs.peak_bytes / 2**20:,.0f} MiB, more "
                         f"than the decoder limit {limits.max_peak_bytes / 2**20:,.0f} MiB")
    pixels = header.frames * header.width * header.height
    bpp = 8.0 * nbytes / pixels
    if bpp < limits.min_bpp:
        raise LimitError(f"{nbytes} bytes claim {pixels:,} pixels ({bpp:.3g} bpp, below the limit "
                         f"{limits.min_bpp:.3g}): refused as a decompression bomb")


def choose_backend(backend: str, version: tuple[int, int], device: Optional[str] = None) -> str:
    """The backend ``auto`` resolves to: ``torch`` for format 1.x files (their float renderer) and
    for a GPU device, otherwise ``numpy``: it needs no torch import (about 2 s of a ``nfc decode``
    process) and is as fast as the torch backend on the CPU (``docs/benchmarks.md``)."""
    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"unknown decoder backend {backend!r} (choose from {', '.join(BACKEND_CHOICES)})")
    if version[0] < 2:
        if backend == "numpy":
            raise UnsupportedFeatureError(
                f"format {version[0]}.{version[1]} files decode only with the float32 torch renderer they were "
                "made with (platform-dependent pixels); use --backend torch or auto")
        return "torch"
    if backend != "auto":
        return backend
    if device not in (None, "cpu"):
        return "torch"
    return "numpy"


def build_program(arch: ArchSpec, record: Any, header: StreamHeader, tensors: Sequence[Any]) -> Any:
    """The exact program of format 2.x for already-materialized integer tensors (the encoder's
    closed loop and RD search use this on tensors they have not written yet)."""
    return arch.program(record, header, tensors)


def _legacy_model(arch: ArchSpec, record: Any, tensors: Sequence[Any]) -> Any:
    """Format 1.x: a torch module holding ``float32(q) * float32(step)`` (the v1.0 renderer)."""
    import torch

    from .quant import dequantize

    model = arch.build(record)
    with torch.no_grad():
        for p, t in zip(model.parameters(), tensors):
            p.copy_(torch.from_numpy(dequantize(t.q.ravel(), t.step)).view_as(p))
    return model.eval()


def _read(data: bytes, partial: bool) -> tuple[Container, Optional[Exception]]:
    """The container; with ``partial`` a cut file, or one with a damaged critical chunk, reads up to
    the cut or the damage (the error is returned so that a non-progressive stream can raise it)."""
    try:
        return read_container(data), None
    except TruncatedError as e:
        if not partial or len(data) < 10:
            raise
        return read_container(data, allow_truncated=True), e
    except ChecksumError as e:
        if not partial or e.offset < 10:
            raise
        return read_container(data[:e.offset], allow_truncated=True), e


def open_stream(data: bytes, *, backend: str = "auto", device: Optional[str] = None,
                limits: Optional[DecodeLimits] = None, level: Optional[int] = None,
                partial: bool = False, priors: Sequence[str] = ()) -> DecodedStream:
    """Parse a ``.nfc`` stream and prepare it for rendering (image or video).

    Args:
        data: the file (a prefix of it with ``partial``).
        backend: ``auto``, ``numpy`` or ``torch`` (format 2.x files decode to the same pixels
            with either; format 1.x files need ``torch``).
        device: torch backend only: ``cpu``, ``cuda`` or ``cuda:N``.
        limits: the decoder's limits (default :data:`DEFAULT_LIMITS`).
        level: a width-chunks stream's level to decode (1-based; default: its last complete one).
        partial: accept a cut width-chunks stream, or one whose damaged chunk comes after its first
            level, and decode the last complete level before the cut (``note`` says so).  Any
            other stream cut or damaged is refused as without it.
        priors: prior files or directories to search first for the prior a ``PRIR`` chunk names
            (then ``$NFC_PRIOR_PATH``, then the packaged priors; :func:`nfcodec.priors.find_prior`).

    Raises:
        BitstreamError: malformed, truncated or corrupted data.
        UnsupportedFeatureError: a wire id or critical chunk this decoder does not support.
        LimitError: the file asks for more than ``limits`` allow.
        ConfigError: an unknown backend or device, or a level the file does not hold.
    """
    limits = limits or DEFAULT_LIMITS
    container, damage = _read(data, partial)
    if damage is not None and not {b"NHDR", b"ARCH"} <= {c.ctype for c in container.chunks}:
        raise damage
    header = StreamHeader.unpack(_one(container, b"NHDR"))
    record = unpack_arch(header.arch, _one(container, b"ARCH"))
    arch = ARCHS.by_id(header.arch)
    rep = REPRESENTATIONS.by_id(header.representation)
    layout = LAYOUTS.by_id(header.layout)
    if damage is not None and not layout.progressive:
        raise damage
    arch.check(record, header)
    _check_consumed(container, rep, layout)
    xfrm = _transform(container)
    try:
        plan = layout.plan(container, header, record, arch, rep)
    except TruncatedError:
        if damage is None:
            raise
        raise type(damage)(f"{_damage_text(damage, len(data))}, before the first level is complete") from None
    if not plan.levels:
        why = _damage_text(damage, len(data))
        raise type(damage)(f"{why}, before level 1 of {plan.total} is complete") if damage else \
            FormatError("stream has no level")
    chosen = plan.pick(level)
    shapes = arch.param_shapes(record)
    _check_limits(arch, record, header, shapes, len(data), limits, legacy=container.version[0] < 2)
    name = choose_backend(backend, container.version, device)
    ops = get_ops(name, device) if container.version[0] >= 2 else None   # a bad device fails before any work
    rec, tensors = layout.network(plan, chosen, record, arch, rep)
    tensors = _with_prior(container, arch, rec, tensors, priors)
    info = describe(container, len(data))
    n_frames, width = layout.extent(plan, chosen, header)
    note = ""
    if damage is not None and level is None:
        note = f"decoded level {chosen.index} of {plan.total}: {_damage_text(damage, len(data))}"
    common = dict(level=chosen.index, levels=plan.total, n_frames=n_frames, out_width=width, note=note, plan=plan,
                  transform=xfrm)
    if ops is None:
        return DecodedStream(header, rec, arch, info, "torch", model=_legacy_model(arch, rec, tensors), **common)
    return DecodedStream(header, rec, arch, info, name, program=layout.build(plan, arch, rec, header, tensors),
                         ops=ops, **common)


def _transform(container: Container) -> Optional[TransformRecord]:
    """The ``XFRM`` record (format.md 3.6, 4d), checked; None without one or for the identity.

    Raises:
        FormatError: a wrong length; FieldRangeError: an unknown transform or a parameter outside its range.
    """
    found = [c for c in container.chunks if c.ctype == b"XFRM"]
    if not found:
        return None
    from .transforms import IDENTITY, check_record

    record = TransformRecord.unpack(found[0].data)
    check_record(record)
    return None if record.transform == IDENTITY else record


def _with_prior(container: Container, arch: ArchSpec, record: Any, tensors: list, paths: Sequence[str]) -> list:
    """``tensors`` plus the prior a ``PRIR`` chunk names (format.md section 4c), or as they are."""
    found = [c for c in container.chunks if c.ctype == b"PRIR"]
    if not found:
        return tensors
    from .priors import find_prior
    from .residual import add_prior

    ref = PriorRef.unpack(found[0].data)
    prior = find_prior(ref.digest, paths)
    if prior.arch != arch.name or prior.record.pack() != record.pack():
        raise FormatError(f"prior {ref.digest.hex()} is for {prior.arch} {prior.record}, the stream's network is "
                          f"{arch.name} {record}")
    return add_prior(prior.tensors, tensors)


def _damage_text(damage: Optional[Exception], nbytes: int) -> str:
    if isinstance(damage, ChecksumError):
        return f"the chunk at byte {damage.offset} is damaged (CRC mismatch)"
    return f"the file ends at byte {nbytes}"


def decode_bytes(data: bytes, **kwargs: Any) -> DecodedImage:
    """Decode a complete ``.nfc`` image stream to an image (``kwargs``: see :func:`open_stream`).

    Raises:
        BitstreamError: malformed, truncated or corrupted data (``FormatError`` for a video).
        UnsupportedFeatureError, LimitError, ConfigError: as :func:`open_stream`.
    """
    stream = open_stream(data, **kwargs)
    if stream.header.media != 0:
        raise FormatError("this stream holds a video: decode it with nfcodec.decode_frames or decode(..., output)")
    return DecodedImage(stream.render(0), stream.info, stream.backend)


def iter_frames(stream: DecodedStream, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Render the given frame indices one at a time: ``(k, (H, W, 3) uint8)``."""
    wanted = list(frames)
    for k in wanted:
        if not 0 <= k < stream.n_frames:
            raise IndexError(f"frame {k} outside [0, {stream.n_frames})")
    return stream.frames(wanted)


def stream_levels(data: bytes) -> list[int]:
    """The end offsets of the levels a prefix ``data`` of a stream can decode, read from the
    container alone (no entropy decoding): a width-chunks stream's complete levels, another
    stream's single level once the whole file is there.  Empty when nothing decodes yet.

    Raises:
        ChecksumError: a damaged critical chunk (the levels before it are what decodes).
    """
    try:
        container = read_container(data, allow_truncated=True)
        types = {c.ctype for c in container.chunks}
        if not {b"NHDR", b"ARCH"} <= types:
            return []
        header = StreamHeader.unpack(_one(container, b"NHDR"))
        record = unpack_arch(header.arch, _one(container, b"ARCH"))
        layout = LAYOUTS.by_id(header.layout)
        if container.truncated and not layout.progressive:
            return []
        plan = layout.plan(container, header, record, ARCHS.by_id(header.arch),
                           REPRESENTATIONS.by_id(header.representation))
    except TruncatedError:
        return []
    return [lv.end for lv in plan.levels]
