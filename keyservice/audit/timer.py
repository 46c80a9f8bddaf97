"""Timed checkpoints: every ``CAREVAULT_CHECKPOINT_SECONDS`` (60 by default) each instance
checkpoints the chain's head if it has moved since that instance last did (docs/AUDIT.md).

The timer lives as long as the application (its lifespan): it sleeps on the event loop and
runs each round's database and storage calls in a worker thread. Instances do not coordinate:
two that find the same head write the same object and one database row, so several running
at once is harmless. A failed round is logged and the next one tries again; requests are not
held up by it, since a checkpoint is evidence for later, not a condition of a release. On a
clean stop the head is checkpointed once more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from sqlalchemy import Engine

from keyservice.audit.head import checkpoint_head
from keyservice.audit.record import AuditContext
from keyservice.errors import AuditChainError
from vault.storage import BlobStore

log = logging.getLogger("keyservice.audit")
# A clean stop waits this long at most for its last checkpoint.
STOP_WAIT_S = 10.0


class CheckpointContext(AuditContext, Protocol):
    """What the timer needs of the running service (keyservice.state.ServiceState)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def checkpoints(self) -> BlobStore: ...


class TimedCheckpoints:
    """One instance's rounds; remembers the entry it checkpointed last."""

    def __init__(self, state: CheckpointContext) -> None:
        if not state.settings.checkpoint_seconds > 0:
            raise ValueError("CAREVAULT_CHECKPOINT_SECONDS must be a positive number of seconds")
        self._state = state
        self._last: int | None = None

    def round(self) -> None:
        """Checkpoint the head if it moved; a failure is logged, not raised."""
        state = self._state
        try:
            written = checkpoint_head(
                state.engine,
                mac=state.audit_mac,
                key=state.audit_key,
                store=state.checkpoints,
                now=state.clock(),
                unless=self._last,
            )
        except AuditChainError as exc:
            log.error("audit checkpoint refused: %s", exc)
            return
        except Exception:
            # Whatever failed (the database, the store), the timer must outlive it.
            log.warning("audit checkpoint failed; the next round tries again", exc_info=True)
            return
        if written is not None:
            self._last = written.seq

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._state.settings.checkpoint_seconds)
            await asyncio.to_thread(self.round)


@asynccontextmanager
async def checkpoints_on_time(state: CheckpointContext) -> AsyncIterator[None]:
    """Run the timer while the block runs; at its end, one last round."""
    timed = TimedCheckpoints(state)
    task = asyncio.create_task(timed.run())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(timed.round), STOP_WAIT_S)
