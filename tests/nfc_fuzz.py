"""A structure-aware fuzz harness for the ``.nfc`` decoder (tests/test_fuzz.py, benchmarks/fuzz.py).

A *case* is one seed file (every golden file: ``tests/golden/v2/*.nfc``, formats 2.0 to 2.7: SIREN
image and video and NeRV, dense, pruned and supermask, width-chunks, tiles, prior-coded (the prior,
``tiny-prior.nfp``, is searched for in that folder by every operation) and XFRM streams;
``tests/golden/tiny*-v1.0.nfc``, format 1.0) with one to
three *mutations* applied to a structured view of it (signature, version, chunks with their
length/type/body/CRC, bytes after ``NEND``, a cut), then serialized.  Cases are a pure function
of ``(seed, index)`` (``make_case``), so any case can be regenerated and replayed.

Mutation kinds (``MUTATORS``; each case draws 1 (60 %), 2 (30 %) or 3 (10 %) of them):

* ``body-flip``, ``body-bytes``, ``body-int``, ``body-resize``: flip bits, set bytes, write an
  interesting integer (0, 1, 255, 65535, 2**24, 2**31-1, 2**32-1, ...) as u8/u16/u32/u64, or
  truncate / extend / splice the body of a chunk, with its CRC recomputed;
* ``stale-crc``: the same (or a damaged CRC field) *without* recomputing the CRC, on a critical
  chunk, or an ancillary chunk inserted with a bad CRC;
* ``drop-chunk``, ``dup-chunk``, ``move-chunk``: chunk order and multiplicity;
* ``insert-critical``: a known critical type (SEED SCAL PRIR XFRM SEGM MASK TDAT NHDR ARCH NEND)
  with a valid record (XFRM: an identity record with a random parameter, or a permute or gamma
  record, mostly in range), a copied or freshly coded payload, or random bytes;
* ``insert-unknown``: an unknown critical type, an unknown ancillary type, or ``meTA``;
* ``chunk-header``: a type that is not 4 letters, or a length field that lies;
* ``cut``, ``append``, ``version``: cut the file, add bytes after ``NEND``, change the version
  bytes or the signature;
* ``nhdr-field``, ``arch-field``: one NHDR / ARCH (SIREN or NeRV record) field set to a boundary or
  interesting value (floats: 0, -0, nan, inf, 1e-3, 1e4, 3.4e38 ...), CRC recomputed;
* ``tdat-symbols``, ``tdat-steps``, ``tdat-records``, ``tdat-model``, ``tdat-raw``: TDAT decoded
  with ``decode_tensors``, then symbols (huge values, offsets, constants), step indices (0 .. 255,
  192+ are invalid), tensor count / order / index / ``n``, or the entropy model changed and the
  payload re-encoded with ``encode_tensors``; or hand-written records (non-minimal / overlong
  varints, unknown model ids, huge ``n``, ``K``, ``n_words``, random ANS words);
* ``mask-edit``: MASK decoded with ``decode_masks``: bits flipped (optionally with TDAT fixed up to
  the new popcount, so it still decodes), coder changed, masks re-coded with the ``context`` coder
  in short rows (1, 2, 3 ... bits), masks added, dropped or re-indexed, raw heads;
* ``representation``: an exact dense <-> pruned conversion (same weights, so the same pixels);
* ``rearch``: a *coherent* new geometry: NHDR size / frames, a random valid SIREN or NeRV record,
  and freshly generated TDAT (and MASK) payloads of exactly the record's shapes, so the file gets
  past every structural check and renders an unusual network (frame cost kept under a budget,
  ``Budget``; a ``big_share`` of them probe the decoder's own limits: frame sizes chosen to cost
  20-100 % of its per-frame work limit, up to 2**25 parameters, constant masks coded with the
  ``context`` coder in rows of one bit).

Each case runs in a *worker subprocess* (``python tests/nfc_fuzz.py worker``; one worker runs the
cases one after the other and is restarted after a crash, a timeout or a MemoryError) with these
operations, each recorded separately:

* ``probe``: ``nfcodec.probe(data)``; ``probe-lenient``: the same with ``allow_truncated=True``;
* ``numpy`` and ``torch``: ``open_stream(data, backend=...)`` then render the first
  ``min(2, frames)`` frames (each must be an ``(H, W, 3)`` uint8 array), default decoder limits;
* ``reference``: for format 2.x files the numpy backend rendered, and cheap enough
  (``REFERENCE_MACS``), the same frames from the independent implementation of the spec,
  ``tests/exact_reference.py`` (its own exceptions are recorded as ``REF-ERROR:...``, not failures:
  it is test code that assumes a valid file);
* ``api``: ``nfcodec.decode(data)`` (default backend), for images only (per the probe).

Outcome of an operation: ``info`` (a probe that succeeded), ``pixels`` (a decode that rendered),
or the class name of a *typed* refusal: an instance of ``nfcodec.bitstream.errors.BitstreamError``
or ``nfcodec.errors.NFCodecError`` (classified by these base classes, not by ``ValueError``:
``FormatError`` is both).  Anything else is a FAILURE: any other exception (ValueError,
IndexError, KeyError, OverflowError, ZeroDivisionError, struct.error, TypeError, RuntimeError,
RecursionError, MemoryError, AssertionError, ...) with its traceback; a frame of the wrong shape
or dtype; for a format 2.x file, numpy and torch pixels that differ, one backend rendering what the
other refuses, pixels that differ from the reference decoder's, or ``nfcodec.decode`` differing
from them; ``timeout`` (the worker is killed when a
single operation takes longer than the timeout); ``crash`` (the worker died: a signal, the kernel's
OOM killer).  A case's *outcome* is ``FAIL:<kind>`` if it has a failure, else the outcome of the
backend ``auto`` would pick (numpy for major version 2, torch otherwise).

Oracles: when a case has exactly one mutation whose effect is known, the expected outcome is
checked too (a violation is a failure of kind ``oracle``): a stale CRC on a critical chunk must
give ``ChecksumError`` everywhere; a cut file ``TruncatedError``; bytes after NEND ``FormatError``;
an unknown major version ``UnsupportedVersionError``; a damaged signature ``BadSignatureError``; a
bad chunk type ``FormatError``; an unknown critical chunk ``UnknownCriticalChunkError``; an
unconsumed known critical chunk ``UnsupportedFeatureError`` (a second SEED or SCAL in a stream that
uses one: ``FormatError``); an XFRM record with an identity or gamma parameter out of its range
``FieldRangeError`` (XFRM is read by every stream); and the *same outcomes and pixels as
the seed* for an inserted ancillary chunk (valid or bad CRC), a new minor version, a ``SEGM``
whole-segment chunk after ARCH, a TDAT re-coded with another entropy model, masks re-coded with
another coder or an all-ones mask added, and an exact dense <-> pruned conversion.

Memory cap and timeout.  The worker sets ``RLIMIT_AS`` (address space) to ``DEFAULT_MEM_CAP`` =
4 GiB before importing anything.  Measured on the dev machine (2 cores, 23 GiB): a worker that has
imported numpy, constriction and torch (CPU build: no CUDA context, so it reserves little address
space and ``RLIMIT_AS`` is practical) and decoded every seed with both backends peaks at about
1.0 GiB of address space (``VmPeak``; 0.4 GiB resident), and the 15000-case run peaked at 2.9 GiB
``VmPeak`` / 2.3 GiB ``ru_maxrss``.  The default decoder limits allow 2 GiB of working memory per
frame plus up to 2**25 parameters, so a file within the limits fits under 4 GiB, and one that
blows past its declared cost fails with ``MemoryError`` (a failure) instead of swapping the
machine.  The timeout (``DEFAULT_TIMEOUT`` = 20 s) applies to each operation of a case (the worker
reports each one as it starts: a probe, one backend's decode of at most two frames, ...) and is
enforced by the parent, which kills the worker's process group (a SIGALRM in the worker would not
interrupt a long BLAS call or a C loop); a seed's operations take about 10 ms, so what exceeds
20 s is a hang or a file whose cost the limits let through (the failure message then describes
the file: geometry, parameters, work per frame against the limit, mask coders and row counts).
The worker runs torch with one thread: with two OpenMP threads on the loaded 2-core machine a
1 ms NeRV decode took 0.5 s (threads spinning for a core), which made every timing meaningless.
The torch operation's timeout is ``OP_TIMEOUT_FACTOR["torch"]`` = 3 times longer: the decoder's
work limit bounds the default numpy backend to about 8 s per frame, and torch on the CPU is 2-4x
slower on the same frame (bounded, but slower).

Known failures: ``KNOWN_FAILURES`` can list reported, unfixed decoder bugs by a predicate; they
are still failures (counted, saved, exit status 1) but ``tests/test_fuzz.py`` only fails on
*other* ones.  It is empty: the bugs this harness found were fixed (see tests/test_fuzz.py).

Command line (reproduction)::

    python tests/nfc_fuzz.py replay FILE.nfc          # run the ops in-process, print tracebacks
    python tests/nfc_fuzz.py case --seed S --index I --out FILE.nfc   # regenerate case I of seed S
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import pickle
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOLDEN = HERE / "golden"

for _p in (str(HERE), str(REPO)):  # the worker runs this file as a script
    if _p not in sys.path:
        sys.path.insert(1, _p)

from nfcodec.bitstream import (  # noqa: E402  (numpy + constriction only: no torch in the parent)
    CodedTensor,
    NervArch,
    SegmentHeader,
    SeedRecord,
    SirenArch,
    StreamHeader,
    TransformRecord,
    decode_tensors,
    encode_tensors,
    iter_chunks,
    write_uvarint,
    zigzag,
)
from nfcodec.bitstream.masks import MASK_CODERS, CodedMask, decode_masks, encode_masks  # noqa: E402

__all__ = [
    "SEED_FILES", "MUTATORS", "DEFAULT_MEM_CAP", "DEFAULT_TIMEOUT", "Budget", "Case", "make_case",
    "evaluate", "classify", "Runner", "run_campaign", "format_report", "save_failure", "describe_cost",
    "context_rows_file", "KNOWN_FAILURES",
]

SIGNATURE = b"\x89NFC\r\n\x1a\n"
#: Seed files: every architecture x representation of format 2.0, and the two format 1.0 files.
SEED_FILES: tuple[Path, ...] = tuple(sorted((GOLDEN / "v2").glob("*.nfc"))) + (
    GOLDEN / "tiny-v1.0.nfc", GOLDEN / "tiny-video-v1.0.nfc")
DEFAULT_MEM_CAP = 4 << 30
DEFAULT_TIMEOUT = 20.0
#: The decoder's work limit is calibrated on its default numpy backend (about 8 s per frame at the
#: limit on 2 cores); the torch CPU backend runs the same arithmetic 2-4x slower (docs/cli.md),
#: and more on the worker's single torch thread, so its operation gets a longer timeout.
OP_TIMEOUT_FACTOR = {"torch": 3}
OPS = ("probe", "probe-lenient", "numpy", "torch", "reference", "api")
#: The independent reference decoder (tests/exact_reference.py, int64 numpy, slow) runs on format
#: 2.x inputs the numpy backend rendered when they cost at most this many multiply-adds.
REFERENCE_MACS = 2**26
#: Where every operation looks for the priors that PRIR chunks name (the prior-coded seed files' prior).
PRIOR_DIR = GOLDEN / "v2"
KNOWN_CRITICAL = (b"NHDR", b"ARCH", b"SEGM", b"TDAT", b"MASK", b"SEED", b"SCAL", b"PRIR", b"XFRM", b"NEND")
STRICT_OPS = ("probe", "numpy", "torch", "api")

INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096, 4097,
               32767, 32768, 65535, 65536, 2**20, 2**24, 2**24 + 1, 2**26, 2**31 - 1, 2**31, 2**32 - 1)
INTERESTING_FLOATS = (0.0, -0.0, 1e-45, 1e-3, 0.000999, 0.5, 1.0, -1.0, 2.0, 3.999, 4.0, 4.0001, 30.0, 1e4,
                      10000.001, 1e5, 3.4e38, math.inf, -math.inf, math.nan)
INTERESTING_SYMBOLS = (0, 1, -1, 2, 127, -128, 2**15, -(2**15), 2**19, 2**20 - 1, 2**20, -(2**20), 2**23,
                       2**24, 2**26, 2**30, 2**31 - 1, -(2**31))


# ======================================================================= the structured file


@dataclass
class RawChunk:
    """One chunk as it will be written: ``crc`` / ``length`` None mean computed from the body."""

    ctype: bytes
    body: bytes
    crc: Optional[int] = None
    length: Optional[int] = None

    def true_crc(self) -> int:
        return zlib.crc32(self.ctype + self.body)

    def current_crc(self) -> int:
        return self.true_crc() if self.crc is None else self.crc

    def to_bytes(self) -> bytes:
        length = len(self.body) if self.length is None else self.length
        return struct.pack("<I", length & 0xFFFFFFFF) + self.ctype + self.body + struct.pack(
            "<I", self.current_crc() & 0xFFFFFFFF)


@dataclass
class Doc:
    """A file as mutators see it; ``to_bytes`` applies ``tail`` (after NEND) and ``cut`` last."""

    signature: bytes
    version: bytes
    chunks: list[RawChunk]
    tail: bytes = b""
    cut: Optional[int] = None

    def to_bytes(self) -> bytes:
        data = self.signature + self.version + b"".join(c.to_bytes() for c in self.chunks) + self.tail
        return data if self.cut is None else data[: self.cut]

    def index_of(self, ctype: bytes) -> list[int]:
        return [i for i, c in enumerate(self.chunks) if c.ctype == ctype]

    def copy(self) -> "Doc":
        return Doc(self.signature, self.version, [dataclasses.replace(c) for c in self.chunks], self.tail, self.cut)


def parse_doc(data: bytes) -> Doc:
    """A valid file's structured view (seed files only)."""
    chunks = [RawChunk(c.ctype, c.data) for c, _ in iter_chunks(data)]
    return Doc(data[:8], data[8:10], chunks)


@dataclass
class SeedInfo:
    """A seed file and what mutators need to know about it (decoded once, in the parent)."""

    name: str
    data: bytes
    doc: Doc
    header: StreamHeader
    record: Any
    shapes: list[tuple[int, ...]]

    @property
    def major(self) -> int:
        return self.data[8]


@functools.lru_cache(maxsize=None)
def load_seeds() -> tuple[SeedInfo, ...]:
    from nfcodec.archs import ARCHS
    from nfcodec.bitstream import unpack_arch

    out = []
    for path in SEED_FILES:
        data = path.read_bytes()
        doc = parse_doc(data)
        header = StreamHeader.unpack(doc.chunks[doc.index_of(b"NHDR")[0]].body)
        record = unpack_arch(header.arch, doc.chunks[doc.index_of(b"ARCH")[0]].body)
        shapes = ARCHS.by_id(header.arch).param_shapes(record)
        name = path.name if path.parent.name == "golden" else f"{path.parent.name}/{path.name}"
        out.append(SeedInfo(name, data, doc, header, record, shapes))
    return tuple(out)


# ======================================================================= mutation helpers


@dataclass
class Budget:
    """How expensive a coherent (``rearch``) geometry may be: work (multiply-add equivalents, as the
    decoder's limit counts it) and pixels of one frame
    (the float32 renderer of format 1.x files costs per pixel too), with a ``big_share`` of cases
    allowed up to ``big_frame_macs`` and any size (2**38 is the decoder's own limit)."""

    frame_macs: int = 2**28
    frame_pixels: int = 2**20
    big_share: float = 0.0
    big_frame_macs: int = 2**38


@dataclass
class Ctx:
    """What one mutation may use: the random sources, the seed and the budget; ``expect`` is set
    by a mutation whose effect is known (checked only when it is the case's only mutation)."""

    rng: random.Random
    nrng: np.random.Generator
    seed: SeedInfo
    budget: Budget
    expect: Any = None


def _uvarint(n: int) -> bytes:
    return write_uvarint(n)


def _svarint(v: int) -> bytes:
    return write_uvarint(zigzag(v))


def _pick(rng: random.Random, doc: Doc, types: Optional[Iterable[bytes]] = None,
          nonempty: bool = False) -> Optional[int]:
    wanted = None if types is None else set(types)
    idx = [i for i, c in enumerate(doc.chunks)
           if (wanted is None or c.ctype in wanted) and (not nonempty or c.body)]
    return rng.choice(idx) if idx else None


def _interesting_int(rng: random.Random) -> int:
    v = rng.choice(INTERESTING)
    return max(0, v + rng.choice((0, 0, 0, -1, 1)))


def _pristine(doc: Doc, seed: SeedInfo) -> bool:
    """True while the doc is still the seed (the first mutation of a case)."""
    return doc.to_bytes() == seed.data


def _flip_bits(rng: random.Random, body: bytes, count: int) -> bytes:
    b = bytearray(body)
    for _ in range(count):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _damage_body(rng: random.Random, body: bytes) -> bytes:
    """Some change to a body (never a no-op)."""
    for _ in range(8):
        how = rng.choice(("flip", "bytes", "resize") if body else ("resize",))
        if how == "flip":
            new = _flip_bits(rng, body, rng.choice((1, 1, 2, 4)))
        elif how == "bytes":
            b = bytearray(body)
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            new = bytes(b)
        else:
            new = _resize(rng, body)[0]
        if new != body:
            return new
    return body + b"\x00"


def _resize(rng: random.Random, body: bytes) -> tuple[bytes, str]:
    n = len(body)
    how = rng.choice(("truncate", "extend", "zeros", "splice-in", "delete") if n else ("extend", "zeros"))
    if how == "truncate":
        k = rng.choice((0, n - 1, rng.randrange(n)))
        return body[:k], f"truncated to {k} of {n} bytes"
    if how == "extend":
        extra = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16, 64))))
        return body + extra, f"extended by {len(extra)} random bytes"
    if how == "zeros":
        k = rng.choice((1, 3, 8, 100))
        return body + bytes(k), f"extended by {k} zero bytes"
    if how == "splice-in":
        at = rng.randrange(n + 1)
        extra = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 9))))
        return body[:at] + extra + body[at:], f"{len(extra)} random bytes inserted at {at}"
    at = rng.randrange(n)
    k = rng.choice((1, 2, 4, 16))
    return body[:at] + body[at + k:], f"{k} bytes deleted at {at}"


def _field_offsets(cls: type) -> dict[str, tuple[int, str]]:
    out, pos = {}, 0
    for f in cls.FIELDS:
        out[f.name] = (pos, f.fmt)
        pos += struct.calcsize("<" + f.fmt)
    return out


def _set_field(body: bytes, cls: type, name: str, value: Any) -> bytes:
    """Write one record field (no validation; ints are masked to the field width)."""
    off, fmt = _field_offsets(cls)[name]
    size = struct.calcsize("<" + fmt)
    if len(body) < off + size:
        body = body + bytes(off + size - len(body))
    if fmt in ("f", "d"):
        raw = struct.pack("<" + fmt, value)
    else:
        raw = struct.pack("<" + fmt, int(value) & ((1 << (8 * size)) - 1))
    return body[:off] + raw + body[off + size:]


def _field_candidates(rng: random.Random, f: Any) -> Any:
    if f.kind == "float":
        cands = list(INTERESTING_FLOATS)
        if f.lo is not None:
            cands += [f.lo, f.hi, float(np.nextafter(np.float32(f.lo), np.float32(-np.inf))),
                      float(np.nextafter(np.float32(f.hi), np.float32(np.inf))), rng.uniform(f.lo, f.hi)]
        return rng.choice(cands)
    if f.kind == "bytes":
        return None
    cands = [_interesting_int(rng)]
    if f.table is not None:
        keys = sorted(f.table)
        cands += [keys[-1] + 1, rng.choice(keys), 255]
    else:
        cands += [f.lo - 1, f.lo, f.hi, f.hi + 1, rng.randint(f.lo, min(f.hi, f.lo + 64)), rng.randint(f.lo, f.hi)]
    return rng.choice(cands)


def _arch_class(doc: Doc, seed: SeedInfo) -> type:
    nh = doc.index_of(b"NHDR")
    arch = seed.header.arch
    if nh and len(doc.chunks[nh[0]].body) == 25:
        arch = doc.chunks[nh[0]].body[20]
    return NervArch if arch == 1 else SirenArch


@functools.lru_cache(maxsize=256)
def _tensors_of(body: bytes) -> Optional[tuple[CodedTensor, ...]]:
    try:
        return tuple(decode_tensors(body, max_symbols=2**22))
    except Exception:  # noqa: BLE001  (a payload an earlier mutation broke: not applicable)
        return None


@functools.lru_cache(maxsize=256)
def _masks_of(body: bytes) -> Optional[tuple[CodedMask, ...]]:
    try:
        return tuple(decode_masks(body, max_bits=2**22))
    except Exception:  # noqa: BLE001
        return None


_RECORDS: dict[tuple, bytes] = {}


def _record_bytes(t: CodedTensor, models: Optional[Sequence[str]] = None) -> bytes:
    """One TDAT record (``encode_tensors`` of one tensor, without its count byte); memoized, since
    most mutations re-encode a payload in which one tensor changed."""
    key = (t.index, t.step, t.symbols.tobytes(), None if models is None else tuple(models))
    rec = _RECORDS.get(key)
    if rec is None:
        rec = encode_tensors([t], models=models)[1:]
        if len(_RECORDS) > 4096:
            _RECORDS.clear()
        _RECORDS[key] = rec
    return rec


def _const_record(index: int, step: int, n: int, value: int = 0) -> bytes:
    return _uvarint(index) + bytes([step & 0xFF]) + _uvarint(n) + b"\x00" + _svarint(value) + _uvarint(0)


def _encode_payload(tensors: Sequence[CodedTensor], models: Optional[Sequence[str]] = None,
                    count: Optional[int] = None) -> bytes:
    """A TDAT payload; a tensor no model can code (span > 2**16) becomes a const record."""
    recs = []
    for t in tensors:
        try:
            recs.append(_record_bytes(t, models))
        except ValueError:
            v = int(t.symbols[0]) if t.symbols.size else 0
            recs.append(_const_record(t.index, t.step, t.symbols.size, v))
    return _uvarint(len(tensors) if count is None else count) + b"".join(recs)


def _tdat_index(doc: Doc, rng: random.Random) -> Optional[tuple[int, tuple[CodedTensor, ...]]]:
    idx = [i for i in doc.index_of(b"TDAT") if _tensors_of(doc.chunks[i].body) is not None]
    if not idx:
        return None
    i = rng.choice(idx)
    return i, _tensors_of(doc.chunks[i].body)


def _set_body(doc: Doc, i: int, body: bytes) -> None:
    doc.chunks[i] = RawChunk(doc.chunks[i].ctype, body)


# ======================================================================= mutators
# Each takes (ctx, doc), edits doc in place and returns a description, or None when it does not
# apply to this doc (another kind is drawn then).


def mut_body_flip(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc, nonempty=True)
    if i is None:
        return None
    c = doc.chunks[i]
    k = ctx.rng.choice((1, 1, 2, 3, 8))
    _set_body(doc, i, _flip_bits(ctx.rng, c.body, k))
    return f"{c.ctype!r}#{i}: {k} bit flips, CRC recomputed"


def mut_body_bytes(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc, nonempty=True)
    if i is None:
        return None
    b = bytearray(doc.chunks[i].body)
    where = []
    for _ in range(ctx.rng.choice((1, 1, 2, 4))):
        j = ctx.rng.randrange(len(b))
        b[j] = ctx.rng.choice((0, 1, 0x7F, 0x80, 0xFE, 0xFF, ctx.rng.randrange(256)))
        where.append(f"{j}={b[j]}")
    ctype = doc.chunks[i].ctype
    _set_body(doc, i, bytes(b))
    return f"{ctype!r}#{i}: bytes {', '.join(where)}, CRC recomputed"


def mut_body_int(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc, nonempty=True)
    if i is None:
        return None
    body = doc.chunks[i].body
    width = ctx.rng.choice((1, 2, 4, 8))
    v = _interesting_int(ctx.rng) & ((1 << (8 * width)) - 1)
    off = ctx.rng.randrange(len(body))
    raw = v.to_bytes(width, "little")
    new = body[:off] + raw + body[off + width:]
    new = new[: max(len(body), off + width)]
    ctype = doc.chunks[i].ctype
    _set_body(doc, i, new)
    return f"{ctype!r}#{i}: u{8 * width} {v} at {off}, CRC recomputed"


def mut_body_resize(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc)
    if i is None:
        return None
    new, what = _resize(ctx.rng, doc.chunks[i].body)
    ctype = doc.chunks[i].ctype
    _set_body(doc, i, new)
    return f"{ctype!r}#{i}: {what}, CRC recomputed"


def mut_stale_crc(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    if ctx.rng.random() < 0.25 and len(doc.chunks) >= 2:
        # an ancillary chunk with a bad CRC: a reader skips it
        ctype = ctx.rng.choice((b"meTA", b"zzZz", b"abcD", b"tEXt"))
        body = ctx.rng.choice((b'{"encoder": "fuzz"}', bytes(ctx.rng.randrange(256) for _ in range(20)), b""))
        at = ctx.rng.randrange(1, len(doc.chunks))
        chunk = RawChunk(ctype, body)
        chunk.crc = chunk.true_crc() ^ (1 << ctx.rng.randrange(32))
        doc.chunks.insert(at, chunk)
        if pristine:
            ctx.expect = "baseline"
        return f"ancillary {ctype!r} with a bad CRC inserted at {at}"
    idx = [i for i, c in enumerate(doc.chunks) if c.ctype[:1].isupper()]
    if not idx:
        return None
    i = ctx.rng.choice(idx)
    c = doc.chunks[i]
    old = c.current_crc()
    if ctx.rng.random() < 0.3:
        c.crc = old ^ (1 << ctx.rng.randrange(32))
        what = "CRC field damaged"
    else:
        c.body = _damage_body(ctx.rng, c.body)
        c.crc = old
        what = "body changed, old CRC kept"
    if pristine:
        ctx.expect = {op: "ChecksumError" for op in OPS}
    return f"{c.ctype!r}#{i}: {what}"


def mut_drop_chunk(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc)
    if i is None:
        return None
    c = doc.chunks.pop(i)
    return f"dropped {c.ctype!r}#{i}"


def mut_dup_chunk(ctx: Ctx, doc: Doc) -> Optional[str]:
    i = _pick(ctx.rng, doc)
    if i is None:
        return None
    at = ctx.rng.choice((i + 1, ctx.rng.randrange(len(doc.chunks) + 1)))
    doc.chunks.insert(at, dataclasses.replace(doc.chunks[i]))
    return f"duplicated {doc.chunks[at].ctype!r}#{i} at {at}"


def mut_move_chunk(ctx: Ctx, doc: Doc) -> Optional[str]:
    if len(doc.chunks) < 2:
        return None
    if ctx.rng.random() < 0.5:
        i, j = ctx.rng.sample(range(len(doc.chunks)), 2)
        doc.chunks[i], doc.chunks[j] = doc.chunks[j], doc.chunks[i]
        return f"swapped chunks {i} and {j}"
    i = ctx.rng.randrange(len(doc.chunks))
    c = doc.chunks.pop(i)
    j = ctx.rng.randrange(len(doc.chunks) + 1)
    doc.chunks.insert(j, c)
    return f"moved {c.ctype!r} from {i} to {j}"


def _plausible_body(ctx: Ctx, doc: Doc, ctype: bytes) -> tuple[bytes, str]:
    rng = ctx.rng
    if rng.random() < 0.25:
        n = rng.choice((0, 1, 5, 9, 11, 13, 25, 32, 35, 64))
        return bytes(rng.randrange(256) for _ in range(n)), f"{n} random bytes"
    if ctype == b"SEED":
        return SeedRecord(rng=0, seed=rng.getrandbits(64)).pack(), "valid record"
    if ctype == b"PRIR":
        return bytes(rng.randrange(256) for _ in range(32)), "32-byte digest"
    if ctype == b"XFRM":
        transform = rng.choice((0, 0, 1, 2))
        if transform == 0:
            return TransformRecord(transform=0, param=rng.getrandbits(32)).pack(), "valid record"
        if transform == 1:
            return TransformRecord(transform=1, param=rng.getrandbits(32)).pack(), "permute record"
        param = rng.choice((250, 1000, 1500, 2000, 4000, 249, 4001, rng.randrange(5000)))
        return TransformRecord(transform=2, param=param).pack(), f"gamma record {param}"
    if ctype == b"SEGM":
        kind = rng.choice((0, 0, 1, 2))
        start = 0 if kind == 0 else rng.choice((0, 1, 5))
        stop = 0 if kind == 0 else start + rng.choice((1, 2, 2**31))
        index = rng.choice((0, 0, 1, 65535))
        return SegmentHeader(index=index, kind=kind, start=start, stop=stop).pack(), f"SEGM {index} kind {kind}"
    if ctype in (b"TDAT", b"SCAL"):
        found = doc.index_of(b"TDAT")
        if found and rng.random() < 0.5:
            return doc.chunks[rng.choice(found)].body, "copy of a TDAT body"
        ts = [CodedTensor(i, rng.randrange(192), ctx.nrng.integers(-3, 4, rng.choice((0, 1, 5, 40))))
              for i in range(rng.choice((0, 1, 2)))]
        return _encode_payload(ts), f"{len(ts)} fresh tensors"
    if ctype == b"MASK":
        found = doc.index_of(b"MASK")
        if found and rng.random() < 0.5:
            return doc.chunks[rng.choice(found)].body, "copy of a MASK body"
        ms = [CodedMask(i, ctx.nrng.random(rng.choice((1, 8, 40))) < 0.5) for i in sorted(rng.sample(range(6), 2))]
        return encode_masks(ms if rng.random() < 0.7 else []), "fresh masks"
    if ctype == b"NEND":
        return b"", "empty"
    if ctype in (b"NHDR", b"ARCH"):
        found = doc.index_of(ctype)
        if found:
            return doc.chunks[found[0]].body, f"copy of {ctype.decode()}"
    return bytes(rng.randrange(256) for _ in range(8)), "8 random bytes"


def _reads_priors(doc: Doc) -> bool:
    """Whether the stream's representation and layout read PRIR (dense or pruned; single or tiles)."""
    try:
        h = StreamHeader.unpack(doc.chunks[doc.index_of(b"NHDR")[0]].body)
    except Exception:  # noqa: BLE001 - a mutated header: no oracle
        return True
    return h.representation in (0, 1) and h.layout in (0, 2)


def mut_insert_critical(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    ctype = ctx.rng.choice((b"SEED", b"SCAL", b"PRIR", b"XFRM", b"SEGM", b"SEGM", b"MASK", b"TDAT", b"NHDR",
                            b"ARCH", b"NEND"))
    body, what = _plausible_body(ctx, doc, ctype)
    n = len(doc.chunks)
    used = bool(doc.index_of(ctype))      # a type the stream already uses (supermask: SEED, SCAL)
    at = ctx.rng.choice((2, ctx.rng.randrange(1, n), ctx.rng.randrange(n + 1))) if n >= 2 else 0
    doc.chunks.insert(at, RawChunk(ctype, body))
    if pristine and 1 <= at < n:
        if used and ctype in (b"SEED", b"SCAL"):       # a second one: "needs exactly one"
            ctx.expect = {"numpy": "FormatError", "torch": "FormatError", "api": "FormatError", "probe": "info",
                          "probe-lenient": "info"}
        elif ctype == b"PRIR" and _reads_priors(doc):
            pass                    # consumed (format 2.3): the prior it names is not found, or the record is bad
        elif ctype == b"XFRM":      # read by every stream (format 2.3, 4d); a second one: the container refuses
            param = int.from_bytes(body[1:5], "little") if len(body) == 5 else None
            if not used and param is not None and (body[0] == 0 and param != 0 or body[0] == 2 and
                                                   not 250 <= param <= 4000):
                ctx.expect = {"numpy": "FieldRangeError", "torch": "FieldRangeError", "api": "FieldRangeError",
                              "probe": "info", "probe-lenient": "info"}
        elif ctype in (b"SEED", b"SCAL", b"PRIR", b"XFRM") and not (ctype in (b"PRIR", b"XFRM") and len(body) == 0):
            ctx.expect = {"numpy": "UnsupportedFeatureError", "torch": "UnsupportedFeatureError",
                          "api": "UnsupportedFeatureError", "probe": "info", "probe-lenient": "info"}
        elif ctype == b"SEGM" and at == 2 and body == SegmentHeader(0, 0, 0, 0).pack():
            ctx.expect = "baseline"
    return f"inserted critical {ctype!r} ({what}, {len(body)} bytes) at {at}"


def _random_letters(rng: random.Random, first_upper: bool) -> bytes:
    while True:
        s = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(4))
        s = (s[0].upper() if first_upper else s[0].lower()) + s[1:]
        if s.encode() not in KNOWN_CRITICAL and s != "meTA":
            return s.encode()


def mut_insert_unknown(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    rng = ctx.rng
    kind = rng.choice(("critical", "ancillary", "meta", "meta"))
    if kind == "critical":
        ctype = _random_letters(rng, True)
    elif kind == "ancillary":
        ctype = _random_letters(rng, False)
    else:
        ctype = b"meTA"
    body = rng.choice((
        b"", b"{}", json.dumps({"encoder": "fuzz", "x": [1, 2, 3]}).encode(), b"\xff\xfe not utf-8 {",
        bytes(rng.randrange(256) for _ in range(rng.choice((1, 16, 300)))),
    ))
    n = len(doc.chunks)
    at = rng.choice((1, rng.randrange(1, n), rng.randrange(n + 1))) if n >= 2 else 0
    doc.chunks.insert(at, RawChunk(ctype, body))
    if pristine and 1 <= at < n:
        if kind == "critical":
            ctx.expect = {op: "UnknownCriticalChunkError" for op in OPS}
        else:
            ctx.expect = "baseline"
    return f"inserted {kind} {ctype!r} ({len(body)} bytes) at {at}"


def mut_chunk_header(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    i = _pick(ctx.rng, doc)
    if i is None:
        return None
    c = doc.chunks[i]
    if ctx.rng.random() < 0.4:
        t = bytearray(c.ctype)
        t[ctx.rng.randrange(4)] = ctx.rng.choice((0x00, 0x20, 0x31, 0x40, 0x5B, 0x60, 0x7B, 0xC1, 0xFF))
        old = c.ctype
        c.ctype = bytes(t)
        if pristine:
            ctx.expect = {op: "FormatError" for op in OPS}
        return f"chunk #{i} type {old!r} -> {c.ctype!r}"
    true = len(c.body)
    c.length = ctx.rng.choice((true + 1, true - 1, true + 4, true - 4, true + 12, 0, 2**31 - 1, 2**31,
                               2**32 - 1, true + 2**16, true * 2 + 1))
    c.length &= 0xFFFFFFFF
    if pristine and c.length > 2**31 - 1:
        ctx.expect = {op: "FormatError" for op in OPS}
    return f"chunk #{i} {c.ctype!r} length field {true} -> {c.length}"


def mut_cut(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    size = len(doc.to_bytes())
    if size <= 1:
        return None
    bounds, pos = [], 10
    for c in doc.chunks:
        bounds.append(pos)
        pos += len(c.to_bytes())
    at = ctx.rng.choice((ctx.rng.randrange(size), ctx.rng.randrange(12), max(0, ctx.rng.choice(bounds) +
                         ctx.rng.choice((-1, 0, 1, 8))), size - 1, size - 4))
    at = max(0, min(size - 1, at))
    doc.cut = at if doc.cut is None else min(doc.cut, at)
    if pristine:
        ctx.expect = {op: "TruncatedError" for op in STRICT_OPS}
    return f"cut at {at} of {size} bytes"


def mut_append(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    how = ctx.rng.choice(("random", "zeros", "nend", "chunk", "file"))
    if how == "random":
        extra = bytes(ctx.rng.randrange(256) for _ in range(ctx.rng.choice((1, 3, 12, 100))))
    elif how == "zeros":
        extra = bytes(ctx.rng.choice((1, 4, 12)))
    elif how == "nend":
        extra = RawChunk(b"NEND", b"").to_bytes()
    elif how == "chunk":
        extra = ctx.rng.choice(doc.chunks).to_bytes() if doc.chunks else b"x"
    else:
        extra = ctx.seed.data
    doc.tail += extra
    if pristine:
        ctx.expect = {op: "FormatError" for op in OPS}
    return f"appended {len(extra)} bytes ({how}) after NEND"


def mut_version(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    if ctx.rng.random() < 0.2:
        s = bytearray(doc.signature)
        j = ctx.rng.randrange(8)
        s[j] ^= 1 << ctx.rng.randrange(8)
        doc.signature = bytes(s)
        if pristine:
            ctx.expect = {op: "BadSignatureError" for op in OPS}
        return f"signature byte {j} damaged"
    major, minor = doc.version[0], doc.version[1]
    new_major = ctx.rng.choice((major, major, 0, 1, 2, 3, 255))
    new_minor = ctx.rng.choice((minor, 0, 1, 7, 255))
    if (new_major, new_minor) == (major, minor):
        new_minor = (minor + 1) % 256
    doc.version = bytes((new_major, new_minor))
    if pristine:
        if new_major not in (1, 2):
            ctx.expect = {op: "UnsupportedVersionError" for op in OPS}
        elif new_major == major:
            ctx.expect = "baseline"
    return f"version {major}.{minor} -> {new_major}.{new_minor}"


def _mutate_fields(ctx: Ctx, doc: Doc, ctype: bytes, cls: type, count: int) -> Optional[list[str]]:
    """Set ``count`` random fields of the first ``ctype`` record (a ``cls``) to interesting values."""
    idx = doc.index_of(ctype)
    if not idx:
        return None
    out = []
    for _ in range(count):
        f = ctx.rng.choice(cls.FIELDS)
        v = _field_candidates(ctx.rng, f)
        _set_body(doc, idx[0], _set_field(doc.chunks[idx[0]].body, cls, f.name, v))
        out.append(f"{f.name} = {v}")
    return out


def mut_nhdr_field(ctx: Ctx, doc: Doc) -> Optional[str]:
    done = _mutate_fields(ctx, doc, b"NHDR", StreamHeader, 1)
    return None if done is None else f"NHDR.{done[0]}"


def mut_arch_field(ctx: Ctx, doc: Doc) -> Optional[str]:
    if not doc.index_of(b"ARCH"):
        return None
    cls = _arch_class(doc, ctx.seed)
    done = _mutate_fields(ctx, doc, b"ARCH", cls, ctx.rng.choice((1, 1, 1, 2)))
    return None if done is None else f"ARCH ({cls.__name__}) " + ", ".join(done)


def _symbols_edit(ctx: Ctx, t: CodedTensor) -> tuple[np.ndarray, str]:
    rng, s = ctx.rng, np.asarray(t.symbols, np.int64).copy()
    how = rng.choice(("set", "set", "offset", "const", "scale", "uniform", "negate"))
    v = rng.choice(INTERESTING_SYMBOLS)
    if how == "set" and s.size:
        k = rng.choice((1, 1, 2, 5))
        pos = ctx.nrng.integers(0, s.size, k)
        s[pos] = v
        # keep the span codable (2**16 values): move everything else next to v if needed
        if s.max() - s.min() >= 2**16:
            s = np.clip(s + (v - np.int64(np.median(s))), -(2**31), 2**31 - 1)
        return s, f"{k} symbols := {v}"
    if how == "offset":
        return np.clip(s + v, -(2**31), 2**31 - 1), f"all symbols + {v}"
    if how == "const":
        return np.full(s.size, v, np.int64), f"all symbols := {v}"
    if how == "scale":
        k = rng.choice((2, 16, 1024, 2**16))
        return np.clip(s * k, -(2**31), 2**31 - 1), f"symbols * {k}"
    if how == "negate":
        return -s, "symbols negated"
    lo = rng.choice((-3, -100, -(2**15), 2**20, -(2**31)))
    span = rng.choice((2, 7, 256, 256, 65536))
    return ctx.nrng.integers(lo, lo + span, s.size), f"uniform symbols in [{lo}, {lo + span})"


def _tdat_list(ctx: Ctx, doc: Doc) -> Optional[tuple[int, list[CodedTensor]]]:
    """A TDAT chunk's index and its tensors (None if there is none, or none decodes)."""
    found = _tdat_index(doc, ctx.rng)
    return None if found is None or not found[1] else (found[0], list(found[1]))


def mut_tdat_symbols(ctx: Ctx, doc: Doc) -> Optional[str]:
    found = _tdat_list(ctx, doc)
    if found is None:
        return None
    i, ts = found
    k = ctx.rng.randrange(len(ts))
    new, what = _symbols_edit(ctx, ts[k])
    ts[k] = CodedTensor(ts[k].index, ts[k].step, new)
    _set_body(doc, i, _encode_payload(ts))
    return f"TDAT tensor {k} ({ts[k].symbols.size} symbols): {what}"


def mut_tdat_steps(ctx: Ctx, doc: Doc) -> Optional[str]:
    found = _tdat_list(ctx, doc)
    if found is None:
        return None
    i, ts = found
    v = ctx.rng.choice((0, 1, 7, 8, 100, 190, 191, 192, 193, 200, 255, ctx.rng.randrange(256)))
    which = range(len(ts)) if ctx.rng.random() < 0.3 else [ctx.rng.randrange(len(ts))]
    for k in which:
        ts[k] = CodedTensor(ts[k].index, v, ts[k].symbols)
    _set_body(doc, i, _encode_payload(ts))
    return f"TDAT step := {v} for tensors {list(which)}"


def mut_tdat_records(ctx: Ctx, doc: Doc) -> Optional[str]:
    found = _tdat_index(doc, ctx.rng)
    if found is None:
        return None
    i, tensors = found
    rng, ts = ctx.rng, list(tensors)
    how = rng.choice(("drop", "dup", "swap", "reindex", "count", "n-lie", "truncate", "extend", "reverse"))
    count = None
    if how == "drop" and ts:
        k = rng.randrange(len(ts))
        ts.pop(k)
        what = f"tensor {k} dropped"
    elif how == "dup" and ts:
        k = rng.randrange(len(ts))
        ts.insert(k, ts[k])
        what = f"tensor {k} duplicated"
    elif how == "swap" and len(ts) >= 2:
        a, b = rng.sample(range(len(ts)), 2)
        ts[a], ts[b] = ts[b], ts[a]
        what = f"tensors {a} and {b} swapped"
    elif how == "reverse":
        ts.reverse()
        what = "tensor order reversed"
    elif how == "reindex" and ts:
        k = rng.randrange(len(ts))
        v = rng.choice((k + 1, k - 1 if k else 1, len(ts), 2**32, 2**63, 2**64 - 1))
        ts[k] = CodedTensor(v, ts[k].step, ts[k].symbols)
        what = f"tensor {k} index := {v}"
    elif how == "count":
        count = rng.choice((0, 1, len(ts) - 1 if ts else 2, len(ts) + 1, 2**32, 2**63))
        what = f"count field := {count} ({len(ts)} records)"
    elif how == "n-lie" and ts:
        k = rng.randrange(len(ts))
        recs = [_encode_payload([t])[1:] for t in ts]
        t = ts[k]
        head = len(_uvarint(t.index)) + 1 + len(_uvarint(t.symbols.size))
        n = rng.choice((t.symbols.size + 1, max(0, t.symbols.size - 1), 0, 2**28, 2**40, 2**64 - 1))
        recs[k] = _uvarint(t.index) + bytes([t.step]) + _uvarint(n) + recs[k][head:]
        _set_body(doc, i, _uvarint(len(ts)) + b"".join(recs))
        return f"TDAT tensor {k} n field {t.symbols.size} -> {n}"
    elif how == "truncate" and ts:
        k = rng.randrange(len(ts))
        cut = rng.randrange(ts[k].symbols.size + 1)
        ts[k] = CodedTensor(ts[k].index, ts[k].step, ts[k].symbols[:cut])
        what = f"tensor {k} truncated to {cut} symbols"
    elif how == "extend" and ts:
        k = rng.randrange(len(ts))
        extra = rng.choice((1, 2, 100))
        ts[k] = CodedTensor(ts[k].index, ts[k].step, np.concatenate([ts[k].symbols, np.zeros(extra, np.int32)]))
        what = f"tensor {k} extended by {extra} symbols"
    else:
        return None
    _set_body(doc, i, _encode_payload(ts, count=count))
    return f"TDAT: {what}"


def mut_tdat_model(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    found = _tdat_index(doc, ctx.rng)
    if found is None:
        return None
    i, tensors = found
    model = ctx.rng.choice(("histogram", "laplace", "gaussian"))
    _set_body(doc, i, _encode_payload(tensors, models=[model]))
    if pristine:
        ctx.expect = "baseline"
    return f"TDAT re-encoded with models const+{model}"


def _raw_params(rng: random.Random, model: int, n: int) -> bytes:
    if model == 0:
        return _svarint(rng.choice((0, 1, -1, 2**31 - 1, -(2**31), 2**40)))
    lo = rng.choice((-1, -3, 0, -(2**31), 2**31 - 2, 2**31 - 1, -(2**33)))
    K = rng.choice((0, 1, 2, 3, 4, 65536, 65537, 2**32))
    if model == 1:
        k = min(K, 70)
        counts = [rng.choice((0, 1, n, n // max(1, k))) for _ in range(k)]
        return _svarint(lo) + _uvarint(K) + b"".join(_uvarint(c) for c in counts)
    if model == 2:
        return _svarint(lo) + _uvarint(K) + struct.pack("<H", rng.choice((0, 1, 2233, 4095, 4096, 65535)))
    mu = rng.choice((lo, lo + 1, lo + K, lo - 1, 0))
    return _svarint(lo) + _uvarint(K) + _svarint(mu) + struct.pack(
        "<I", rng.choice((0, 1, 2**31, 2**32 - 1)))


def mut_tdat_raw(ctx: Ctx, doc: Doc) -> Optional[str]:
    found = _tdat_index(doc, ctx.rng)
    if found is None:
        return None
    i, tensors = found
    rng = ctx.rng
    recs = [_encode_payload([t])[1:] for t in tensors]
    if not recs:
        return None
    k = rng.randrange(len(recs))
    t = tensors[k]
    how = rng.choice(("model", "model", "words", "n_words", "varint", "huge-n"))
    if how == "model":
        model = rng.choice((0, 1, 2, 3, 4, 127, 255))
        n = rng.choice((t.symbols.size, t.symbols.size, 0, 1))
        words = b""
        nw = rng.choice((0, 1, 2, 8))
        words = bytes(rng.randrange(256) for _ in range(4 * nw))
        params = _raw_params(rng, model, n) if model <= 3 else bytes(rng.randrange(256) for _ in range(4))
        recs[k] = _uvarint(t.index) + bytes([t.step]) + _uvarint(n) + bytes([model]) + params + _uvarint(nw) + words
        what = f"model {model}, n {n}, {nw} random words"
    elif how == "words":
        # same header and params, random words of the same count (corrupt ANS stream)
        body = bytearray(recs[k])
        nbytes = min(len(body), rng.choice((4, 8, 64)))
        for j in range(len(body) - nbytes, len(body)):
            body[j] = rng.randrange(256)
        recs[k] = bytes(body)
        what = f"last {nbytes} bytes of the record randomized"
    elif how == "n_words":
        nw = rng.choice((1, 2**20, 2**31, 2**62))
        recs[k] = _uvarint(t.index) + bytes([t.step]) + _uvarint(t.symbols.size) + b"\x02" + _svarint(-1) + \
            _uvarint(4) + struct.pack("<H", 2000) + _uvarint(nw) + b"\x01\x02\x03\x04"
        what = f"laplace record claiming {nw} words"
    elif how == "varint":
        form = rng.choice(("overlong", "eleven", "nonminimal", "unterminated"))
        v = {"overlong": b"\xff" * 9 + b"\x7f", "eleven": b"\x80" * 10 + b"\x01",
             "nonminimal": bytes([(t.index & 0x7F) | 0x80, 0x00]), "unterminated": b"\x80\x80"}[form]
        recs[k] = v + recs[k][len(_uvarint(t.index)):]
        what = f"{form} index varint"
    else:
        n = rng.choice((2**25, 2**28, 2**28 + 1, 2**40))
        recs[k] = _const_record(t.index, t.step, n, 0)
        what = f"const record with n = {n}"
    _set_body(doc, i, _uvarint(len(recs)) + b"".join(recs))
    return f"TDAT tensor {k} raw: {what}"


def _context_body(bits: np.ndarray, L: int) -> bytes:
    """The ``context`` coder's body for ``bits`` in rows of ``L``, computed in one vectorized
    constriction call (the library encoder loops over rows in Python: too slow for huge masks).
    Same words: pushing rows last-first with ``encode_reverse`` each equals one ``encode_reverse``
    of all bits with per-bit probabilities."""
    import constriction

    rows = np.asarray(bits, bool).reshape(-1, L).astype(np.int64)
    R = rows.shape[0]
    ctx = np.empty_like(rows)
    ctx[0] = 2
    ctx[1:] = rows[:-1]
    per_row = np.zeros((R, 3, 2), np.int64)            # zeros / ones seen in each context, per row
    for c in range(3):
        for b in range(2):
            per_row[:, c, b] = ((ctx == c) & (rows == b)).sum(axis=1)
    before = np.cumsum(per_row, axis=0) - per_row       # counts of the rows before each row
    r_idx = np.repeat(np.arange(R), L)
    c_idx = ctx.reshape(-1)
    probs = np.stack([2 * before[r_idx, c_idx, 0] + 1, 2 * before[r_idx, c_idx, 1] + 1], axis=1).astype(np.float64)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(rows.reshape(-1).astype(np.int32), constriction.stream.model.Categorical(perfect=False),
                         probs)
    words = coder.get_compressed()
    return _uvarint(L) + _uvarint(len(words)) + np.asarray(words, "<u4").tobytes()


def _context_const_body(n: int, bit: bool) -> bytes:
    """``_context_body(np.full(n, bit), 1)`` in closed form (row r >= 1 has seen r - 1 equal bits)."""
    import constriction

    seen = 2.0 * np.maximum(np.arange(n, dtype=np.float64) - 1, 0) + 1
    seen[0] = 1.0
    probs = np.stack([np.ones(n), seen] if bit else [seen, np.ones(n)], axis=1)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.full(n, int(bit), np.int32), constriction.stream.model.Categorical(perfect=False), probs)
    words = coder.get_compressed()
    return _uvarint(1) + _uvarint(len(words)) + np.asarray(words, "<u4").tobytes()


def _mask_record(index: int, n: int, coder_id: int, body: bytes) -> bytes:
    return _uvarint(index) + _uvarint(n) + bytes([coder_id]) + body


def _mask_payload(masks: Sequence[CodedMask], coder: Optional[str] = None) -> bytes:
    unique = {m.index: m for m in masks}  # the payload needs strictly increasing indices
    masks = [unique[k] for k in sorted(unique)]
    coders = None if coder is None else [MASK_CODERS[coder], MASK_CODERS["const"]]
    try:
        return encode_masks(masks, coders)
    except ValueError:
        return encode_masks(masks)


def mut_mask_edit(ctx: Ctx, doc: Doc) -> Optional[str]:
    pristine = _pristine(doc, ctx.seed)
    idx = [i for i in doc.index_of(b"MASK") if _masks_of(doc.chunks[i].body) is not None]
    if not idx:
        return None
    i = ctx.rng.choice(idx)
    masks = list(_masks_of(doc.chunks[i].body))
    rng = ctx.rng
    how = rng.choice(("flip", "flip-fixup", "flip-fixup", "coder", "context-rows", "add-ones", "drop", "reindex",
                      "raw"))
    if how == "context-rows" and masks:
        # re-code masks with the context coder in short rows (same bits: same pixels)
        recs = []
        for m in masks:
            n = m.flat.size
            if n and rng.random() < 0.7:
                divisors = [d for d in (1, 2, 3, 4, 8, 16, n) if d <= n and n % d == 0]
                recs.append(_mask_record(m.index, n, 2, _context_body(m.flat, rng.choice(divisors))))
            else:
                recs.append(encode_masks([m])[1:])
        _set_body(doc, i, _uvarint(len(masks)) + b"".join(recs))
        if pristine:
            ctx.expect = "baseline"
        return "MASK re-coded with the context coder in short rows"
    if how in ("flip", "flip-fixup") and masks:
        k = rng.randrange(len(masks))
        bits = masks[k].flat.copy()
        if bits.size == 0:
            return None
        for p in ctx.nrng.integers(0, bits.size, rng.choice((1, 1, 3, 20))):
            bits[p] = not bits[p]
        if rng.random() < 0.1:
            bits[:] = rng.random() < 0.5
        old = masks[k].flat
        masks[k] = CodedMask(masks[k].index, bits)
        _set_body(doc, i, _mask_payload(masks))
        if how == "flip-fixup":
            found = _tdat_index(doc, rng)
            if found is not None:
                j, tensors = found
                ts = list(tensors)
                pos = [q for q, t in enumerate(ts) if t.index == masks[k].index]
                if pos:
                    q = pos[0]
                    full = np.zeros(old.size, np.int64)
                    if int(old.sum()) == ts[q].symbols.size:
                        full[old] = ts[q].symbols
                    kept = full[bits]
                    fresh = ctx.nrng.integers(-2, 3, kept.size)
                    kept = np.where(old[bits], kept, fresh)
                    ts[q] = CodedTensor(ts[q].index, ts[q].step, kept)
                    _set_body(doc, j, _encode_payload(ts))
                    return f"MASK {k} bits flipped, TDAT fixed up ({bits.sum()} kept)"
        return f"MASK {k}: bits flipped ({int(bits.sum())} kept of {bits.size})"
    if how == "coder":
        coder = rng.choice(sorted(MASK_CODERS))
        _set_body(doc, i, _mask_payload(masks, coder))
        if pristine:
            ctx.expect = "baseline"
        return f"MASK re-encoded preferring coder {coder}"
    if how == "add-ones":
        found = _tdat_index(doc, rng)
        if found is None:
            return None
        have = {m.index for m in masks}
        free = [t for t in found[1] if t.index not in have]
        if not free:
            return None
        t = rng.choice(free)
        masks = sorted(masks + [CodedMask(t.index, np.ones(t.symbols.size, bool))], key=lambda m: m.index)
        _set_body(doc, i, _mask_payload(masks))
        if pristine:
            ctx.expect = "baseline"
        return f"all-ones mask added for tensor {t.index}"
    if how == "drop" and masks:
        k = rng.randrange(len(masks))
        masks.pop(k)
        _set_body(doc, i, _mask_payload(masks))
        return f"MASK {k} dropped"
    if how == "reindex" and masks:
        k = rng.randrange(len(masks))
        v = rng.choice((masks[k].index + 1, max(0, masks[k].index - 1), 0, 1000, 2**40))
        body = _uvarint(len(masks))
        for q, m in enumerate(masks):
            rec = encode_masks([m])[1:]
            head = len(_uvarint(m.index))
            body += (_uvarint(v) + rec[head:]) if q == k else rec
        _set_body(doc, i, body)
        return f"MASK {k} index := {v}"
    # raw mask records
    count = rng.choice((1, 2, len(masks), 2**20))
    index = rng.choice((0, 1, 2, 4))
    n = rng.choice((0, 1, 64, 128, 512, 2**28))
    coder = rng.choice((0, 1, 2, 3, 4, 255))
    body = rng.choice((
        b"\x02", b"\x01", _uvarint(0) + _uvarint(1) + b"\x00\x00\x00\x00", _uvarint(n) + _uvarint(0),
        bytes([rng.choice((0, 1, 2)), rng.choice((0, 24, 25, 255))]) + _uvarint(rng.choice((1, 2, n, n + 1))) +
        _uvarint(4) + bytes(rng.randrange(256) for _ in range(4)),
        bytes(rng.randrange(256) for _ in range(rng.choice((1, 8, 30)))),
    ))
    _set_body(doc, i, _uvarint(count) + _uvarint(index) + _uvarint(n) + bytes([coder]) + body)
    return f"MASK raw: count {count}, index {index}, n {n}, coder {coder}"


def _nhdr_replace(doc: Doc, **fields: int) -> bool:
    idx = doc.index_of(b"NHDR")
    if not idx:
        return False
    body = doc.chunks[idx[0]].body
    for name, v in fields.items():
        body = _set_field(body, StreamHeader, name, v)
    _set_body(doc, idx[0], body)
    return True


def _replace_payload(doc: Doc, chunks: Sequence[RawChunk]) -> None:
    """Remove every MASK and TDAT chunk and put ``chunks`` where the first one was."""
    at = next((i for i, c in enumerate(doc.chunks) if c.ctype in (b"MASK", b"TDAT")), None)
    doc.chunks = [c for c in doc.chunks if c.ctype not in (b"MASK", b"TDAT")]
    if at is None:
        nend = doc.index_of(b"NEND")
        at = nend[-1] if nend else len(doc.chunks)
    at = min(at, len(doc.chunks))
    doc.chunks[at:at] = list(chunks)


def mut_representation(ctx: Ctx, doc: Doc) -> Optional[str]:
    """An exact dense <-> pruned conversion (same weights)."""
    pristine = _pristine(doc, ctx.seed)
    tdat = doc.index_of(b"TDAT")
    masks_i = doc.index_of(b"MASK")
    if len(tdat) != 1:
        return None
    tensors = _tensors_of(doc.chunks[tdat[0]].body)
    if tensors is None:
        return None
    rng = ctx.rng
    if masks_i:  # pruned -> dense
        masks = _masks_of(doc.chunks[masks_i[0]].body)
        if masks is None or len(masks_i) != 1:
            return None
        by_index = {m.index: m.flat for m in masks}
        ts = []
        for t in tensors:
            m = by_index.get(t.index)
            if m is not None:
                if int(m.sum()) != t.symbols.size:
                    return None
                full = np.zeros(m.size, np.int64)
                full[m] = t.symbols
                t = CodedTensor(t.index, t.step, full)
            ts.append(t)
        _replace_payload(doc, [RawChunk(b"TDAT", _encode_payload(ts))])
        _nhdr_replace(doc, representation=0)
        what = "pruned -> dense (pruned weights written as 0)"
    else:  # dense -> pruned: mask = nonzero weights (plus a few kept zeros)
        chosen = [t for t in tensors if t.symbols.size and rng.random() < 0.6] or [max(tensors, key=lambda t: t.symbols.size)]
        masks, ts = [], []
        for t in tensors:
            if any(t is c for c in chosen):
                keep = np.asarray(t.symbols) != 0
                keep |= ctx.nrng.random(keep.size) < rng.choice((0.0, 0.1, 0.5))
                masks.append(CodedMask(t.index, keep))
                t = CodedTensor(t.index, t.step, np.asarray(t.symbols)[keep])
            ts.append(t)
        _replace_payload(doc, [RawChunk(b"MASK", _mask_payload(masks)), RawChunk(b"TDAT", _encode_payload(ts))])
        _nhdr_replace(doc, representation=1)
        what = f"dense -> pruned ({len(masks)} masks of the nonzero weights)"
    if pristine:
        ctx.expect = "baseline"
    return what


def _random_siren(ctx: Ctx, media: int) -> tuple[dict, Any]:
    rng = ctx.rng
    rec = SirenArch(
        in_features=(2 if media == 0 else 3) if rng.random() < 0.95 else rng.choice((2, 3)),
        out_features=3 if rng.random() < 0.95 else rng.choice((1, 2, 4)),
        width=rng.choice((1, 2, 3, 4, 5, 8, 16, 17, 32, 64, 100, 128, 256, 512, 1024, 2048, 4096)),
        depth=rng.choice((1, 1, 2, 2, 3, 4, 5, 8, 16, 32, 64)),
        w0_first=rng.choice((30.0, 30.0, 1.0, 0.001, 10000.0, 0.5, 100.0, rng.uniform(1, 60))),
        w0_hidden=rng.choice((30.0, 30.0, 1.0, 0.001, 10000.0, 0.5, 100.0, rng.uniform(1, 60))),
    )
    dims = (1, 2, 3, 5, 8, 16, 31, 32, 33, 64, 100, 128, 255, 256, 257, 512, 1000, 2048, 4096, 65535)
    hdr = dict(width=rng.choice(dims), height=rng.choice(dims),
               frames=1 if media == 0 else rng.choice((1, 2, 3, 4, 5, 7, 8, 100, 1000, 65536, 2**24)))
    return hdr, rec


def _random_nerv(ctx: Ctx) -> tuple[dict, Any]:
    rng = ctx.rng
    nb = rng.choice((1, 1, 2, 3, 4, 6))
    slots = {}
    for s in range(6):
        slots[f"factor{s}"] = rng.choice((1, 2, 2, 3, 4, 5, 8)) if s < nb else 0
        slots[f"channels{s}"] = rng.choice((1, 2, 3, 4, 8, 16, 32)) if s < nb else 0
    rec = NervArch(pe_b=rng.choice((1.0, 1.25, 1.5, 2.0, 3.0, 4.0, rng.uniform(1, 4))),
                   pe_l=rng.choice((1, 2, 4, 8, 16, 32, 64, 128)), mlp_hidden=rng.choice((1, 2, 4, 8, 16, 32, 64)),
                   c1=rng.choice((1, 2, 4, 8, 16)), h0=rng.choice((1, 2, 3, 4, 5, 8, 9, 16)),
                   w0=rng.choice((1, 2, 3, 4, 5, 8, 9, 16)), kernel=rng.choice((1, 3, 3, 5, 7)),
                   head_kernel=rng.choice((1, 3, 3, 5, 7)), act=0, crop=0, **slots)
    ph, pw = rec.padded_size

    def dim(p: int) -> int:
        return rng.choice((p, p, max(1, p - rng.randrange(p)), 1, p + 1 if rng.random() < 0.1 else p))

    hdr = dict(width=min(65535, dim(pw)), height=min(65535, dim(ph)),
               frames=rng.choice((1, 2, 3, 4, 5, 8, 100, 65536, 2**24)))
    return hdr, rec


def _fresh_payload(ctx: Ctx, shapes: Sequence[tuple[int, ...]], pruned: bool) -> list[RawChunk]:
    """TDAT (and MASK) chunks holding exactly ``shapes``: random small symbols when small, const
    records otherwise (cheap at any size)."""
    rng, nrng = ctx.rng, ctx.nrng
    sizes = [math.prod(s) for s in shapes]
    small = sum(sizes) <= 2**16
    amp = rng.choice((0, 1, 2, 7, 50, 500))
    offset = rng.choice((0, 0, 0, 0, 3, -(2**10), 2**15, 2**19, 2**24, -(2**31) + 600))
    models = [rng.choice(("histogram", "laplace", "gaussian"))]
    base_step = rng.choice((8, 24, 40, 56, 72, 100, 150, 191, 0))
    masks, recs = [], []
    for i, (shape, n) in enumerate(zip(shapes, sizes)):
        keep = None
        if pruned and len(shape) >= 2 and (n >= 256 or rng.random() < 0.3):
            if small:
                keep = nrng.random(n) < rng.choice((0.0, 0.1, 0.5, 0.9, 1.0))
                masks.append(CodedMask(i, keep))
            elif n <= 2**22:
                keep = np.full(n, rng.random() < 0.8)
                masks.append(CodedMask(i, keep))
        m = n if keep is None else int(keep.sum())
        step = max(0, min(191, base_step + rng.choice((0, 0, 8, -8, 16))))
        if small:
            symbols = offset + nrng.integers(-amp, amp + 1, m) if rng.random() < 0.3 else nrng.integers(-amp, amp + 1, m)
            recs.append(_encode_payload([CodedTensor(i, step, symbols)], models)[1:])
        else:
            recs.append(_const_record(i, step, m, rng.choice((0, 0, 1, -1, amp, offset))))
    out = []
    if pruned:
        if small:
            out.append(RawChunk(b"MASK", encode_masks(masks)))
        else:
            # constant masks: the const coder, or (a decode-time stress) the context coder in
            # rows of 1 bit, whose words cost next to nothing however long the mask is
            recs = []
            for m in masks:
                n = m.flat.size
                if n and rng.random() < 0.3:
                    recs.append(_mask_record(m.index, n, 2, _context_const_body(n, bool(m.flat[0]))))
                else:
                    recs.append(encode_masks([m], [MASK_CODERS["const"]])[1:])
            out.append(RawChunk(b"MASK", _uvarint(len(recs)) + b"".join(recs)))
    out.append(RawChunk(b"TDAT", _uvarint(len(recs)) + b"".join(recs)))
    return out


def mut_rearch(ctx: Ctx, doc: Doc) -> Optional[str]:
    """A coherent new geometry: valid NHDR + ARCH and payloads of exactly the record's shapes."""
    from nfcodec.archs import ARCHS

    rng, seed = ctx.rng, ctx.seed
    if not doc.index_of(b"NHDR") or not doc.index_of(b"ARCH") or seed.header.arch > 1:
        return None          # SIREN / NeRV geometries only (a grid seed keeps its own)
    big = rng.random() < ctx.budget.big_share
    limit = ctx.budget.big_frame_macs if big else ctx.budget.frame_macs
    arch_id = seed.header.arch if rng.random() < 0.9 else 1 - seed.header.arch
    media = 1 if arch_id == 1 else (seed.header.media if rng.random() < 0.9 else 1 - seed.header.media)
    pruned = (seed.header.representation == 1) != (rng.random() < 0.3)
    for _ in range(40):
        try:
            hdr, rec = _random_siren(ctx, media) if arch_id == 0 else _random_nerv(ctx)
            header = dataclasses.replace(seed.header, media=media, arch=arch_id, representation=int(pruned),
                                         **hdr)
        except Exception:  # noqa: BLE001  (FieldRangeError: an invalid combination, draw again)
            continue
        spec = ARCHS.by_id(arch_id)
        if big and arch_id == 0 and rng.random() < 0.7:
            # probe the decoder's own limit: a frame size that makes the cost a good share of it
            per_pixel = _frame_work(spec.costs(rec, dataclasses.replace(header, width=1, height=1)))
            target = int(limit * rng.uniform(0.2, 1.0)) // max(1, per_pixel)
            if target < 1:
                continue
            w = max(1, min(65535, int(math.sqrt(target) * rng.choice((0.25, 1.0, 4.0)))))
            try:
                header = dataclasses.replace(header, width=w, height=max(1, min(65535, target // w)))
            except Exception:  # noqa: BLE001
                continue
        cost = _frame_work(spec.costs(rec, header))
        if cost <= limit and (big or header.width * header.height <= ctx.budget.frame_pixels):
            break
    else:
        return None
    shapes = spec.param_shapes(rec)
    nh, ar = doc.index_of(b"NHDR")[0], doc.index_of(b"ARCH")[0]
    _set_body(doc, nh, header.pack())
    _set_body(doc, ar, rec.pack())
    _replace_payload(doc, _fresh_payload(ctx, shapes, pruned))
    dims = ", ".join(f"{k}={getattr(rec, k)}" for k in
                     (("width", "depth", "w0_first") if arch_id == 0 else ("pe_l", "mlp_hidden", "c1", "h0", "w0")))
    extra = "" if arch_id == 0 else f", blocks={rec.blocks}, k={rec.kernel}/{rec.head_kernel}"
    return (f"rearch {'big ' if big else ''}{spec.name} {header.width}x{header.height}x{header.frames} "
            f"{'pruned' if pruned else 'dense'} ({dims}{extra}; {sum(map(math.prod, shapes))} params, "
            f"{cost:.3g} work/frame)")


#: name -> (weight, mutator)
MUTATORS: dict[str, tuple[float, Callable[[Ctx, Doc], Optional[str]]]] = {
    "body-flip": (3, mut_body_flip),
    "body-bytes": (2, mut_body_bytes),
    "body-int": (3, mut_body_int),
    "body-resize": (2, mut_body_resize),
    "stale-crc": (2, mut_stale_crc),
    "drop-chunk": (1, mut_drop_chunk),
    "dup-chunk": (1, mut_dup_chunk),
    "move-chunk": (1, mut_move_chunk),
    "insert-critical": (2, mut_insert_critical),
    "insert-unknown": (1.5, mut_insert_unknown),
    "chunk-header": (1, mut_chunk_header),
    "cut": (1.5, mut_cut),
    "append": (1, mut_append),
    "version": (1.5, mut_version),
    "nhdr-field": (3, mut_nhdr_field),
    "arch-field": (3, mut_arch_field),
    "tdat-symbols": (3, mut_tdat_symbols),
    "tdat-steps": (2, mut_tdat_steps),
    "tdat-records": (2, mut_tdat_records),
    "tdat-model": (1, mut_tdat_model),
    "tdat-raw": (2, mut_tdat_raw),
    "mask-edit": (2.5, mut_mask_edit),
    "representation": (1.5, mut_representation),
    "rearch": (4, mut_rearch),
}


@dataclass
class Case:
    """One generated input: ``kinds`` and ``steps`` say what was done to which seed file."""

    seed_value: int
    index: int
    seed_name: str
    kinds: list[str]
    steps: list[str]
    data: bytes
    expect: Any = None   # set only for a single mutation with a known effect

    @property
    def case_id(self) -> str:
        return f"s{self.seed_value}-c{self.index}"


def make_case(seed_value: int, index: int, budget: Optional[Budget] = None,
              kinds: Optional[Sequence[str]] = None) -> Case:
    """Case ``index`` of campaign ``seed_value`` (deterministic); ``kinds`` restricts the draw."""
    seeds = load_seeds()
    seed = seeds[index % len(seeds)]
    rng = random.Random(f"nfc-fuzz:{seed_value}:{index}")
    ctx = Ctx(rng, np.random.default_rng(rng.getrandbits(64)), seed, budget or Budget())
    names = sorted(MUTATORS) if kinds is None else list(kinds)
    weights = [MUTATORS[n][0] for n in names]
    n_mut = rng.choices((1, 2, 3), (6, 3, 1))[0]
    doc = seed.doc.copy()
    done_kinds, steps, expect = [], [], None
    for _ in range(n_mut):
        for _attempt in range(20):
            name = rng.choices(names, weights)[0]
            ctx.expect = None
            desc = MUTATORS[name][1](ctx, doc)
            if desc is not None:
                done_kinds.append(name)
                steps.append(f"{name}: {desc}")
                if len(done_kinds) == 1:
                    expect = ctx.expect
                break
    if len(done_kinds) != 1:
        expect = None
    return Case(seed_value, index, seed.name, done_kinds, steps, doc.to_bytes(), expect)


# ======================================================================= running one input


def _typed_errors() -> tuple[type, ...]:
    from nfcodec.bitstream.errors import BitstreamError
    from nfcodec.errors import NFCodecError

    return BitstreamError, NFCodecError


def classify(exc: BaseException) -> tuple[bool, str]:
    """``(typed, name)``: typed means an instance of BitstreamError or NFCodecError."""
    return isinstance(exc, _typed_errors()), type(exc).__name__


def _failure(op: str, kind: str, message: str, tb: str = "") -> dict:
    return {"op": op, "kind": kind, "message": message[:2000], "traceback": tb[-6000:]}


def evaluate(data: bytes, ops: Sequence[str] = OPS, on_op: Optional[Callable[[str], None]] = None) -> dict:
    """Run the decoder operations on one input (in this process); see the module docstring.
    ``on_op(op)`` is called as each operation starts (the worker reports it to the parent, whose
    timeout applies per operation).

    Returns ``{"ops": {op: outcome}, "hashes": {op: sha256 of the frames}, "failures": [...],
    "seconds": {op: s}, "fatal": bool}`` (``fatal``: the process should be restarted)."""
    import nfcodec
    from nfcodec.decoder import open_stream

    outcomes: dict[str, str] = {}
    hashes: dict[str, str] = {}
    seconds: dict[str, float] = {}
    failures: list[dict] = []
    fatal = False
    media = None
    ref_cost, ref_frames = None, []
    for op in ops:
        if op == "api" and media != 0:
            continue
        if op == "reference" and (outcomes.get("numpy") != "pixels" or data[8] < 2 or ref_cost is None
                                  or ref_cost > REFERENCE_MACS):
            continue
        if on_op is not None:
            on_op(op)
        t0 = time.perf_counter()
        if op == "reference":
            try:  # test code, not the decoder: its exceptions are recorded, never failures
                from exact_reference import reference_frames

                frames = reference_frames(data, ref_frames, prior=PRIOR_DIR)
                hashes[op] = hashlib.sha256(np.ascontiguousarray(frames, np.uint8).tobytes()).hexdigest()
                outcomes[op] = "pixels"
            except Exception as exc:  # noqa: BLE001
                outcomes[op] = f"REF-ERROR:{type(exc).__name__}"
            seconds[op] = time.perf_counter() - t0
            continue
        try:
            if op in ("probe", "probe-lenient"):
                info = nfcodec.probe(data, allow_truncated=op == "probe-lenient")
                if op == "probe":
                    media = info.header.media
                outcomes[op] = "info"
            elif op == "api":
                img = nfcodec.decode(data, prior=str(PRIOR_DIR)).image
                _check_frame(img)
                hashes[op] = hashlib.sha256(img.tobytes()).hexdigest()
                outcomes[op] = "pixels"
            else:
                stream = open_stream(data, backend=op, priors=[str(PRIOR_DIR)])
                want = list(range(min(2, getattr(stream, "n_frames", 0) or stream.header.frames)))
                digest = hashlib.sha256()
                got = []
                for k, frame in stream.frames(want):
                    _check_frame(frame, stream.header, getattr(stream, "out_width", 0))
                    got.append(k)
                    digest.update(frame.tobytes())
                if got != want:
                    raise AssertionError(f"frames() yielded {got}, asked for {want}")
                hashes[op] = digest.hexdigest()
                outcomes[op] = "pixels"
                if op == "numpy":
                    ref_cost = stream.arch.costs(stream.record, stream.header).macs * max(1, len(want))
                    ref_frames = want
        except BaseException as exc:  # noqa: BLE001  (classifying is the point)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            typed, name = classify(exc)
            if typed:
                outcomes[op] = name
            else:
                outcomes[op] = f"FAIL:{name}"
                failures.append(_failure(op, name, f"{name}: {exc}", traceback.format_exc()))
                fatal = fatal or isinstance(exc, (MemoryError, RecursionError))
        seconds[op] = time.perf_counter() - t0
    major = data[8] if len(data) > 9 else None
    if major is not None and major >= 2:
        a, b = outcomes.get("numpy"), outcomes.get("torch")
        if a == b == "pixels" and hashes["numpy"] != hashes["torch"]:
            failures.append(_failure("compare", "BackendMismatch", "numpy and torch pixels differ (format 2.x)"))
        elif a is not None and b is not None and (a == "pixels") != (b == "pixels") and not (
                a.startswith("FAIL:") or b.startswith("FAIL:")):
            failures.append(_failure("compare", "BackendDisagreement", f"numpy -> {a}, torch -> {b} (format 2.x)"))
    if "reference" in hashes and "numpy" in hashes and hashes["reference"] != hashes["numpy"]:
        failures.append(_failure("compare", "ReferenceMismatch",
                                 "numpy pixels differ from the independent reference decoder (tests/exact_reference.py)"))
    if "api" in hashes:
        ref = hashes.get("numpy") if (major or 0) >= 2 else hashes.get("torch")
        if ref is not None and ref != hashes["api"]:
            failures.append(_failure("compare", "ApiMismatch", "nfcodec.decode differs from open_stream"))
    return {"ops": outcomes, "hashes": hashes, "failures": failures, "seconds": seconds, "fatal": fatal}


def _check_frame(frame: Any, header: Any = None, width: int = 0) -> None:
    """``width``: the columns the decoded level covers (a spatially grown width-chunks level may
    cover fewer than NHDR.width; 0: all of them)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise AssertionError(f"bad frame: {type(frame).__name__} {getattr(frame, 'dtype', None)} "
                             f"{getattr(frame, 'shape', None)}")
    if header is not None and frame.shape[:2] != (header.height, width or header.width):
        raise AssertionError(f"frame shape {frame.shape} for a {header.width}x{header.height} stream")


def check_expectation(case: Case, result: dict, baseline: Optional[dict]) -> list[dict]:
    """Failures of kind ``oracle`` where a single-mutation case's known effect did not happen."""
    if case.expect is None:
        return []
    got = result["ops"]
    bad = []
    if case.expect == "baseline":
        if baseline is None:
            return []
        for op, want in baseline["ops"].items():
            if op in got and got[op] != want:
                bad.append(f"{op}: {got[op]} (the seed gives {want})")
        for op, h in baseline["hashes"].items():
            if op in result["hashes"] and result["hashes"][op] != h:
                bad.append(f"{op}: pixels differ from the seed's")
    else:
        for op, want in case.expect.items():
            if op in got and got[op] != want and not got[op].startswith("FAIL:"):
                bad.append(f"{op}: {got[op]}, expected {want}")
    if not bad:
        return []
    return [_failure("oracle", "oracle", f"{case.steps[0]} -> " + "; ".join(bad))]


# ======================================================================= the worker process


def _send(stream: Any, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(blob)) + blob)
    stream.flush()


def _recv_blocking(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _vm_peak_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_main(mem_cap: int, torch_threads: int = 1) -> None:
    """Serve cases on stdin/stdout (the protocol stream is the original stdout; prints go to stderr)."""
    if mem_cap > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    import nfcodec.decoder  # noqa: F401  (warm: the numpy decoder's imports)

    def torch_setup() -> None:
        # One torch thread: with two OpenMP threads on a loaded 2-core machine a 1 ms NeRV decode
        # took 0.5 s (threads spin-waiting for a core), which made timings meaningless.
        if torch_threads > 0 and "torch" not in sys.modules:
            import torch

            torch.set_num_threads(torch_threads)

    _send(proto_out, {"ready": True, "pid": os.getpid()})
    while True:
        msg = _recv_blocking(proto_in)
        if msg is None:
            return
        cmd = msg.get("cmd")
        if cmd in ("case", "warmup"):
            torch_setup()
        if cmd == "case":
            result = evaluate(msg["data"], msg.get("ops", OPS), lambda op: _send(proto_out, {"progress": op}))
        elif cmd == "warmup":
            for seed in load_seeds():
                evaluate(seed.data)
            result = {"ops": {}, "hashes": {}, "failures": [], "seconds": {}, "fatal": False}
        elif cmd == "sleep":          # self-test of the timeout
            time.sleep(msg["seconds"])
            result = {"ops": {}, "hashes": {}, "failures": [], "seconds": {}, "fatal": False}
        elif cmd == "crash":          # self-test of crash detection
            os.kill(os.getpid(), signal.SIGSEGV)
            return
        elif cmd == "alloc":          # self-test of the memory cap
            try:
                blob = np.ones(msg["bytes"], np.uint8)
                result = {"ops": {"alloc": f"ok {blob.size}"}, "hashes": {}, "failures": [], "seconds": {},
                          "fatal": False}
            except MemoryError as exc:
                result = {"ops": {"alloc": "FAIL:MemoryError"}, "hashes": {}, "seconds": {}, "fatal": True,
                          "failures": [_failure("alloc", "MemoryError", str(exc))]}
        else:
            raise SystemExit(f"unknown command {cmd!r}")
        result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["vm_peak_kb"] = _vm_peak_kb()
        _send(proto_out, result)


class WorkerDied(Exception):
    pass


class Runner:
    """One worker subprocess (memory-capped); ``run`` sends it a command and waits at most ``timeout``
    seconds, killing and restarting it on a timeout, a crash or a fatal error."""

    def __init__(self, mem_cap: int = DEFAULT_MEM_CAP, timeout: float = DEFAULT_TIMEOUT, warm: bool = True,
                 start_timeout: float = 120.0) -> None:
        self.mem_cap, self.timeout, self.warm, self.start_timeout = mem_cap, timeout, warm, start_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.restarts = 0
        self.max_rss_kb = 0
        self.max_vm_peak_kb = 0
        self._log = tempfile.NamedTemporaryFile(prefix="nfc-fuzz-worker-", suffix=".log", delete=False)
        self.log_path = self._log.name

    # ------------------------------------------------------------------ process plumbing
    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__).resolve()), "worker", "--mem-cap", str(self.mem_cap)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=str(REPO), env=env,
            start_new_session=True)
        hello = self._read(time.monotonic() + self.start_timeout)
        if not hello.get("ready"):
            raise RuntimeError(f"worker did not start: {hello}")
        if self.warm:
            self._write({"cmd": "warmup"})
            self._note(self._read(time.monotonic() + self.start_timeout))

    def _write(self, msg: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        _send(self.proc.stdin, msg)

    def _read(self, deadline: float) -> Any:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()

        def exact(n: int) -> bytes:
            buf = bytearray()
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    raise TimeoutError
                part = os.read(fd, n - len(buf))
                if not part:
                    raise WorkerDied
                buf += part
            return bytes(buf)

        (n,) = struct.unpack("<Q", exact(8))
        return pickle.loads(exact(n))

    def _note(self, result: dict) -> None:
        self.max_rss_kb = max(self.max_rss_kb, result.get("maxrss_kb", 0))
        self.max_vm_peak_kb = max(self.max_vm_peak_kb, result.get("vm_peak_kb", 0))

    def kill(self) -> Optional[int]:
        """Kill the worker (its own process group: only processes this runner started)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for s in (proc.stdin, proc.stdout):
            try:
                s.close()
            except OSError:
                pass
        rc = proc.wait()
        self.max_rss_kb = max(self.max_rss_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        return rc

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            self.kill()
        self._log.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def _log_tail(self) -> str:
        try:
            self._log.flush()
            return Path(self.log_path).read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ commands
    def submit(self, msg: dict) -> None:
        """Send one command (the worker starts on it); ``collect`` waits for its answer."""
        if self.proc is None:
            self.start()
        self._sent_at = time.monotonic()
        try:
            self._write(msg)
            self._send_error = None
        except (BrokenPipeError, OSError) as exc:
            self._send_error = exc

    def collect(self, timeout: Optional[float] = None) -> dict:
        """The answer to the last ``submit``, with a ``timeout`` / ``crash`` failure if it came to that
        (the worker is then killed; the next ``submit`` starts a fresh one)."""
        timeout = self.timeout if timeout is None else timeout
        t0 = self._sent_at
        deadline, current, started = t0 + timeout, None, []
        try:
            if self._send_error is not None:
                raise WorkerDied
            while True:
                result = self._read(deadline)
                if "progress" not in result:
                    break
                current = result["progress"]            # an operation starts: its own timeout
                started.append(current)
                deadline = time.monotonic() + timeout * OP_TIMEOUT_FACTOR.get(current, 1)
        except TimeoutError:
            self.kill()
            self.restarts += 1
            what = (f"operation {current} gave no answer within {timeout * OP_TIMEOUT_FACTOR.get(current, 1):.0f} s "
                    f"(after {', '.join(started[:-1]) or 'nothing'})"
                    if current else f"no answer within {timeout:.0f} s")
            return {"ops": {current: "FAIL:timeout"} if current else {}, "hashes": {}, "seconds": {}, "fatal": True,
                    "wall": time.monotonic() - t0,
                    "failures": [_failure(current or "worker", "timeout", f"{what}; worker killed")]}
        except (WorkerDied, EOFError):
            rc = self.kill()
            self.restarts += 1
            what = f"signal {signal.Signals(-rc).name}" if rc is not None and rc < 0 else f"exit status {rc}"
            kind = "killed/oom" if rc == -signal.SIGKILL else "crash"
            return {"ops": {}, "hashes": {}, "seconds": {}, "fatal": True, "wall": time.monotonic() - t0,
                    "failures": [_failure("worker", kind, f"worker died ({what})", self._log_tail())]}
        result["wall"] = time.monotonic() - t0
        self._note(result)
        if result.get("fatal"):
            self.kill()
            self.restarts += 1
        return result

    def run(self, msg: dict, timeout: Optional[float] = None) -> dict:
        self.submit(msg)
        return self.collect(timeout)

    def evaluate(self, data: bytes, ops: Sequence[str] = OPS) -> dict:
        return self.run({"cmd": "case", "data": data, "ops": list(ops)})

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ======================================================================= campaigns


def primary_op(data: bytes) -> str:
    return "numpy" if len(data) > 8 and data[8] >= 2 else "torch"


def case_outcome(data: bytes, result: dict) -> str:
    if result["failures"]:
        return "FAIL:" + result["failures"][0]["kind"]
    return result["ops"].get(primary_op(data), "none")


#: Decoder bugs this harness found, reported and left unfixed (the harness never edits the
#: decoder): name -> (predicate on a failure dict, one line).  Failures that match are still
#: failures (counted, saved, exit status 1); ``tests/test_fuzz.py`` checks there are no *other* ones
#: and pins each known one with a strict xfail, so a fix makes the suite say so.
KNOWN_FAILURES: dict[str, tuple[Callable[[dict], bool], str]] = {
    # Example of an entry (the bug it describes was found by this harness and has been fixed: a
    # TDAT step index >= 192 raised IndexError from STEP_TABLE[step]; now a FormatError):
    # "step-outside-table": (
    #     lambda f: f["kind"] == "IndexError" and "STEP_TABLE[" in f.get("traceback", ""),
    #     "a TDAT record with step index >= 192 raises IndexError instead of a FormatError"),
}


def known_failure(failure: dict) -> Optional[str]:
    for name, (match, _) in KNOWN_FAILURES.items():
        if match(failure):
            return name
    return None


def _frame_work(costs: Any) -> int:
    """A frame's cost as the decoder's limit counts it (``Costs.work`` where the decoder has it,
    else its multiply-adds)."""
    return int(getattr(costs, "work", costs.macs))


def _mask_heads(payload: bytes, limit: int = 64) -> list[str]:
    """One line per mask record of a MASK payload (index, bits, coder, context rows), read without
    decoding anything."""
    from nfcodec.bitstream import ByteReader

    reader = ByteReader(payload, "MASK")
    out = []
    for _ in range(min(reader.uvarint("count"), limit)):
        index, n, coder = reader.uvarint("index"), reader.uvarint("n"), reader.u8("coder")
        if coder == 0:
            reader.u8("bit")
            what = "const"
        elif coder == 1:
            reader.uvarint("ones")
            reader.take(4 * reader.uvarint("n_words"), "words")
            what = "bernoulli"
        elif coder == 2:
            L = reader.uvarint("L")
            reader.take(4 * reader.uvarint("n_words"), "words")
            what = f"context, {n // max(1, L):,} rows of {L}"
        elif coder == 3:
            reader.u8("bit"), reader.u8("k"), reader.uvarint("m")
            reader.take(reader.uvarint("n_bytes"), "bytes")
            what = "runs"
        else:
            out.append(f"mask {index}: coder {coder}")
            break
        out.append(f"mask {index}: {n:,} bits, {what}")
    return out


def context_rows_file(width: int = 2048) -> bytes:
    """A ~170-byte format 2.0 file found by ``rearch`` (in this minimal form): a pruned 1x1-pixel SIREN
    image with a ``width x width`` hidden matrix whose all-ones keep mask is coded with the
    ``context`` coder in rows of ONE bit (``width**2`` rows: the adaptive counts make each row cost
    next to no bits).  A decoder that decodes context rows one by one in Python (about 10 us a row)
    spends ~40 s on it at width 2048, ~3 minutes at 4096, within every other limit."""
    from nfcodec.archs import ARCHS

    header = StreamHeader(media=0, width=1, height=1, frames=1, fps_num=0, fps_den=1, channels=3, bit_depth=8,
                          colorspace=0, arch=0, representation=1, layout=0, n_segments=1)
    record = SirenArch(in_features=2, out_features=3, width=width, depth=2, w0_first=30.0, w0_hidden=30.0)
    shapes = ARCHS.by_id(0).param_shapes(record)
    mask = _uvarint(1) + _mask_record(2, width * width, 2, _context_const_body(width * width, True))
    tdat = _uvarint(len(shapes)) + b"".join(_const_record(i, 40, math.prod(s), 0) for i, s in enumerate(shapes))
    doc = Doc(SIGNATURE, b"\x02\x00", [RawChunk(b"NHDR", header.pack()), RawChunk(b"ARCH", record.pack()),
                                        RawChunk(b"MASK", mask), RawChunk(b"TDAT", tdat), RawChunk(b"NEND", b"")])
    return doc.to_bytes()


def describe_cost(data: bytes) -> str:
    """What a file asks of the decoder (for timeouts): geometry, parameters, work per frame against
    the default limits, and the coders (context: row counts) of its MASK records."""
    try:
        from nfcodec.archs import ARCHS, param_count
        from nfcodec.bitstream import probe, read_container
        from nfcodec.decoder import DEFAULT_LIMITS

        info = probe(data)
        h, spec = info.header, ARCHS.by_id(info.header.arch)
        costs = spec.costs(info.arch, h)
        params = param_count(spec.param_shapes(info.arch))
        limit = getattr(DEFAULT_LIMITS, "max_frame_work", getattr(DEFAULT_LIMITS, "max_frame_macs", 0))
        note = (f"{spec.name} {h.width}x{h.height}x{h.frames} ({len(data)} bytes): {params:,} params "
                f"(limit {DEFAULT_LIMITS.max_params:,}), {costs.macs:.3g} MACs and {_frame_work(costs):.3g} "
                f"work/frame (limit {limit:.3g}), peak {costs.peak_bytes / 2**20:,.0f} MiB")
        for c in read_container(data).chunks:
            if c.ctype == b"MASK":
                try:
                    note += "; " + "; ".join(_mask_heads(c.data))
                except Exception:  # noqa: BLE001
                    note += "; MASK unreadable"
        return note
    except Exception as exc:  # noqa: BLE001  (a description only)
        return f"(cost not available: {type(exc).__name__}: {exc})"


def source_fingerprint() -> str:
    """SHA-256 (12 hex digits) of the decoder's sources (nfcodec/, bitstream/): a report says which
    code it ran against, and whether that changed during the run."""
    digest = hashlib.sha256()
    for folder in ("nfcodec", "bitstream"):
        for path in sorted((REPO / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run_campaign(cases: int, seed: int = 0, *, timeout: float = DEFAULT_TIMEOUT, mem_cap: int = DEFAULT_MEM_CAP,
                 budget: Optional[Budget] = None, progress: Optional[Callable[[int, dict], None]] = None,
                 failures_dir: Optional[Path] = None) -> dict:
    """Generate and run ``cases`` cases of campaign ``seed``; returns the report (JSON-ready).

    The next case is generated while the worker decodes the current one."""
    budget = budget or Budget()
    t_start = time.monotonic()
    fingerprint = source_fingerprint()
    seeds = load_seeds()
    per_seed: Counter = Counter()
    per_kind: Counter = Counter()
    outcomes: Counter = Counter()
    per_op: dict[str, Counter] = {op: Counter() for op in OPS}
    kind_outcomes: dict[str, Counter] = {}
    failures: list[dict] = []
    saved: list[dict] = []
    times: list[float] = []
    slowest: Optional[dict] = None
    biggest: Optional[dict] = None
    novel_pixels = 0
    oracle_checked = 0
    gen_seconds = 0.0
    with Runner(mem_cap=mem_cap, timeout=timeout) as runner:
        t_ready = time.monotonic()
        runner.start()
        startup = time.monotonic() - t_ready
        baselines: dict[str, dict] = {}
        for s in seeds:  # the unmutated seeds must decode (with every backend that can)
            res = runner.evaluate(s.data)
            if res["failures"] or res["ops"].get(primary_op(s.data)) != "pixels" or (
                    s.major >= 2 and res["ops"].get("torch") != "pixels"):
                raise RuntimeError(f"seed {s.name} does not decode: {res['ops']} {res['failures']}")
            baselines[s.name] = res
        seen_hashes = {h for r in baselines.values() for h in r["hashes"].values()}
        prev_rss = runner.max_rss_kb

        def generate(i: int) -> Case:
            nonlocal gen_seconds
            g0 = time.monotonic()
            case = make_case(seed, i, budget)
            gen_seconds += time.monotonic() - g0
            return case

        nxt = generate(0) if cases else None
        for i in range(cases):
            case = nxt
            assert case is not None
            runner.submit({"cmd": "case", "data": case.data, "ops": list(OPS)})
            nxt = generate(i + 1) if i + 1 < cases else None
            res = runner.collect()
            for f in res["failures"]:
                if f["kind"] == "timeout":
                    f["message"] += f"; the file: {describe_cost(case.data)}"
            res["failures"] = list(res["failures"]) + check_expectation(case, res, baselines[case.seed_name])
            if case.expect is not None:
                oracle_checked += 1
            outcome = case_outcome(case.data, res)
            per_seed[case.seed_name] += 1
            outcomes[outcome] += 1
            for k in set(case.kinds):
                per_kind[k] += 1
                kind_outcomes.setdefault(k, Counter())[outcome] += 1
            for op, o in res["ops"].items():
                per_op[op][o] += 1
            if any(h not in seen_hashes for h in res["hashes"].values()):
                novel_pixels += 1
                seen_hashes.update(res["hashes"].values())
            # the worker's own time for the case (the wall clock from submit also holds the parent
            # generating the next case); a timeout or crash counts its wall time
            wall = sum(res["seconds"].values()) if res["seconds"] else res.get("wall", 0.0)
            times.append(wall)
            rec = {"case": case.case_id, "index": i, "seed_file": case.seed_name, "kinds": case.kinds,
                   "steps": case.steps, "bytes": len(case.data), "outcome": outcome, "seconds": round(wall, 4)}
            if slowest is None or rec["seconds"] > slowest["seconds"]:
                slowest = dict(rec, ops=res["ops"], op_seconds={k: round(v, 4) for k, v in res["seconds"].items()})
            rss = res.get("maxrss_kb", 0)
            if rss > prev_rss:
                if biggest is None or rss - prev_rss > biggest["rss_growth_kb"]:
                    biggest = dict(rec, rss_growth_kb=rss - prev_rss, maxrss_kb=rss)
                prev_rss = rss
            if res.get("fatal"):
                prev_rss = 0  # a fresh worker starts from scratch
            if res["failures"]:
                where = save_failure(failures_dir, case, res, budget) if failures_dir is not None else {}
                if where:
                    saved.append(dict(where, case=case.case_id))
                for f in res["failures"]:
                    failures.append(dict(rec, failure=f, ops=res["ops"], known=known_failure(f), **where))
            if progress is not None:
                progress(i, rec)
        restarts = runner.restarts
        max_rss = runner.max_rss_kb
        vm_peak = runner.max_vm_peak_kb
    times.sort()

    def pct(q: float) -> float:
        return round(times[min(len(times) - 1, int(q * len(times)))], 4) if times else 0.0

    unknown = [f for f in failures if f["known"] is None]
    fingerprint_end = source_fingerprint()
    return {
        "sources": fingerprint if fingerprint == fingerprint_end else f"{fingerprint} -> {fingerprint_end} (CHANGED)",
        "seed": seed, "cases": cases, "timeout_s": timeout, "mem_cap_bytes": mem_cap,
        "budget": dataclasses.asdict(budget),
        "wall_s": round(time.monotonic() - t_start, 2), "worker_start_s": round(startup, 2),
        "generation_s": round(gen_seconds, 2),
        "case_seconds": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0),
                         "total": round(sum(times), 2)},
        "per_seed_file": dict(sorted(per_seed.items())), "per_mutation_kind": dict(sorted(per_kind.items())),
        "outcomes": dict(outcomes.most_common()),
        "per_op_outcomes": {k: dict(v.most_common()) for k, v in per_op.items()},
        "outcomes_by_kind": {k: dict(v.most_common()) for k, v in sorted(kind_outcomes.items())},
        "cases_with_new_pixels": novel_pixels, "oracle_checked": oracle_checked,
        "failures": failures, "n_failures": len(failures), "failing_cases": len({f["case"] for f in failures}),
        "n_unknown_failures": len(unknown), "unknown_failing_cases": len({f["case"] for f in unknown}),
        "known_failures": {name: sum(1 for f in failures if f["known"] == name) for name in KNOWN_FAILURES},
        "saved_inputs": saved,
        "worker_restarts": restarts, "peak_rss_kb": max_rss, "peak_vm_kb": vm_peak,
        "slowest_case": slowest, "largest_memory_case": biggest,
    }


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:60]


def repro_command(path: Path, op: str) -> str:
    """The shortest command that shows a failure of ``op`` on the file at ``path``."""
    if op in ("numpy", "torch"):
        return (f".venv/bin/python -c \"from nfcodec.decoder import open_stream; "
                f"s = open_stream(open('{path}', 'rb').read(), backend='{op}'); "
                f"[f for f in s.frames(range(min(2, s.header.frames)))]\"")
    if op in ("probe", "probe-lenient"):
        lenient = ", allow_truncated=True" if op == "probe-lenient" else ""
        return f".venv/bin/python -c \"import nfcodec; nfcodec.probe(open('{path}', 'rb').read(){lenient})\""
    if op == "api":
        return f".venv/bin/python -c \"import nfcodec; nfcodec.decode(open('{path}', 'rb').read())\""
    return f".venv/bin/python tests/nfc_fuzz.py replay {path}"


def save_failure(folder: Path, case: Case, result: dict, budget: Optional[Budget] = None) -> dict:
    """Write a failing input (once per case) and a JSON description beside it: the mutation steps, every
    failure with its traceback, and reproduction commands.  Returns ``{"path", "repro"}``."""
    budget = budget or Budget()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first = result["failures"][0]
    stem = f"{case.case_id}-{_slug(case.seed_name.replace('/', '-').removesuffix('.nfc'))}-{_slug(first['kind'])}"
    path = folder / f"{stem}.nfc"
    path.write_bytes(case.data)
    # the shortest command: a decoder call when the failure is a decoder exception
    op = next((f["op"] for f in result["failures"] if f["op"] in ("probe", "probe-lenient", "numpy", "torch", "api")),
              first["op"])
    repro = repro_command(path, op)
    meta = {"case": case.case_id, "seed": case.seed_value, "index": case.index, "seed_file": case.seed_name,
            "kinds": case.kinds, "steps": case.steps, "ops": result["ops"],
            "failures": [dict(f, known=known_failure(f)) for f in result["failures"]], "repro": repro,
            "replay": f".venv/bin/python tests/nfc_fuzz.py replay {path}",
            "regenerate": f".venv/bin/python tests/nfc_fuzz.py case --seed {case.seed_value} --index {case.index} "
                          f"--frame-macs {budget.frame_macs} --frame-pixels {budget.frame_pixels} "
                          f"--big-share {budget.big_share} --out FILE"}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return {"path": str(path), "repro": repro}


def format_report(report: dict, limit: int = 40) -> str:
    """Human-readable figures of a campaign report (at most ``limit`` failing cases listed)."""
    out = io.StringIO()
    p = functools.partial(print, file=out)
    p(f"decoder sources: {report['sources']}")
    p(f"cases: {report['cases']} (campaign seed {report['seed']}), wall {report['wall_s']} s "
      f"(worker start {report['worker_start_s']} s, generation {report['generation_s']} s), "
      f"worker restarts {report['worker_restarts']}")
    p(f"peak memory of the workers: ru_maxrss {report['peak_rss_kb'] / 1024:.1f} MiB, "
      f"VmPeak {report['peak_vm_kb'] / 1024:.1f} MiB (cap {report['mem_cap_bytes'] / 2**30:.2f} GiB address space), "
      f"timeout {report['timeout_s']} s per operation")
    cs = report["case_seconds"]
    p(f"seconds per case (all ops): p50 {cs['p50']}, p90 {cs['p90']}, p99 {cs['p99']}, max {cs['max']}, "
      f"total {cs['total']}")
    p("cases per seed file:")
    for k, v in report["per_seed_file"].items():
        p(f"  {k:32s} {v}")
    p("cases per mutation kind (a stacked case counts for each of its kinds):")
    for k, v in report["per_mutation_kind"].items():
        top = ", ".join(f"{o} {n}" for o, n in list(report["outcomes_by_kind"][k].items())[:4])
        p(f"  {k:16s} {v:6d}   {top}")
    p("outcome histogram (per case: failure, else the outcome of the auto backend):")
    for k, v in report["outcomes"].items():
        p(f"  {k:32s} {v}")
    p("per operation:")
    for op, hist in report["per_op_outcomes"].items():
        p(f"  {op:14s} " + ", ".join(f"{k} {v}" for k, v in hist.items()))
    p(f"cases rendering pixels never seen before: {report['cases_with_new_pixels']}; "
      f"single-mutation oracle checks: {report['oracle_checked']}")
    s = report["slowest_case"]
    if s:
        p(f"slowest case: {s['case']} {s['seconds']} s ({s['seed_file']}; {' | '.join(s['steps'])}) -> "
          f"{s['outcome']}; per op {s.get('op_seconds')}")
    b = report.get("largest_memory_case")
    if b:
        p(f"largest ru_maxrss growth: {b['case']} +{b['rss_growth_kb'] / 1024:.1f} MiB "
          f"({b['seed_file']}; {' | '.join(b['steps'])}) -> {b['outcome']}")
    p(f"failures: {report['n_failures']} in {report['failing_cases']} cases "
      f"({report['n_unknown_failures']} not known, in {report['unknown_failing_cases']} cases)")
    groups: Counter = Counter((f["known"] or "NEW", f["failure"]["kind"], f["failure"]["op"]) for f in report["failures"])
    for (known, kind, op), n in sorted(groups.items()):
        p(f"  {n:5d}  {kind:20s} op {op:14s} {'known: ' + known if known != 'NEW' else 'NEW'}")
    for name, count in report.get("known_failures", {}).items():
        if count:
            p(f"  known {name}: {KNOWN_FAILURES[name][1]}")
    shown: set = set()
    for f in report["failures"]:
        if f["case"] in shown:
            continue
        shown.add(f["case"])
        if len(shown) > limit:
            p(f"  ... {report['failing_cases'] - limit} more failing cases in the JSON report")
            break
        fl = f["failure"]
        p(f"  {f['case']} [{f['seed_file']}] {fl['op']}: {fl['message'][:240]}"
          + (f"  (known: {f['known']})" if f["known"] else ""))
        p(f"      steps: {' | '.join(f['steps'])}")
        if "path" in f:
            p(f"      input: {f['path']}")
            p(f"      repro: {f['repro']}")
    return out.getvalue()


# ======================================================================= command line


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="(internal) serve cases on stdin/stdout")
    w.add_argument("--mem-cap", type=int, default=DEFAULT_MEM_CAP)
    w.add_argument("--torch-threads", type=int, default=1)
    r = sub.add_parser("replay", help="run the decoder operations on a file in this process")
    r.add_argument("file", type=Path)
    c = sub.add_parser("case", help="regenerate one case")
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--index", type=int, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--frame-macs", type=int, default=Budget().frame_macs)
    c.add_argument("--frame-pixels", type=int, default=Budget().frame_pixels)
    c.add_argument("--big-share", type=float, default=0.0)
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        worker_main(args.mem_cap, args.torch_threads)
        return 0
    if args.cmd == "replay":
        data = args.file.read_bytes()
        res = evaluate(data)
        print(json.dumps({"ops": res["ops"], "seconds": res["seconds"]}, indent=2))
        for f in res["failures"]:
            print(f"--- {f['op']}: {f['kind']}: {f['message']}\n{f['traceback']}")
        return 1 if res["failures"] else 0
    case = make_case(args.seed, args.index, Budget(frame_macs=args.frame_macs, frame_pixels=args.frame_pixels,
                                                   big_share=args.big_share))
    args.out.write_bytes(case.data)
    print(json.dumps({"case": case.case_id, "seed_file": case.seed_name, "steps": case.steps,
                      "expect": case.expect}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
