"""Meta-learned priors: building, packing, reading and finding ``.nfp`` prior files.

A *prior* is a meta-learned initialisation of one network (architecture + record) for signals
or tiles of one size.  A stream coded from it carries the SHA-256 of the prior file's bytes in
its ``PRIR`` chunk and codes its weights as residuals from the prior's values.  The byte format
is :mod:`nfcodec.bitstream.priorfile` (spec: ``docs/priors.md``); this module adds what needs the
architecture registry (tensor shapes, record vs media/size checks) and the lookup of files.

Lookup (:func:`find_prior`): explicit paths (files or directories), then the directories of
``NFC_PRIOR_PATH`` (``os.pathsep``-separated), then the packaged directory ``nfcodec/priors/``;
files in directories are the ``*.nfp`` ones; a file matches when the SHA-256 of its bytes is
the digest asked for.  No torch, no pickle: every size is bounded before anything is allocated.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Sequence, Union

import numpy as np

from .archs import ARCHS, param_count
from .bitstream.errors import FormatError
from .bitstream.headers import MEDIA
from .bitstream.priorfile import (
    FLAG_LRS,
    FLAG_MASKS,
    MAX_PRIOR_STEP,
    MAX_PRIOR_SYMBOL,
    MAX_PRIOR_VALUES,
    PriorHeader,
    RawTensor,
    read_prior_file,
    write_prior_file,
)
from .errors import InputError
from .exact.layers import QTensor
from .quant import STEP_TABLE

__all__ = [
    "Prior",
    "PriorNotFoundError",
    "PriorMismatchError",
    "PRIOR_PATH_ENV",
    "PACKAGED_DIR",
    "MAX_PRIOR_FILE_BYTES",
    "prior_from_float",
    "pack_prior",
    "read_prior",
    "load_prior",
    "find_prior",
    "packaged_priors",
    "default_prior",
    "describe",
]

#: Environment variable listing directories of prior files (``os.pathsep``-separated).
PRIOR_PATH_ENV = "NFC_PRIOR_PATH"
#: The priors shipped with the package (``<name>.nfp``).
PACKAGED_DIR = Path(__file__).resolve().parent / "priors"
#: No valid prior file is larger (2**26 values with step sizes and masks, plus a generous meTA).
MAX_PRIOR_FILE_BYTES = 2**30
_DEFAULT_NAMES = {0: "default-image", 1: "default-video"}


class PriorNotFoundError(InputError):
    """No prior file with the digest a stream needs (or the name asked for) was found.

    Attributes:
        digest: The SHA-256 looked for (b"" for a lookup by name).
    """

    def __init__(self, message: str, digest: bytes = b"") -> None:
        super().__init__(message)
        self.digest = digest


class PriorMismatchError(PriorNotFoundError):
    """A prior file given explicitly is not the one the stream needs (its hash differs)."""


@dataclass(frozen=True, eq=False)
class Prior:
    """A prior: exact quantized values of every parameter of one network, plus encoder extras.

    Attributes:
        arch: Architecture name (``nfcodec.archs.ARCHS``), e.g. ``'siren'``.
        record: Its ARCH record (``SirenArch``, ``NervArch`` ...).
        media: 0 image, 1 video.
        size: ``(frames, height, width)`` of the signal or tile the prior is for.
        tensors: Exact values ``q * STEP_TABLE[step]`` (int64 ``q`` with |q| < 2**20, step < 160),
            shapes ``param_shapes(record)`` in parameter order.
        lrs: Meta-SGD step sizes (float32, parameter shapes), or None.
        masks: Keep masks (bool, parameter shapes), or None; masked-out values are 0.
        meta: Training settings and measured figures (JSON object).
        digest: SHA-256 of the file bytes it was read from / packed to (b"" if neither).
        name: File stem, e.g. ``'image-siren'``.
        nbytes: Size of the file it was read from (0 if none).
    """

    arch: str
    record: Any
    media: int
    size: tuple[int, int, int]
    tensors: tuple[QTensor, ...]
    lrs: Optional[tuple[np.ndarray, ...]] = None
    masks: Optional[tuple[np.ndarray, ...]] = None
    meta: dict = field(default_factory=dict)
    digest: bytes = b""
    name: str = ""
    nbytes: int = 0

    def values(self, i: int) -> np.ndarray:
        """Tensor ``i``'s exact values (float64, parameter shape)."""
        return self.tensors[i].values()

    @property
    def hexdigest(self) -> str:
        """The digest as 64 hex digits ('' when the prior was never packed or read)."""
        return self.digest.hex()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The parameter shapes of its record."""
        return [tuple(t.q.shape) for t in self.tensors]


# --------------------------------------------------------------------------- building


def _checker(media: int, size: tuple[int, int, int], arch_id: int) -> SimpleNamespace:
    """What ``ArchSpec.check`` reads of a stream header, for a prior's media and size."""
    frames, height, width = size
    return SimpleNamespace(media=media, frames=frames, height=height, width=width, channels=3, arch=arch_id)


def _quantize(x: np.ndarray, i: int) -> tuple[int, np.ndarray]:
    """The finest step index < 160 whose symbols stay |q| < 2**20, and the symbols (round half even)."""
    m = float(np.abs(x).max(initial=0.0))
    for step in range(MAX_PRIOR_STEP - 1, -1, -1):     # max |rint(x / s)| = rint(max |x| / s)
        if np.rint(m / STEP_TABLE[step]) < MAX_PRIOR_SYMBOL:
            q = np.rint(x / STEP_TABLE[step])
            assert q.size == 0 or np.abs(q).max() < MAX_PRIOR_SYMBOL
            return step, q.astype(np.int64)
    raise ValueError(f"tensor {i}: max |value| {m:.6g} is too large for a prior (|q| < 2**20 at step 1.0)")


def prior_from_float(arch: str, record: Any, media: int, size: Sequence[int], tensors: Sequence[Any],
                     lrs: Optional[Sequence[Any]] = None, masks: Optional[Sequence[Any]] = None,
                     meta: Optional[dict] = None) -> Prior:
    """Build a prior from float tensors (e.g. a meta-learned initialisation).

    Each tensor is quantized to the finest step index below 160 whose symbols stay |q| < 2**20
    (``q = np.rint(x / STEP_TABLE[step])``, round half to even).

    Args:
        arch: Architecture name, e.g. ``'siren'``.
        record: Its ARCH record (the tensor shapes are ``param_shapes(record)``).
        media: 0 image, 1 video.
        size: ``(frames, height, width)`` of the signal or tile the prior is for.
        tensors: Float arrays (anything ``np.asarray`` takes), parameter shapes and order.
        lrs: Meta-SGD step sizes, one array per tensor (stored as float32), or None.
        masks: Keep masks, one bool array per tensor, or None; where a mask is False the
            tensor's value MUST be exactly 0 (multiply by the mask first).
        meta: JSON-serializable training settings and figures.

    Returns:
        The prior (``digest`` b"": use ``read_prior(pack_prior(p))`` for the packed one).

    Raises:
        ConfigError: ``arch`` is unknown.
        ValueError: Anything else inconsistent (FormatError / FieldRangeError for the record vs
            media and size, plain ValueError for tensors, masks, step sizes, meta).
    """
    spec = ARCHS.by_name(arch)
    if not isinstance(record, spec.record_cls):
        raise ValueError(f"record {type(record).__name__} is not the ARCH record of {arch} ({spec.record_cls.__name__})")
    frames, height, width = (int(v) for v in size)
    header = PriorHeader(media, spec.wire_id, frames, height, width, max(1, len(tensors)), 0)
    spec.check(record, _checker(media, (frames, height, width), spec.wire_id))
    shapes = [tuple(s) for s in spec.param_shapes(record)]
    if param_count(shapes) > MAX_PRIOR_VALUES:
        raise ValueError(f"{arch} record has {param_count(shapes)} parameters, more than {MAX_PRIOR_VALUES}")
    if len(tensors) != len(shapes):
        raise ValueError(f"{len(tensors)} tensors, the {arch} record has {len(shapes)}")
    floats = [np.asarray(t, dtype=np.float64) for t in tensors]
    for i, (x, shape) in enumerate(zip(floats, shapes)):
        if x.shape != shape:
            raise ValueError(f"tensor {i} has shape {x.shape}, the {arch} record says {shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"tensor {i} has a value that is not finite")
    keep = None
    if masks is not None:
        keep = tuple(np.asarray(m).astype(bool) for m in masks)
        if len(keep) != len(shapes) or any(m.shape != s for m, s in zip(keep, shapes)):
            raise ValueError("masks: one bool array per tensor, in the tensor's shape")
        for i, (x, m) in enumerate(zip(floats, keep)):
            if x[~m].any():
                raise ValueError(f"tensor {i}: {int(np.count_nonzero(x[~m]))} masked-out values are not 0")
    steps = None
    if lrs is not None:
        steps = tuple(np.asarray(v, dtype=np.float32) for v in lrs)
        if len(steps) != len(shapes) or any(v.shape != s for v, s in zip(steps, shapes)):
            raise ValueError("lrs: one array per tensor, in the tensor's shape")
        if not all(np.isfinite(v).all() for v in steps):
            raise ValueError("lrs: Meta-SGD step sizes must be finite")
    meta = dict(meta or {})
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta must be JSON-serializable: {e}") from None
    q = [_quantize(x, i) for i, x in enumerate(floats)]
    return Prior(arch, record, header.media, (frames, height, width),
                 tuple(QTensor(symbols, step) for step, symbols in q), steps, keep, meta)


# --------------------------------------------------------------------------- bytes


def pack_prior(prior: Prior) -> bytes:
    """The prior file of ``prior`` (deterministic; its SHA-256 is the digest streams store).

    Raises:
        ValueError: The prior is inconsistent (shapes vs record, steps, symbols, masks ...).
    """
    spec = ARCHS.by_name(prior.arch)
    if not isinstance(prior.record, spec.record_cls):
        raise ValueError(f"record {type(prior.record).__name__} is not the ARCH record of {prior.arch}")
    shapes = [tuple(s) for s in spec.param_shapes(prior.record)]
    if len(prior.tensors) != len(shapes):
        raise ValueError(f"{len(prior.tensors)} tensors, the {prior.arch} record has {len(shapes)}")
    raw = []
    for i, (t, shape) in enumerate(zip(prior.tensors, shapes)):
        if tuple(t.q.shape) != shape:
            raise ValueError(f"tensor {i} has shape {tuple(t.q.shape)}, the {prior.arch} record says {shape}")
        q = np.asarray(t.q)
        if q.size and int(np.abs(q.astype(np.int64)).max()) >= MAX_PRIOR_SYMBOL:
            raise ValueError(f"tensor {i}: a symbol has |q| >= {MAX_PRIOR_SYMBOL}")
        raw.append(RawTensor(int(t.step), q.astype(np.int32)))
    flags = (FLAG_LRS if prior.lrs is not None else 0) | (FLAG_MASKS if prior.masks is not None else 0)
    frames, height, width = prior.size
    header = PriorHeader(prior.media, spec.wire_id, frames, height, width, len(raw), flags)
    spec.check(prior.record, _checker(prior.media, prior.size, spec.wire_id))
    lrs = masks = None
    if prior.lrs is not None:
        if len(prior.lrs) != len(shapes) or any(np.shape(v) != s for v, s in zip(prior.lrs, shapes)):
            raise ValueError("lrs: one array per tensor, in the tensor's shape")
        lrs = np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in prior.lrs]) if shapes else \
            np.zeros(0, np.float32)
    if prior.masks is not None:
        if len(prior.masks) != len(shapes) or any(np.shape(m) != s for m, s in zip(prior.masks, shapes)):
            raise ValueError("masks: one bool array per tensor, in the tensor's shape")
        masks = [np.asarray(m, dtype=bool).reshape(-1) for m in prior.masks]
    return write_prior_file(header, prior.record, raw, lrs, masks, prior.meta)


def read_prior(data: bytes, name: str = "") -> Prior:
    """Parse and check a prior file.

    Args:
        data: The file's bytes.
        name: The name to give the prior (its file stem).

    Returns:
        The prior, with ``digest = sha256(data)``.

    Raises:
        FormatError: The bytes break a rule of the format (subclasses as for streams), or the
            tensors do not have the counts of ``param_shapes(ARCH)``, or the ARCH record does
            not fit PHDR's media and size.
    """
    pf = read_prior_file(data)
    h = pf.header
    spec = ARCHS.by_id(h.arch)
    size = (h.frames, h.height, h.width)
    spec.check(pf.arch, _checker(h.media, size, h.arch))
    shapes = [tuple(s) for s in spec.param_shapes(pf.arch)]
    if len(shapes) != h.n_tensors:
        raise FormatError(f"PHDR.n_tensors={h.n_tensors} but the ARCH record ({spec.name}) has {len(shapes)} "
                          "parameter tensors")
    for i, (t, shape) in enumerate(zip(pf.tensors, shapes)):
        if t.count != math.prod(shape):
            raise FormatError(f"PTEN tensor {i}: {t.count} values, the ARCH record ({spec.name}) gives it shape "
                              f"{shape} ({math.prod(shape)} values)")
    tensors = tuple(QTensor(t.symbols.astype(np.int64).reshape(s), t.step) for t, s in zip(pf.tensors, shapes))
    lrs = masks = None
    if pf.lrs is not None:
        ends = np.cumsum([0] + [t.count for t in pf.tensors])
        lrs = tuple(pf.lrs[a:b].reshape(s) for a, b, s in zip(ends[:-1], ends[1:], shapes))
    if pf.masks is not None:
        masks = tuple(m.reshape(s) for m, s in zip(pf.masks, shapes))
    return Prior(spec.name, pf.arch, h.media, size, tensors, lrs, masks, pf.meta,
                 hashlib.sha256(data).digest(), name, len(data))


# --------------------------------------------------------------------------- files and lookup


def _read_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_PRIOR_FILE_BYTES:
        raise FormatError(f"prior {path}: {size} bytes, more than any prior file ({MAX_PRIOR_FILE_BYTES})")
    return path.read_bytes()


def _with_path(e: Exception, path: Path) -> Exception:
    """The same error (same class and attributes) with the file named in its message."""
    new = copy.copy(e)
    new.args = (f"prior {path}: {e}",)
    return new


def _load_file(path: Path, data: Optional[bytes] = None) -> Prior:
    data = _read_bytes(path) if data is None else data
    try:
        return read_prior(data, name=path.stem)
    except FormatError as e:
        raise _with_path(e, path) from None


_HASHES: dict[tuple[str, int, int], bytes] = {}


def _file_hash(path: Path) -> Optional[bytes]:
    """SHA-256 of a file (cached by path, mtime and size); None if too big to be a prior."""
    st = path.stat()
    if st.st_size > MAX_PRIOR_FILE_BYTES:
        return None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    digest = _HASHES.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _HASHES[key] = h.digest()
    return digest


def _env_dirs() -> list[Path]:
    return [Path(p) for p in os.environ.get(PRIOR_PATH_ENV, "").split(os.pathsep) if p]


def _match_in_dir(directory: Path, digest: bytes) -> Optional[Prior]:
    """The prior of a ``*.nfp`` file of ``directory`` whose hash is ``digest`` (unreadable files skipped)."""
    try:
        files = sorted(p for p in directory.glob("*.nfp") if p.is_file())
    except OSError:
        return None
    for path in files:
        try:
            if _file_hash(path) != digest:
                continue
            data = _read_bytes(path)
        except OSError:
            continue
        if hashlib.sha256(data).digest() == digest:     # the file may have changed since it was hashed
            return _load_file(path, data)
    return None


def find_prior(digest: Union[bytes, str], paths: Sequence[Union[str, os.PathLike]] = ()) -> Prior:
    """Find the prior file whose SHA-256 is ``digest``.

    Search order: ``paths`` (files, or directories of ``*.nfp`` files), then the directories of
    ``$NFC_PRIOR_PATH``, then the packaged priors; the first file with that hash wins.

    Args:
        digest: 32 bytes (a stream's ``PRIR.digest``) or 64 hex digits.
        paths: Explicit files or directories (``--prior PATH``).

    Returns:
        The prior read from that file.

    Raises:
        PriorMismatchError: Nothing matched and a file given explicitly has another hash.
        PriorNotFoundError: Nothing matched, or an explicit path does not exist.
        FormatError: The matching file is not a valid prior (the message names it).
        OSError: An explicit file cannot be read.
    """
    if isinstance(digest, str):
        try:
            digest = bytes.fromhex(digest)
        except ValueError:
            digest = b""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise ValueError(f"a prior digest is 32 bytes (64 hex digits), got {digest!r}")
    digest = bytes(digest)
    searched: list[str] = []
    mismatch: Optional[tuple[Path, bytes]] = None
    for p in paths:
        path = Path(p)
        searched.append(str(path))
        if path.is_dir():
            found = _match_in_dir(path, digest)
            if found is not None:
                return found
        elif path.is_file():
            data = _read_bytes(path)
            actual = hashlib.sha256(data).digest()
            if actual == digest:
                return _load_file(path, data)
            mismatch = mismatch or (path, actual)
        else:
            raise PriorNotFoundError(f"prior path {path} does not exist", digest)
    for directory in _env_dirs():
        searched.append(f"{directory} (${PRIOR_PATH_ENV})")
        if directory.is_dir():
            found = _match_in_dir(directory, digest)
            if found is not None:
                return found
    searched.append(f"{PACKAGED_DIR} (packaged)")
    if PACKAGED_DIR.is_dir():
        found = _match_in_dir(PACKAGED_DIR, digest)
        if found is not None:
            return found
    if mismatch is not None:
        raise PriorMismatchError(f"prior {mismatch[0]} has hash {mismatch[1].hex()}, the stream needs {digest.hex()}",
                                 digest)
    raise PriorNotFoundError(f"this stream needs prior {digest.hex()}; not found in {', '.join(searched)} "
                             f"(pass --prior PATH or set {PRIOR_PATH_ENV})", digest)


def packaged_priors() -> dict[str, Path]:
    """Name (file stem) -> path of every packaged ``*.nfp`` prior, sorted by name."""
    if not PACKAGED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(PACKAGED_DIR.glob("*.nfp")) if p.is_file()}


def load_prior(name_or_path: Union[str, os.PathLike]) -> Prior:
    """Read a prior file given by path, or by name: ``<name>.nfp`` in ``$NFC_PRIOR_PATH``, then packaged.

    Raises:
        PriorNotFoundError: No such file or prior name.
        FormatError: The file is not a valid prior (the message names it).
        OSError: The file cannot be read.
    """
    path = Path(name_or_path)
    if path.is_file():
        return _load_file(path)
    if path.is_dir():
        raise PriorNotFoundError(f"prior {path} is a directory, not a prior file")
    text = os.fspath(name_or_path)
    if text and os.sep not in text and (os.altsep is None or os.altsep not in text) and not text.endswith(".nfp"):
        for directory in _env_dirs():
            candidate = directory / f"{text}.nfp"
            if candidate.is_file():
                return _load_file(candidate)
        packaged = packaged_priors()
        if text in packaged:
            return _load_file(packaged[text])
        known = ", ".join(packaged) or "none"
        raise PriorNotFoundError(f"no prior file or prior named {text!r} (looked in ${PRIOR_PATH_ENV} and the "
                                 f"packaged priors: {known})")
    raise PriorNotFoundError(f"prior file {path} does not exist")


def default_prior(media: int) -> Optional[Prior]:
    """The packaged prior ``default-image`` (media 0) or ``default-video`` (media 1), or None if absent.

    Raises:
        ValueError: ``media`` is not 0 or 1.
        FormatError: The packaged file is invalid or for the other media.
    """
    if media not in _DEFAULT_NAMES:
        raise ValueError(f"media={media} is not 0 (image) or 1 (video)")
    path = packaged_priors().get(_DEFAULT_NAMES[media])
    if path is None:
        return None
    prior = _load_file(path)
    if prior.media != media:
        raise FormatError(f"prior {path}: media {MEDIA[prior.media]}, expected {MEDIA[media]}")
    return prior


def describe(prior: Prior) -> dict[str, Any]:
    """What ``nfc prior info`` shows, as JSON-ready data.

    Returns:
        ``name``, ``hash``, ``bytes``, ``media``, ``arch``, ``record`` (ARCH fields), ``size``
        (frames, height, width), ``parameters``, ``nonzero``, ``nonzero_fraction``, ``tensors``
        (per tensor: index, shape, step, step_value, count, nonzero, max_abs), ``lrs`` (None or
        min / max / mean / median), ``masks`` (None or kept / density and per-tensor density),
        ``meta``.
    """
    rows = []
    total = nonzero = 0
    for i, t in enumerate(prior.tensors):
        n, nz = int(t.q.size), int(np.count_nonzero(t.q))
        total, nonzero = total + n, nonzero + nz
        rows.append({"index": i, "shape": list(t.q.shape), "step": int(t.step), "step_value": STEP_TABLE[t.step],
                     "count": n, "nonzero": nz,
                     "max_abs": float(np.abs(t.q).max(initial=0)) * STEP_TABLE[t.step]})
    lrs = None
    if prior.lrs is not None:
        flat = np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in prior.lrs]) if prior.lrs else np.zeros(0)
        lrs = {"min": float(flat.min()), "max": float(flat.max()), "mean": float(flat.mean()),
               "median": float(np.median(flat))} if flat.size else {}
    masks = None
    if prior.masks is not None:
        kept = int(sum(int(np.count_nonzero(m)) for m in prior.masks))
        masks = {"kept": kept, "density": kept / total if total else 0.0,
                 "per_tensor": [float(np.count_nonzero(m) / m.size) if m.size else 0.0 for m in prior.masks]}
    frames, height, width = prior.size
    return {"name": prior.name, "hash": prior.hexdigest, "bytes": prior.nbytes, "media": MEDIA[prior.media],
            "arch": prior.arch, "record": prior.record.as_dict(),
            "size": {"frames": frames, "height": height, "width": width},
            "parameters": total, "nonzero": nonzero, "nonzero_fraction": nonzero / total if total else 0.0,
            "tensors": rows, "lrs": lrs, "masks": masks, "meta": prior.meta}
