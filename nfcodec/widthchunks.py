"""``width-chunks`` (layout 1): a network that grows in width, one segment per level, and a file in
which every prefix decodes its last complete level (Streamable Neural Fields, Cho et al. 2022).

Decoder side only (no torch; the encoders are :mod:`nfcodec.grow`, and for the latent grid, whose
levels add whole latent planes, ``Growth.encode``: :func:`nfcodec.grid_encoder.encode_grid`).
The stream is (format.md 4b)::

    NHDR ARCH GROW [pSNR] [XFRM] SEGM(0) <payload 0> SEGM(1) <payload 1> ... [meTA] NEND

``GROW`` lists each level's width and coverage; level ``k``'s segment is a ``SEGM`` chunk (index
``k - 1``, kind ``width``, units ``[start, stop)``) followed by exactly one chunk of each type the
representation consumes (dense: ``TDAT``; pruned: ``MASK`` and ``TDAT``), coding the parts of the
parameter tensors that its units add (:attr:`nfcodec.archs.Growth.slices`) as if they were the
tensors of a stream of their own.  Weights from newer units into older ones are structural zeros.

The network of level ``k`` is the architecture's network at level ``k``'s width whose tensors
are assembled from the levels ``1..k``: each tensor on the power-of-two step ``2^-E`` (``E`` the
largest step exponent among its parts with a nonzero symbol), every part's symbols multiplied
by their exact integer ratio to it.  Powers of two keep every older unit's activations
bit-identical from level to level, so a level only adds to the output.
"""
from __future__ import annotations

import struct
from dataclasses import replace as dataclass_replace
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from .bitstream import Chunk, FormatError, GrowRecord, SegmentHeader, TruncatedError
from .bitstream.headers import GROWINGS
from .errors import UnsupportedFeatureError
from .exact.layers import QTensor
from .variants import LAYOUTS, Level, Plan

__all__ = ["WidthChunksLayout", "assemble", "whole_tensors", "level_rows", "MAX_PART_STEP", "level_psnr", "pack_psnr", "truncated_file", "sliced_shape"]

#: A part with a nonzero symbol must use a step index below this (steps of at least 2^-20), so the
#: common power-of-two step stays in the table (format.md 4b).
MAX_PART_STEP = 160
_FRAME = frozenset({b"NHDR", b"ARCH", b"GROW", b"XFRM", b"NEND"})
_OVERHEAD = 12


def _end(c: Chunk) -> int:
    return c.offset + len(c.data) + _OVERHEAD


def assemble(shapes: list[tuple[int, ...]], parts: list[list[tuple[tuple[slice, ...], QTensor]]]) -> list[QTensor]:
    """Full tensors from their parts: each on step ``2^-E`` (``E`` = the largest exponent
    ``i // 8 + 4`` of a part with a nonzero symbol), part symbols times ``(16 - i % 8) * 2^(E - e_i)``."""
    out = []
    for t, shape in enumerate(shapes):
        live = [(sl, qt) for sl, qt in parts[t] if qt.q.size and np.any(qt.q)]
        for _, qt in live:
            if qt.step >= MAX_PART_STEP:
                raise FormatError(f"width-chunks tensor {t}: a part with nonzero symbols uses step {qt.step}, "
                                  f"finer than this layout allows (step < {MAX_PART_STEP})")
        big_e = max((qt.step // 8 + 4 for _, qt in live), default=4)
        q = np.zeros(shape, np.int64)
        for sl, qt in live:
            q[sl] = qt.q * ((16 - qt.step % 8) << (big_e - (qt.step // 8 + 4)))
        out.append(QTensor(q, 8 * big_e))          # step(8E) = 2^-E
    return out


def whole_tensors(shapes: list[tuple[int, ...]], parts: list[list[tuple[tuple[slice, ...], QTensor]]]) -> list[QTensor]:
    """Tensors of an architecture whose levels add whole tensors (``Growth.whole``: the grid's
    latent planes): each as its one part codes it, zeros at step 0 where no level has added it."""
    out = []
    for t, shape in enumerate(shapes):
        if len(parts[t]) > 1:
            raise FormatError(f"width-chunks tensor {t}: added by {len(parts[t])} levels, this architecture adds "
                              "each tensor once")
        out.append(parts[t][0][1] if parts[t] else QTensor(np.zeros(shape, np.int64), 0))
    return out


def level_rows(plan: Plan, psnrs: Sequence[float], pixels: int, **extra: Any) -> tuple[dict[str, Any], ...]:
    """``EncodeResult.levels``: per level its width, cover, byte range, the bpp of its prefix and its
    PSNR (``extra`` keys added to every row)."""
    return tuple({"level": lv.index, "width": lv.width, **extra, "cover": lv.cover, "begin": lv.begin, "end": lv.end,
                  "bpp": round(8 * lv.end / pixels, 6), "psnr": round(p, 4)} for lv, p in zip(plan.levels, psnrs))


#: pSNR value meaning "unknown" (and PSNRs of 655.34 dB or more).
PSNR_UNKNOWN = 0xFFFF


def pack_psnr(psnrs: Sequence[Optional[float]]) -> bytes:
    """The ancillary pSNR chunk: one u16 per level, the PSNR in units of 0.01 dB (0xFFFF: unknown)."""
    vals = [PSNR_UNKNOWN if p is None or not p < 655.34 else max(0, round(p * 100)) for p in psnrs]
    return struct.pack(f"<{len(vals)}H", *vals)


def level_psnr(chunks: Any) -> tuple[Optional[float], ...]:
    """The encoder's per-level PSNR from the ancillary pSNR chunk (empty when absent or malformed)."""
    for c in chunks:
        if c.ctype == b"pSNR":
            if len(c.data) % 2:
                return ()
            vals = struct.unpack(f"<{len(c.data) // 2}H", c.data)
            return tuple(None if v == PSNR_UNKNOWN else v / 100 for v in vals)
    return ()


class WidthChunksLayout:
    """Levels of growing width, one segment each; any prefix decodes its last complete level."""

    name = "width-chunks"
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"SEGM", b"GROW"})
    progressive: ClassVar[bool] = True
    priors: ClassVar[bool] = False         # this version codes no level against a prior

    # ------------------------------------------------------------------ decoder
    def grow_record(self, chunks: Any, truncated: bool) -> GrowRecord:
        grows = [c for c in chunks if c.ctype == b"GROW"]
        if len(grows) != 1:
            error = TruncatedError if truncated and not grows else FormatError
            raise error(f"a width-chunks stream needs one GROW chunk, found {len(grows)}"
                        + (" before the cut" if truncated else ""))
        return GrowRecord.unpack(grows[0].data)

    def plan(self, container: Any, header: Any, record: Any, arch: Any, rep: Any) -> Plan:
        growth = arch.growth
        if growth is None:
            raise UnsupportedFeatureError(f"layout width-chunks: architecture {arch.name} does not grow in width "
                                          "(this version grows siren and grid)")
        if not getattr(rep, "growable", False):
            raise UnsupportedFeatureError(f"layout width-chunks: representation {rep.name} is not supported in "
                                          "this layout (dense and pruned are)")
        chunks, truncated = container.chunks, container.truncated
        g = self.grow_record(chunks, truncated)
        self._check_grow(g, header, record, arch)
        levels: list[Level] = []
        seg: Optional[tuple[SegmentHeader, Chunk]] = None
        body: list[Chunk] = []
        seen_grow = False

        def close(final: bool) -> None:
            if seg is None:
                return
            s, c = seg
            have = {b.ctype for b in body}
            if have != rep.consumes:
                if final and truncated:
                    return                      # the level the cut falls in
                missing = ", ".join(sorted(x.decode() for x in rep.consumes - have))
                raise FormatError(f"SEGM {s.index} at offset {c.offset}: the segment lacks {missing}")
            k = s.index
            levels.append(Level(k + 1, g.widths[k], g.covers[k], s.start, tuple(body), c.offset,
                                _end(body[-1])))

        for c in chunks:
            if c.ctype == b"GROW":
                seen_grow = True
            if c.ctype == b"XFRM" and seg is not None:      # every prefix that decodes a level must hold it
                raise FormatError(f"XFRM at offset {c.offset} comes after the first SEGM (a width-chunks stream "
                                  "states its transform before its levels)")
            if c.ctype == b"SEGM":
                if not seen_grow:
                    raise FormatError(f"SEGM at offset {c.offset} comes before the GROW chunk")
                close(False)
                s = SegmentHeader.unpack(c.data)
                k = len(levels)
                if k >= g.levels:
                    raise FormatError(f"SEGM at offset {c.offset}: more segments than the {g.levels} levels of GROW")
                want = (k, 1, g.widths[k - 1] if k else 0, g.widths[k])
                if (s.index, s.kind, s.start, s.stop) != want:
                    raise FormatError(f"SEGM at offset {c.offset}: index {s.index} kind {s.kind} units "
                                      f"[{s.start}, {s.stop}), GROW needs index {want[0]} kind 1 (width) units "
                                      f"[{want[2]}, {want[3]})")
                seg, body = (s, c), []
            elif c.critical and c.ctype not in _FRAME:
                if seg is None:
                    raise FormatError(f"chunk {c.name} at offset {c.offset} comes before the first SEGM")
                if any(b.ctype == c.ctype for b in body):
                    raise FormatError(f"chunk {c.name} at offset {c.offset}: segment {seg[0].index} already has one")
                body.append(c)
        close(True)
        if not truncated and len(levels) != g.levels:
            raise FormatError(f"width-chunks stream has {len(levels)} segments, GROW and NHDR say {g.levels}")
        return Plan(tuple(levels), g.levels, GROWINGS[g.growing], level_psnr(chunks))

    def _check_grow(self, g: GrowRecord, header: Any, record: Any, arch: Any) -> None:
        if header.n_segments != g.levels:
            raise FormatError(f"NHDR.n_segments={header.n_segments} but GROW has {g.levels} levels")
        final = arch.growth.narrow(record, g.widths[-1])
        if final != record:
            raise FormatError(f"GROW: the last level's width {g.widths[-1]} is not the ARCH record's")
        growing = GROWINGS[g.growing]
        if growing == "spatial":
            if not arch.pixelwise:
                raise UnsupportedFeatureError(f"spatial growing needs a pixelwise architecture, not {arch.name}")
            if g.covers[-1] > header.width:
                raise FormatError(f"GROW.cover={g.covers[-1]} columns, the frame has {header.width}")
        if growing == "temporal":
            if header.media != 1:
                raise FormatError("GROW: temporal growing in an image stream")
            if g.covers[-1] > header.frames:
                raise FormatError(f"GROW.cover={g.covers[-1]} frames, the stream has {header.frames}")

    def network(self, plan: Plan, level: Level, record: Any, arch: Any, rep: Any) -> tuple[Any, list[QTensor]]:
        """The record and integer tensors of ``level``'s network (levels 1..k assembled)."""
        growth = arch.growth
        rec = growth.narrow(record, level.width)
        shapes = arch.param_shapes(rec)
        parts: list[list[tuple[tuple[slice, ...], QTensor]]] = [[] for _ in shapes]
        for lv in plan.levels[:level.index]:
            slices = growth.slices(rec, lv.start, lv.width)
            sub = [sliced_shape(shapes[t], sl) for t, sl in slices]
            tensors = rep.materialize(sub, lv.chunks, [])
            for (t, sl), qt in zip(slices, tensors):
                parts[t].append((sl, qt))
        if growth.whole:
            return rec, whole_tensors(shapes, parts)
        return rec, assemble(shapes, parts)

    def build(self, plan: Plan, arch: Any, record: Any, header: Any, tensors: Sequence[QTensor]) -> Any:
        return arch.program(record, header, tensors)

    def extent(self, plan: Plan, level: Level, header: Any) -> tuple[int, int]:
        """``(frames, width)`` the level reconstructs: the first ``cover`` frames (temporal) or
        columns (spatial), everything for spectral growing."""
        if plan.growing == "temporal":
            return level.cover, header.width
        if plan.growing == "spatial":
            return header.frames, level.cover
        return header.frames, header.width

    # ------------------------------------------------------------------ encoder
    def segments(self, config: Any) -> int:
        return len(config.grow.widths)

    def encode(self, frames: np.ndarray, media: int, fps: Any, config: Any, **kwargs: Any) -> Any:
        from .archs import ARCHS
        from .grow import encode_grown

        growth = ARCHS.by_name(config.model.arch).growth
        encode = growth.encode if growth is not None and growth.encode is not None else encode_grown
        return encode(frames, media, fps, config, **kwargs)


def sliced_shape(shape: tuple[int, ...], sl: tuple[slice, ...]) -> tuple[int, ...]:
    """The shape of ``array[sl]`` for an array of ``shape`` (no allocation)."""
    full = tuple(sl) + (slice(None),) * (len(shape) - len(sl))
    return tuple(len(range(*s.indices(n))) for s, n in zip(full, shape))


LAYOUTS.register(WidthChunksLayout())


def truncated_file(data: bytes, *, level: Optional[int] = None, max_bytes: Optional[int] = None) -> bytes:
    """The first ``level`` levels of a width-chunks file (or as many as fit ``max_bytes``) as a
    complete file: NHDR, ARCH and GROW rewritten for ``k`` levels, the pSNR chunk cut to ``k`` rows, XFRM kept,
    the chunks of levels 1..k copied unchanged, NEND.  Its level ``k`` decodes to the same pixels."""
    from .archs import ARCHS
    from .bitstream import unpack_arch, write_container
    from .bitstream.headers import StreamHeader
    from .decoder import _read
    from .errors import ConfigError
    from .variants import REPRESENTATIONS

    container, _ = _read(data, True)
    nhdr = [c for c in container.chunks if c.ctype == b"NHDR"]
    arch_c = [c for c in container.chunks if c.ctype == b"ARCH"]
    if not nhdr or not arch_c:
        raise TruncatedError("the file ends before its NHDR and ARCH chunks")
    header = StreamHeader.unpack(nhdr[0].data)
    layout = LAYOUTS.by_id(header.layout)
    if not isinstance(layout, WidthChunksLayout):
        raise UnsupportedFeatureError(f"only width-chunks files can be truncated; this one has layout {layout.name}")
    arch = ARCHS.by_id(header.arch)
    record = unpack_arch(header.arch, arch_c[0].data)
    plan = layout.plan(container, header, record, arch, REPRESENTATIONS.by_id(header.representation))
    if not plan.levels:
        raise TruncatedError("the file ends before its first level is complete")
    g = layout.grow_record(container.chunks, container.truncated)
    psnrs = level_psnr(container.chunks)

    def build(k: int) -> bytes:
        lv = plan.levels[k - 1]
        head = [Chunk(b"NHDR", dataclass_replace(header, n_segments=k).pack()),
                Chunk(b"ARCH", arch.growth.narrow(record, lv.width).pack()),
                Chunk(b"GROW", GrowRecord(g.growing, g.widths[:k], g.covers[:k]).pack())]
        if psnrs:
            head.append(Chunk(b"pSNR", pack_psnr(psnrs[:k])))
        head += [c for c in container.chunks if c.ctype == b"XFRM"]
        first = plan.levels[0].begin
        body = [c for c in container.chunks
                if first <= c.offset < lv.end and c.ctype not in (b"meTA", b"pSNR")]
        return write_container([*head, *body, Chunk(b"NEND", b"")], version=container.version)

    if level is not None:
        return build(plan.pick(level).index)
    best = None
    for k in range(1, len(plan.levels) + 1):
        out = build(k)
        if len(out) <= max_bytes:
            best = out
    if best is None:
        raise ConfigError(f"max_bytes={max_bytes} is below the smallest file this stream makes "
                          f"({len(build(1))} bytes, level 1)")
    return best
