"""The Carevault record format (docs/FORMAT.md): pure bytes and streams, no I/O beyond them."""

from vault.format.attributes import (
    CATEGORY_CODES,
    FORMAT_VERSION,
    ID_SIZE,
    MAX_CHILDREN,
    Category,
    RecordAttributes,
)
from vault.format.digest import (
    DEFAULT_DIGEST_ALG,
    DIGEST_ALGS,
    DIGEST_SIZE,
    CiphertextDigest,
    DigestAlg,
    digest_of,
    new_hasher,
)
from vault.format.errors import (
    FormatError,
    IntegrityError,
    UnsupportedVersionError,
    VaultFormatError,
)
from vault.format.header import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MAX_HEADER_SIZE,
    MIN_CHUNK_SIZE,
    Header,
)
from vault.format.keys import RECORD_KEY_SIZE
from vault.format.metadata import MAX_PLAINTEXT_SIZE, Metadata, open_metadata, seal_metadata
from vault.format.ranges import ReadAt, ciphertext_range_for, decrypt_range, open_header_at
from vault.format.record import (
    EncryptResult,
    ciphertext_size,
    decrypt,
    encrypt,
    encrypt_without_digest,
    open_header,
)

__all__ = [
    "CATEGORY_CODES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DIGEST_ALG",
    "DIGEST_ALGS",
    "DIGEST_SIZE",
    "FORMAT_VERSION",
    "ID_SIZE",
    "MAX_CHILDREN",
    "MAX_CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "MIN_CHUNK_SIZE",
    "RECORD_KEY_SIZE",
    "Category",
    "CiphertextDigest",
    "DigestAlg",
    "EncryptResult",
    "FormatError",
    "Header",
    "IntegrityError",
    "Metadata",
    "ReadAt",
    "RecordAttributes",
    "UnsupportedVersionError",
    "VaultFormatError",
    "ciphertext_range_for",
    "ciphertext_size",
    "decrypt",
    "decrypt_range",
    "digest_of",
    "encrypt",
    "encrypt_without_digest",
    "new_hasher",
    "open_header",
    "open_header_at",
    "open_metadata",
    "seal_metadata",
]
