"""Keeps blob URL tokens out of the access log.

A ``/v1/blobs/{token}`` path *is* the authorisation to read or write one object until the
token expires, so logging it would hand that right to anyone who reads the logs. uvicorn's
access records carry the path as their third argument; this filter replaces the token there.
"""

from __future__ import annotations

import logging

from vault.storage import BLOB_ROUTE

ACCESS_LOGGER = "uvicorn.access"
REDACTED = f"{BLOB_ROUTE}<token>"
_PATH_ARG = 2  # uvicorn: (client, method, path with query, http version, status)


class RedactBlobTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str) and path.startswith(BLOB_ROUTE):
                record.args = (*args[:_PATH_ARG], REDACTED, *args[_PATH_ARG + 1 :])
        return True


_FILTER = RedactBlobTokens()


def redact_blob_tokens(logger_name: str = ACCESS_LOGGER) -> None:
    """Install the filter on the access logger (once, however many apps are created)."""
    logger = logging.getLogger(logger_name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
