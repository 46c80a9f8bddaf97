"""The local-directory store's URLs as the key service serves them (``/v1/blobs/{token}``).

The token in a URL is the authorisation (``vault.storage.tokens``): signed with the key the
store signed it with, it names one object (or one part of one upload) and one method, and
expires; an upload token also carries the exact size of the body it takes. ``BlobServer``
checks a token and then reads or writes only what it names, through the store. The HTTP route
(``keyservice.api.blobs``) adds what needs the catalog and the request: that the object's
version is still pending, and the refusals before a body is read.
"""

from __future__ import annotations

from vault.storage import BlobGrant, BlobReader, ByteSource, InvalidToken, LocalDirectoryStore
from vault.storage.tokens import Method, TokenSigner


class BlobServer:
    """Serves ``store``'s URLs whose tokens ``tokens`` verifies."""

    def __init__(self, store: LocalDirectoryStore, tokens: TokenSigner) -> None:
        self._store = store
        self._tokens = tokens

    @property
    def store(self) -> LocalDirectoryStore:
        return self._store

    def grant(self, token: str, method: Method, *, now: float) -> BlobGrant:
        """The grant of a valid, unexpired ``method`` token; InvalidToken otherwise."""
        return self._tokens.verify(token, method=method, now=now)

    def object_name(self, token: str, method: Method, *, now: float) -> str:
        """The object name of a valid whole-object token; InvalidToken otherwise."""
        grant = self.grant(token, method, now=now)
        if grant.is_part:
            raise InvalidToken()
        return grant.name

    def receive(self, token: str, source: ByteSource, *, now: float) -> str:
        """Handle ``PUT /v1/blobs/{token}``: store the body, return the ETag to answer with.

        A whole-object token writes the object, or raises ObjectExists if it was already
        written; a part token writes that part of its upload (again, as on S3, until the upload
        is completed or aborted). A body of another size than the token's raises WrongSize and
        stores nothing.
        """
        grant = self.grant(token, "PUT", now=now)
        assert grant.size is not None  # every upload grant has one (BlobGrant)
        if grant.upload_id is None or grant.part_number is None:
            return self._store.write_upload(grant.name, source, size=grant.size)
        return self._store.write_part(
            grant.name,
            source,
            upload_id=grant.upload_id,
            part_number=grant.part_number,
            size=grant.size,
        )

    def send(self, token: str, *, now: float) -> tuple[BlobReader, int]:
        """Handle ``GET /v1/blobs/{token}``: the object's stream and its size in bytes."""
        return self._store.open_sized(self.object_name(token, "GET", now=now))
