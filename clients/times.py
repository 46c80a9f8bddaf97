"""Times on the command line: what is accepted, and how it is read and shown.

A time without an offset is read as UTC, the zone the key service keeps every relationship
in; the service refuses times without one, so every command converts before it sends.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIME_HELP = "UTC, e.g. 2026-09-01 or 2026-09-01T09:00"
TIME_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
]


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a time without an offset is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def shown(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"
