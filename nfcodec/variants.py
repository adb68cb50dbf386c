"""Representations and layouts: how a fitted network becomes chunks, and back.

Two registries (one mechanism: :class:`nfcodec.registry.Registry`), whose wire ids come from the
format's id tables (``NHDR.representation``, ``NHDR.layout``; :mod:`nfcodec.bitstream.headers`):

* ``REPRESENTATIONS`` -- what is stored about the weights.  Each is one module of
  :mod:`nfcodec.reps` plus its registration: ``dense`` (0), ``pruned`` (1), ``supermask`` (2).
* ``LAYOUTS`` -- how the stream is split into segments: ``single`` (0, one segment),
  ``width-chunks`` (1, :mod:`nfcodec.widthchunks`: a network that grows in width, one segment
  per level, every prefix of the file decodes its last complete level) and ``tiles`` (2,
  :mod:`nfcodec.tiling`: one small network per tile, all coded together).  A layout turns the
  container into a :class:`Plan` of decodable :class:`Level` s and gives the integer tensors of
  any of them; on the encoder side its ``encode`` produces the file.

A representation has two sides (see :class:`Representation`):

* **decoder** (pure, no torch): ``consumes`` lists the critical chunk types it reads (the
  decoder refuses a stream with any other critical payload chunk); ``materialize`` turns the
  stream's chunks into one :class:`~nfcodec.exact.layers.QTensor` per parameter, checking every
  record header against the architecture's shapes before decoding any entropy-coded word;
  ``describe`` summarises the payload for ``nfc info``;
* **encoder** (torch imported lazily): ``fit_hooks`` plugs the representation into the generic
  fit loop (:mod:`nfcodec.fit`), ``payload`` turns the fitted network into a :class:`Payload`
  (the type between the network and the chunks, which rate control and the RD search work on),
  and ``predicted_bits`` / ``rate_config`` / ``settings`` serve rate control and metadata.

No shared encoder code branches on a representation's name: adding one is a module in
:mod:`nfcodec.reps` and a ``REPRESENTATIONS.register`` call (plus its id in the format's table);
``tests/test_representations.py`` then runs it through every architecture automatically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Protocol, Sequence

import numpy as np

from . import quant
from .bitstream import Chunk, CodedTensor, FormatError, SegmentHeader, encode_tensors, headers
from .exact.layers import QTensor
from .registry import variant_registry

__all__ = ["Representation", "Layout", "Level", "Plan", "Payload", "QuantPayload", "REPRESENTATIONS", "LAYOUTS", "SingleLayout",
           "Shapes", "only_chunk", "step_checked"]

Shapes = Sequence[tuple[int, ...]]


class Payload(Protocol):
    """A fitted network as its representation will store it (encoder side, no torch).

    The quantization-step search (:mod:`nfcodec.rdsearch`) sees ``n_tensors`` searchable
    tensors; a representation without steps (supermask) has none and a fixed size.
    """

    steps: tuple[int, ...]                 # the starting step of each searchable tensor

    @property
    def n_tensors(self) -> int: ...

    def size(self, i: int) -> int: ...

    def max_step(self, i: int) -> int: ...

    def tensor_bytes(self, i: int, step: int) -> int: ...

    def qtensors(self, steps: Sequence[int]) -> list[QTensor]: ...

    def chunks(self, steps: Sequence[int]) -> list[Chunk]: ...


class Representation(Protocol):
    name: str
    wire_id: int                           # set by the registry from the format's id table
    consumes: ClassVar[frozenset[bytes]]

    # decoder side (no torch)
    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk], laws: Sequence[Any]) -> Sequence[QTensor]: ...

    def describe(self, shapes: Shapes, chunks: Sequence[Chunk]) -> dict[str, Any]: ...

    # encoder side
    def fit_hooks(self, config: Any, arch: Any, record: Any, eligible: Any = None) -> Any: ...

    def payload(self, model: Any, fit: Any, arch: Any, record: Any, config: Any) -> Payload: ...

    def predicted_bits(self, shapes: Shapes, config: Any) -> float: ...

    def rate_config(self, config: Any, shapes: Shapes, max_bits: Optional[float]) -> Any: ...

    def settings(self, config: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Level:
    """One decodable level of a stream (a single-layout stream has one).

    Attributes:
        index: 1-based level number.
        width: hidden units of the network at this level (0: the ARCH record's own).
        cover: columns (spatial growing) or frames (temporal growing) it reconstructs; 0: all.
        start: the first hidden unit this level adds.
        chunks: the level's payload chunks (the representation's), in file order.
        begin, end: file offsets of the level's first chunk and one past its last chunk.
    """

    index: int
    width: int
    cover: int
    start: int
    chunks: tuple[Chunk, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Plan:
    """What a (possibly cut) stream can decode: its complete levels, in order.

    Attributes:
        levels: the complete levels (all of them for a whole file).
        total: the levels of the whole stream.
        growing: ``spectral``, ``spatial`` or ``temporal`` (``spectral`` for a single layout).
        psnr: the encoder's PSNR of each level (from the ancillary pSNR chunk), when known.
    """

    levels: tuple[Level, ...]
    total: int
    growing: str = "spectral"
    psnr: tuple[Optional[float], ...] = ()
    extra: Any = None          # layout-specific (the tiles layout's TileGrid)

    def pick(self, level: Optional[int]) -> Level:
        """Level ``level`` (1-based), or the last available one for ``None``."""
        from .errors import ConfigError

        if level is None:
            return self.levels[-1]
        if not 1 <= level <= self.total:
            raise ConfigError(f"level {level} outside [1, {self.total}]: this stream has {self.total} "
                              f"level{'s' if self.total != 1 else ''}")
        if level > len(self.levels):
            raise ConfigError(f"level {level} is not in this file: it holds levels 1 to {len(self.levels)} "
                              f"of {self.total}")
        return self.levels[level - 1]


class Layout(Protocol):
    name: str
    wire_id: int
    consumes: ClassVar[frozenset[bytes]]
    progressive: ClassVar[bool]            # a cut file decodes its complete levels

    # decoder side (no torch)
    def plan(self, container: Any, header: Any, record: Any, arch: Any, rep: Any) -> Plan: ...

    def network(self, plan: Plan, level: Level, record: Any, arch: Any, rep: Any) -> tuple[Any, list[QTensor]]: ...

    def build(self, plan: Plan, arch: Any, record: Any, header: Any, tensors: Sequence[QTensor]) -> Any: ...

    def extent(self, plan: Plan, level: Level, header: Any) -> tuple[int, int]: ...

    # encoder side
    def segments(self, config: Any) -> int: ...

    def encode(self, frames: np.ndarray, media: int, fps: Any, config: Any, **kwargs: Any) -> Any: ...


REPRESENTATIONS = variant_registry("representation", headers.REPRESENTATIONS)
LAYOUTS = variant_registry("layout", headers.LAYOUTS)


def only_chunk(chunks: Sequence[Chunk], ctype: bytes, what: str) -> Chunk:
    found = [c for c in chunks if c.ctype == ctype]
    if len(found) != 1:
        raise FormatError(f"{what} stream needs exactly one {ctype.decode()} chunk, found {len(found)}")
    return found[0]


def step_checked(t: CodedTensor, chunk: str = "TDAT") -> int:
    """The record's step index, which must address the step table (format.md section 5)."""
    if not 0 <= t.step < quant.N_STEPS:
        raise FormatError(f"{chunk} tensor {t.index}: step={t.step} outside the step table [0, {quant.N_STEPS - 1}]")
    return t.step


def _finest_step(values: np.ndarray) -> int:
    top = float(np.abs(values).max()) if values.size else 0.0
    if top == 0.0:
        return quant.N_STEPS - 1
    return max(k for k in range(quant.N_STEPS) if top / quant.STEP_TABLE[k] < 2**15)   # alphabets < 2**16


class QuantPayload:
    """Quantized weights (``dense``, ``pruned``): every tensor has a step to search.

    ``values[i]`` are tensor ``i``'s float values (flat, C order; pruned ones exactly 0) and
    ``masks[i]`` its keep mask (flat bool) or None.  Tensor ``i``'s record codes the kept
    values only; ``chunks`` asks the representation for the chunk list.
    """

    def __init__(self, rep: Any, values: Sequence[np.ndarray], shapes: Shapes, steps: Sequence[int],
                 masks: Sequence[Optional[np.ndarray]] = ()) -> None:
        if len(steps) != len(values):
            raise ValueError(f"{len(steps)} step indices for {len(values)} parameter tensors")
        self.rep, self.shapes, self.steps = rep, [tuple(s) for s in shapes], tuple(steps)
        self.full = [np.asarray(v, dtype=np.float64).ravel() for v in values]
        self.masks = list(masks) + [None] * (len(self.full) - len(masks))
        for i, (v, m) in enumerate(zip(self.full, self.masks)):
            if m is not None and np.asarray(m).size != v.size:
                raise ValueError(f"mask {i} has {np.asarray(m).size} entries, parameter {i} has {v.size}")
        self.kept = [v if m is None else v[np.asarray(m, dtype=bool)] for v, m in zip(self.full, self.masks)]
        self._finest = [_finest_step(v) for v in self.kept]
        self.cap = quant.N_STEPS - 1        # finest step the layout allows (width-chunks: 159)
        self._rate: dict[tuple[int, int], int] = {}

    @property
    def n_tensors(self) -> int:
        return len(self.kept)

    def size(self, i: int) -> int:
        return self.kept[i].size

    def max_step(self, i: int) -> int:
        """The finest step index that keeps tensor ``i``'s symbols below 2**15 (the coder's alphabets
        stay under 2**16) and within ``cap``."""
        return min(self._finest[i], self.cap)

    def coded(self, i: int, step: int) -> CodedTensor:
        return CodedTensor(i, step, quant.quantize(self.kept[i], step))

    def tensor_bytes(self, i: int, step: int) -> int:
        """Bytes of tensor ``i``'s record at ``step`` under the real coder (cached)."""
        key = (i, step)
        if key not in self._rate:
            self._rate[key] = len(encode_tensors([self.coded(i, step)])) - 1   # minus the count varint
        return self._rate[key]

    def qtensors(self, steps: Sequence[int]) -> list[QTensor]:
        return [QTensor(quant.quantize(v, s).astype(np.int64).reshape(shape), s)
                for v, s, shape in zip(self.full, steps, self.shapes)]

    def tdat(self, steps: Sequence[int]) -> Chunk:
        return Chunk(b"TDAT", encode_tensors([self.coded(i, s) for i, s in enumerate(steps)]))

    def chunks(self, steps: Sequence[int]) -> list[Chunk]:
        return self.rep.chunks(self, steps)


class SingleLayout:
    """The whole signal in one segment (no SEGM chunk): one level, the whole file."""

    name = "single"
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"SEGM"})
    progressive: ClassVar[bool] = False
    priors: ClassVar[bool] = True          # weights may be coded against a prior (PRIR)

    def plan(self, container: Any, header: Any, record: Any, arch: Any, rep: Any) -> Plan:
        """At most one SEGM chunk, and it must say "whole segment 0" (format 1.0 allowed it)."""
        chunks = container.chunks
        self.check(chunks)
        payload = tuple(c for c in chunks if c.critical and c.ctype in rep.consumes)
        return Plan((Level(1, 0, 0, 0, payload, payload[0].offset if payload else 0, container.nbytes),), 1)

    def network(self, plan: Plan, level: Level, record: Any, arch: Any, rep: Any) -> tuple[Any, list[QTensor]]:
        return record, list(rep.materialize(arch.param_shapes(record), level.chunks, arch.init_laws(record)))

    def build(self, plan: Plan, arch: Any, record: Any, header: Any, tensors: Sequence[QTensor]) -> Any:
        """The exact program of the network (the architecture's)."""
        return arch.program(record, header, tensors)

    def extent(self, plan: Plan, level: Level, header: Any) -> tuple[int, int]:
        """``(frames, width)`` of the decoded output: the whole signal."""
        return header.frames, header.width

    def segments(self, config: Any) -> int:
        return 1

    def encode(self, frames: np.ndarray, media: int, fps: Any, config: Any, **kwargs: Any) -> Any:
        prior = getattr(getattr(config, "tiles", None), "prior", "")
        if media == 1 and prior and prior != "auto":    # a clip coded from a (NeRV) prior
            from .prior_encoder import encode_single_prior

            return encode_single_prior(frames, media, fps, config, **kwargs)
        from .encoder import encode_single

        return encode_single(frames, media, fps, config, **kwargs)

    def check(self, chunks: Sequence[Chunk]) -> None:
        segs = [c for c in chunks if c.ctype == b"SEGM"]
        if len(segs) > 1:
            raise FormatError(f"layout single: {len(segs)} SEGM chunks, at most one is allowed")
        if segs:
            seg = SegmentHeader.unpack(segs[0].data)
            if (seg.index, seg.kind) != (0, 0):
                raise FormatError(f"layout single: SEGM index {seg.index} kind {seg.kind}, "
                                  "must be segment 0 of kind whole")


LAYOUTS.register(SingleLayout())

from .reps import dense, pruned, supermask  # noqa: E402,F401  (each module registers itself)
from . import widthchunks  # noqa: E402,F401  (registers the width-chunks layout)
from . import tiling  # noqa: E402,F401  (registers the tiles layout)

