"""The Carevault record format (docs/FORMAT.md): pure bytes and streams, no I/O beyond them."""

from vault.format.attributes import (
    CATEGORY_CODES,
    FORMAT_VERSION,
    ID_SIZE,
    MAX_CHILDREN,
    Category,
    RecordAttributes,
)
from vault.format.errors import (
    FormatError,
    IntegrityError,
    UnsupportedVersionError,
    VaultFormatError,
)

__all__ = [
    "CATEGORY_CODES",
    "FORMAT_VERSION",
    "ID_SIZE",
    "MAX_CHILDREN",
    "Category",
    "FormatError",
    "IntegrityError",
    "RecordAttributes",
    "UnsupportedVersionError",
    "VaultFormatError",
]
