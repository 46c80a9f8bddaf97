"""The record's bound attributes and their canonical encoding (docs/FORMAT.md, "Attributes").

The same bytes are the associated data everywhere a record key is used: the record header,
the record key wrapped under each child key in the key service, and the record key sealed to
a device on release. A key that is asked to work with other attributes fails.

    attributes = format_version (u8, = 1)
                 category       (u8, see CATEGORY_CODES)
                 record_id      (16 bytes)
                 version        (u32, big-endian, >= 1)
                 child_count    (u8, 1..MAX_CHILDREN)
                 child_ids      (child_count x 16 bytes, strictly ascending)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise, repeat
from operator import lt

from vault.format.errors import FormatError, UnsupportedVersionError

FORMAT_VERSION = 1
ID_SIZE = 16
MAX_CHILDREN = 64
MAX_VERSION = 2**32 - 1


class Category(StrEnum):
    """What a record is. Safeguarding records have stricter release rules."""

    OBSERVATION = "observation"
    INCIDENT = "incident"
    MEDICAL = "medical"
    PHOTO = "photo"
    CONSENT_FORM = "consent-form"
    CORRESPONDENCE = "correspondence"
    SAFEGUARDING = "safeguarding"


CATEGORY_CODES: dict[Category, int] = {
    Category.OBSERVATION: 1,
    Category.INCIDENT: 2,
    Category.MEDICAL: 3,
    Category.PHOTO: 4,
    Category.CONSENT_FORM: 5,
    Category.CORRESPONDENCE: 6,
    Category.SAFEGUARDING: 7,
}
_CATEGORY_BY_CODE = {code: category for category, code in CATEGORY_CODES.items()}

_FIXED = struct.Struct(">BB16sIB")


@dataclass(frozen=True)
class RecordAttributes:
    """Format version, record id, version, children and category of one record version.

    Child ids may be given in any order; they are kept sorted so that equal sets of children
    give equal attributes.
    """

    record_id: bytes
    version: int
    child_ids: tuple[bytes, ...]
    category: Category
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise UnsupportedVersionError(f"format version {self.format_version} is not supported")
        if not isinstance(self.record_id, bytes) or len(self.record_id) != ID_SIZE:
            raise FormatError(f"record id must be {ID_SIZE} bytes")
        if not 1 <= self.version <= MAX_VERSION:
            raise FormatError(f"version must be between 1 and {MAX_VERSION}")
        children = self.child_ids
        if not 1 <= len(children) <= MAX_CHILDREN:
            raise FormatError(f"a record belongs to between 1 and {MAX_CHILDREN} children")
        # map() over builtins: these run for every item of a 1,000-record key release.
        if not all(map(isinstance, children, repeat(bytes))) or any(
            map(ID_SIZE.__ne__, map(len, children))
        ):
            raise FormatError(f"every child id must be {ID_SIZE} bytes")
        # Ids stored by the key service arrive sorted already: then nothing is re-sorted.
        if type(children) is not tuple or not all(map(lt, children, children[1:])):
            ordered = tuple(sorted(children))
            if not all(map(lt, ordered, ordered[1:])):
                raise FormatError("a child id is listed twice")
            object.__setattr__(self, "child_ids", ordered)
        if type(self.category) is not Category:
            object.__setattr__(self, "category", Category(self.category))

    def canonical(self) -> bytes:
        """The one byte encoding of these attributes."""
        fixed = _FIXED.pack(
            self.format_version,
            CATEGORY_CODES[self.category],
            self.record_id,
            self.version,
            len(self.child_ids),
        )
        return fixed + b"".join(self.child_ids)

    def canonical_for(self, record_id: bytes, version: int) -> bytes:
        """The canonical bytes of the attributes that differ from these only in record id
        and version: what a key release binds to each of many records of one set of
        children and category, without building and checking attributes per record."""
        if not isinstance(record_id, bytes) or len(record_id) != ID_SIZE:
            raise FormatError(f"record id must be {ID_SIZE} bytes")
        if not 1 <= version <= MAX_VERSION:
            raise FormatError(f"version must be between 1 and {MAX_VERSION}")
        fixed = _FIXED.pack(
            self.format_version,
            CATEGORY_CODES[self.category],
            record_id,
            version,
            len(self.child_ids),
        )
        return fixed + b"".join(self.child_ids)

    @classmethod
    def parse(cls, data: bytes) -> RecordAttributes:
        """Parse canonical attributes; anything not canonical is a FormatError."""
        if len(data) < 1:
            raise FormatError("attributes are empty")
        if data[0] != FORMAT_VERSION:
            raise UnsupportedVersionError(f"format version {data[0]} is not supported")
        if len(data) < _FIXED.size:
            raise FormatError("attributes are truncated")
        _, code, record_id, version, count = _FIXED.unpack_from(data)
        if code not in _CATEGORY_BY_CODE:
            raise FormatError(f"unknown category code {code}")
        if not 1 <= count <= MAX_CHILDREN:
            raise FormatError(f"child count {count} is out of range")
        end = _FIXED.size + count * ID_SIZE
        if len(data) != end:
            raise FormatError("attributes have the wrong length for their child count")
        children = tuple(data[i : i + ID_SIZE] for i in range(_FIXED.size, end, ID_SIZE))
        if any(a >= b for a, b in pairwise(children)):
            raise FormatError("child ids are not strictly ascending")
        return cls(
            record_id=record_id,
            version=version,
            child_ids=children,
            category=_CATEGORY_BY_CODE[code],
        )

    @classmethod
    def from_hex(
        cls, *, record_id: str, version: int, child_ids: list[str] | tuple[str, ...], category: str
    ) -> RecordAttributes:
        """Build attributes from the API's hex ids; a bad id or category is a FormatError."""
        try:
            rid = bytes.fromhex(record_id)
            cids = tuple(map(bytes.fromhex, child_ids))
            cat = Category(category)
        except ValueError as exc:
            raise FormatError(f"invalid attributes: {exc}") from exc
        return cls(record_id=rid, version=version, child_ids=cids, category=cat)
