"""Schema-driven fixed-width records and LEB128 varints.

A record (``NHDR``, ``ARCH``, ``SEGM`` ...) is a frozen dataclass whose class attribute
``FIELDS`` lists one :class:`Field` per dataclass field, in wire order.  Packing, unpacking,
range checking and pretty printing are all driven by that one list (Cool-chic's
``HeaderElement`` idea, done with :mod:`struct` rather than strings of bits), so a field
cannot be written without being checked, nor printed differently from how it is stored.

Records are validated when they are constructed, which covers both directions: ``pack``
only ever sees valid records and ``unpack`` builds its result through the constructor.
"""
from __future__ import annotations

import operator
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, TypeVar, Union

from .errors import FieldRangeError, FormatError

__all__ = [
    "Field",
    "Record",
    "enum_field",
    "MAX_UVARINT",
    "write_uvarint",
    "read_uvarint",
    "zigzag",
    "unzigzag",
    "ByteReader",
]

Number = Union[int, float]
R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Field:
    """One fixed-width field of a record.

    Attributes:
        name: Field name, identical to the dataclass attribute.
        fmt: :mod:`struct` code without byte order: ``"B"``, ``"H"``, ``"I"``, ``"Q"``,
            ``"f"``, ``"d"`` or ``"<n>s"`` for fixed-length bytes.
        lo: Smallest allowed value (None for bytes fields).
        hi: Largest allowed value (None for bytes fields).
        doc: One line for the docs and ``nfc info``.
        table: For enums, the allowed values and their names; when given, a value must be
            one of its keys.
    """

    name: str
    fmt: str
    lo: Optional[Number]
    hi: Optional[Number]
    doc: str
    table: Optional[Mapping[int, str]] = None

    @property
    def kind(self) -> str:
        """``"bytes"``, ``"float"`` or ``"int"``, from the struct code."""
        return "bytes" if self.fmt.endswith("s") else "float" if self.fmt in ("e", "f", "d") else "int"

    @property
    def size(self) -> int:
        """Width of the field in bytes."""
        return struct.calcsize("<" + self.fmt)

    def normalize(self, record: str, value: Any) -> Any:
        """Coerce a value to the field's Python type, as it will read back from the wire.

        Floats are rounded to the wire precision so that ``unpack(pack(r)) == r`` holds.

        Raises:
            TypeError: The value has the wrong type (API misuse, not a format error).
        """
        where = f"{record}.{self.name}"
        if self.kind == "bytes":
            if not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"{where} must be bytes, got {type(value).__name__}")
            return bytes(value)
        if self.kind == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{where} must be a float, got {type(value).__name__}")
            try:
                return struct.unpack("<" + self.fmt, struct.pack("<" + self.fmt, float(value)))[0]
            except OverflowError:  # beyond float32: left as is for check() to report the range
                return float(value)
        try:
            return operator.index(value)
        except TypeError:
            raise TypeError(f"{where} must be an integer, got {type(value).__name__}") from None

    def check(self, record: str, value: Any) -> None:
        """Check a normalized value against the field's range.

        Raises:
            FieldRangeError: Naming ``record.field=value`` and the allowed range.
        """
        where = f"{record}.{self.name}={value!r}"
        if self.kind == "bytes":
            if len(value) != self.size:
                raise FieldRangeError(f"{record}.{self.name} has {len(value)} bytes, expected {self.size}")
        elif self.table is not None and value not in self.table:
            raise FieldRangeError(f"{where} not in {dict(self.table)}")
        elif not self.lo <= value <= self.hi:  # NaN compares false, so it fails here too
            raise FieldRangeError(f"{where} outside [{self.lo}, {self.hi}]")

    def pretty(self, value: Any) -> str:
        """Human-readable value: enum name, shortest float, hex bytes."""
        if self.kind == "bytes":
            return value.hex()
        if self.kind == "float":
            return format(value, ".9g")  # 9 digits identify any float32
        if self.table is not None and value in self.table:
            return f"{value} ({self.table[value]})"
        return str(value)


def enum_field(name: str, table: Mapping[int, str], doc: str, fmt: str = "B") -> Field:
    """Build an enum :class:`Field` whose range is given by its table.

    Args:
        name: Field name.
        table: Allowed wire ids and their names.
        doc: One-line description.
        fmt: Struct code (default ``"B"``, a u8).

    Returns:
        The field.
    """
    return Field(name, fmt, min(table), max(table), doc, table)


class Record:
    """Base of the fixed-width records; subclasses are frozen dataclasses.

    Subclasses set ``NAME`` (the chunk or record name used in messages, e.g. ``"NHDR"``)
    and ``FIELDS`` (one :class:`Field` per dataclass field, same names, wire order), and may
    override :meth:`validate` for cross-field checks.
    """

    NAME: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]]
    _STRUCT: ClassVar[struct.Struct]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Little-endian, no padding: the wire layout is exactly the listed fields.
        cls._STRUCT = struct.Struct("<" + "".join(f.fmt for f in cls.FIELDS))

    def __post_init__(self) -> None:
        for f in self.FIELDS:
            value = f.normalize(self.NAME, getattr(self, f.name))
            f.check(self.NAME, value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override in subclasses.

        Raises:
            FieldRangeError: The combination of fields is not allowed.
        """

    @classmethod
    def size(cls) -> int:
        """Size of the packed record in bytes."""
        return cls._STRUCT.size

    def pack(self) -> bytes:
        """Serialize the record.

        Returns:
            ``size()`` bytes, fields in ``FIELDS`` order, little-endian.
        """
        return self._STRUCT.pack(*(getattr(self, f.name) for f in self.FIELDS))

    @classmethod
    def unpack(cls: type[R], data: bytes) -> R:
        """Parse and validate a record.

        Args:
            data: Exactly ``size()`` bytes.

        Returns:
            The record.

        Raises:
            FormatError: ``data`` has the wrong length.
            FieldRangeError: A field, or a combination of fields, is out of range.
        """
        if len(data) != cls._STRUCT.size:
            raise FormatError(f"{cls.NAME}: {len(data)} bytes, expected {cls._STRUCT.size}")
        values = cls._STRUCT.unpack(data)
        return cls(**{f.name: v for f, v in zip(cls.FIELDS, values)})

    def describe(self) -> list[tuple[str, str]]:
        """Field names and pretty values, in wire order (for ``nfc info``)."""
        return [(f.name, f.pretty(getattr(self, f.name))) for f in self.FIELDS]

    def as_dict(self) -> dict[str, Any]:
        """Field values for JSON output (bytes as hex strings)."""
        values = {f.name: getattr(self, f.name) for f in self.FIELDS}
        return {f.name: values[f.name].hex() if f.kind == "bytes" else values[f.name] for f in self.FIELDS}


# --------------------------------------------------------------------------- varints

#: Largest value a uvarint may hold (10 LEB128 bytes).
MAX_UVARINT = 2**64 - 1
_MAX_VARINT_BYTES = 10


def write_uvarint(n: int) -> bytes:
    """Encode an unsigned integer as LEB128 (7 bits per byte, low groups first).

    Args:
        n: Integer in ``[0, 2**64 - 1]``.

    Returns:
        1 to 10 bytes.

    Raises:
        ValueError: ``n`` is negative or too large.
    """
    n = operator.index(n)
    if not 0 <= n <= MAX_UVARINT:
        raise ValueError(f"uvarint {n} outside [0, {MAX_UVARINT}]")
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf: Union[bytes, memoryview], pos: int, what: str = "varint") -> tuple[int, int]:
    """Decode a LEB128 unsigned integer.

    Only the canonical (shortest) encoding is accepted, so every value has one encoding
    and a file's bytes are a function of its content.

    Args:
        buf: The buffer.
        pos: Offset of the first byte.
        what: Name of the value, for error messages.

    Returns:
        ``(value, offset after the varint)``.

    Raises:
        FormatError: The buffer ends inside the varint, it is longer than 10 bytes, its
            value exceeds ``2**64 - 1``, or it has a redundant trailing zero byte.
    """
    value = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and i > pos:
                raise FormatError(f"{what} at offset {pos}: non-canonical varint (trailing zero byte)")
            if value > MAX_UVARINT:
                raise FormatError(f"{what} at offset {pos}: varint {value} exceeds {MAX_UVARINT}")
            return value, i + 1
    if len(buf) - pos >= _MAX_VARINT_BYTES:
        raise FormatError(f"{what} at offset {pos}: varint longer than {_MAX_VARINT_BYTES} bytes")
    raise FormatError(f"{what} at offset {pos}: data ends inside varint")


def zigzag(n: int) -> int:
    """Map a signed integer to an unsigned one: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...

    Args:
        n: Integer in ``[-2**63, 2**63 - 1]``.

    Returns:
        The zigzag code, in ``[0, 2**64 - 1]``.

    Raises:
        ValueError: ``n`` does not fit in 64 signed bits.
    """
    n = operator.index(n)
    if not -(2**63) <= n < 2**63:
        raise ValueError(f"zigzag {n} outside [-2**63, 2**63 - 1]")
    return 2 * n if n >= 0 else -2 * n - 1


def unzigzag(z: int) -> int:
    """Inverse of :func:`zigzag`.

    Args:
        z: Unsigned code.

    Returns:
        The signed integer.
    """
    return (z >> 1) ^ -(z & 1)


class ByteReader:
    """Bounds-checked cursor over a byte buffer, for variable-length payloads.

    Every read names what it reads, so a malformed payload gives a message such as
    ``"tensor 2 n at offset 7: data ends inside varint"``.

    Args:
        data: The buffer.
        context: Prefix of error messages (e.g. ``"tensor 2"``); may be reassigned.
    """

    def __init__(self, data: Union[bytes, memoryview], context: str = "") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.context = context
        #: State that later records of one payload read from earlier ones (``arm``: its network).
        self.shared: dict = {}

    @property
    def remaining(self) -> int:
        """Bytes left after the cursor."""
        return len(self.data) - self.pos

    def _what(self, what: str) -> str:
        return f"{self.context} {what}".strip()

    def uvarint(self, what: str) -> int:
        """Read an unsigned LEB128 varint (see :func:`read_uvarint`)."""
        value, self.pos = read_uvarint(self.data, self.pos, self._what(what))
        return value

    def svarint(self, what: str) -> int:
        """Read a zigzag-coded signed varint."""
        return unzigzag(self.uvarint(what))

    def take(self, size: int, what: str) -> memoryview:
        """Read ``size`` raw bytes.

        Raises:
            FormatError: Fewer than ``size`` bytes are left.
        """
        if size > self.remaining:
            raise FormatError(f"{self._what(what)} at offset {self.pos}: needs {size} bytes, {self.remaining} left")
        view = self.data[self.pos : self.pos + size]
        self.pos += size
        return view

    def u8(self, what: str) -> int:
        """Read one unsigned byte."""
        return self.take(1, what)[0]
