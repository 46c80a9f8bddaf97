"""Rejected requests per source: the rate limit and the coalescing of their audit entries.

Each source (the client address as uvicorn reports it) has a window of
``CAREVAULT_REJECT_WINDOW_SECONDS`` that opens at its first rejection. In a window:

- the first ``CAREVAULT_REJECT_AUDIT_EACH`` rejections of each (action, reason) are audited
  one by one, at once; later ones are only counted, and when the window ends the count goes
  to the audit as one entry (``Coalesced``), so a flood costs one entry per (source, reason)
  per window instead of one per request (with the default of 1, a flood of one kind costs its
  source three entries a window: the first rejection, the count of the rest, the count of
  its 429s);
- after ``CAREVAULT_REJECT_LIMIT`` rejections, every request from the source is answered 429
  until the window ends (``retry_after``), without being verified; those are counted under
  ``rate_limited`` and never audited one by one.

The state is this instance's, in memory, and bounded: at most ``max_sources`` windows, the
oldest ended early (its counts go to the audit) when a new source needs room. A count not yet
written when the process dies is lost; the rejections audited one by one are not.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from keyservice.audit.chain import AuditEvent, format_time

RATE_LIMITED = "rate_limited"
MAX_SOURCES = 10_000
UNKNOWN_SOURCE = "unknown"

# The address of the request being served, set by keyservice.ratelimit for every request.
SOURCE: ContextVar[str] = ContextVar("carevault_request_source", default=UNKNOWN_SOURCE)


def client_source(scope: Mapping[str, Any]) -> str:
    """The client address of an ASGI request (behind a trusted proxy, the forwarded one)."""
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_SOURCE


@dataclass(frozen=True)
class Coalesced:
    """Rejections of one (source, action, reason) counted but not audited one by one."""

    source: str
    action: str
    reason: str
    count: int
    since: datetime

    def event(self) -> AuditEvent:
        return AuditEvent(
            action=self.action,
            outcome="deny",
            detail={
                "reason": self.reason,
                "source": self.source,
                "count": self.count,
                "since": format_time(self.since),
            },
        )


@dataclass
class _Window:
    opened: float
    since: datetime
    rejected: int = 0
    audited: dict[tuple[str, str], int] = field(default_factory=dict)
    held: dict[tuple[str, str], int] = field(default_factory=dict)


class RejectionLedger:
    """One instance's windows of rejected requests, by source. Safe to share between threads."""

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        limit: int = 120,
        audit_each: int = 1,
        max_sources: int = MAX_SOURCES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window_s > 0:
            raise ValueError("CAREVAULT_REJECT_WINDOW_SECONDS must be a positive number")
        if limit < 1:
            raise ValueError("CAREVAULT_REJECT_LIMIT must be at least 1")
        if audit_each < 0:
            raise ValueError("CAREVAULT_REJECT_AUDIT_EACH must not be negative")
        self._window_s = window_s
        self._limit = limit
        self._audit_each = audit_each
        self._max_sources = max_sources
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Oldest window first: windows are added at the end, and end in the order they opened.
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._due: dict[tuple[str, str, str], Coalesced] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may be answered again, or None if it is not limited."""
        # The common case, no window for this source, without the lock (a dict read is safe).
        if source not in self._windows:
            return None
        now = self._monotonic()
        with self._lock:
            window = self._current(source, now)
            if window is None or window.rejected < self._limit:
                return None
            return max(1, math.ceil(window.opened + self._window_s - now))

    def admit(self, event: AuditEvent) -> AuditEvent | None:
        """Count a rejection of the current request's source (``SOURCE``); the entry to write
        now (``event`` with the source in its detail), or None if it was only counted."""
        source = SOURCE.get()
        reason = str(event.detail.get("reason"))
        key = (event.action, reason)
        now = self._monotonic()
        with self._lock:
            window = self._current(source, now) or self._open(source, now)
            if reason != RATE_LIMITED:
                window.rejected += 1
            allowance = 0 if reason == RATE_LIMITED else self._audit_each
            if window.audited.get(key, 0) >= allowance:
                window.held[key] = window.held.get(key, 0) + 1
                return None
            window.audited[key] = window.audited.get(key, 0) + 1
        return replace(event, detail={**event.detail, "source": source})

    def take_due(self) -> list[Coalesced]:
        """The counts of every window that has ended, to be audited; they leave the ledger."""
        now = self._monotonic()
        with self._lock:
            while self._windows:
                source, window = next(iter(self._windows.items()))
                if now < window.opened + self._window_s:
                    break
                self._close(source, window)
            due, self._due = list(self._due.values()), {}
        return due

    def take_all(self) -> list[Coalesced]:
        """Every count held, ended window or not (the service is stopping)."""
        with self._lock:
            for source, window in list(self._windows.items()):
                self._close(source, window)
            due, self._due = list(self._due.values()), {}
        return due

    def give_back(self, unwritten: list[Coalesced]) -> None:
        """Counts whose entries could not be written: held for the next attempt."""
        with self._lock:
            for item in unwritten:
                self._hold(item)

    def _current(self, source: str, now: float) -> _Window | None:
        window = self._windows.get(source)
        if window is not None and now >= window.opened + self._window_s:
            self._close(source, window)
            return None
        return window

    def _open(self, source: str, now: float) -> _Window:
        while len(self._windows) >= self._max_sources:
            oldest, window = next(iter(self._windows.items()))
            self._close(oldest, window)
        window = self._windows[source] = _Window(opened=now, since=datetime.now(UTC))
        return window

    def _close(self, source: str, window: _Window) -> None:
        del self._windows[source]
        for (action, reason), count in window.held.items():
            self._hold(Coalesced(source, action, reason, count, window.since))

    def _hold(self, item: Coalesced) -> None:
        key = (item.source, item.action, item.reason)
        earlier = self._due.get(key)
        if earlier is not None:
            item = replace(item, count=earlier.count + item.count, since=earlier.since)
        self._due[key] = item
