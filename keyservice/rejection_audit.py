"""Writes the coalesced rejection counts (keyservice/auth/rejections.py) to the audit.

Every second each instance writes the counts of the windows that have ended, one entry per
(source, action, reason), in one transaction; a failed write is logged and its counts kept
for the next round. At a clean stop every count still held is written, before the timed
checkpoints' last round, so that round covers them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

from keyservice.audit.record import append_event
from keyservice.auth.rejections import Coalesced
from keyservice.state import ServiceState

log = logging.getLogger("keyservice.auth")
TICK_S = 1.0
# A clean stop waits this long at most for the last counts.
STOP_WAIT_S = 10.0


def write_coalesced(state: ServiceState, counts: list[Coalesced]) -> None:
    """Append one entry per count and commit; on failure, give the counts back to the ledger."""
    if not counts:
        return
    try:
        with state.engine.connect() as db:
            for count in counts:
                append_event(db, state, count.event())
            db.commit()
    except Exception:
        # Whatever failed (the database, the chain's head), the counts wait for the next round.
        state.rejections.give_back(counts)
        log.warning(
            "coalesced rejections not audited yet; the next round tries again", exc_info=True
        )


async def _rounds(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        due = state.rejections.take_due()
        if due:
            await asyncio.to_thread(write_coalesced, state, due)


@asynccontextmanager
async def rejections_on_time(
    state: ServiceState, *, within: AbstractAsyncContextManager[None]
) -> AsyncIterator[None]:
    """Run ``within`` (the application's other timers) and the rounds while the block runs;
    at its end, write every count still held, then leave ``within``."""
    async with within:
        task = asyncio.create_task(_rounds(state))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.to_thread(write_coalesced, state, state.rejections.take_all()),
                    STOP_WAIT_S,
                )
