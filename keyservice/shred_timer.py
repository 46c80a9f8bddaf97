"""The shred timer: every ``CAREVAULT_SHRED_CHECK_SECONDS`` (300 by default) each instance
carries out the approved shreds whose wait is over (keyservice/catalog/shredding.py). It lives
as long as the application, like the checkpoint timer (keyservice/audit/timer.py); instances
do not coordinate (a shred is claimed with one conditional UPDATE). A failed round is logged
and the next one tries again. Routes that touch shreds also carry due ones out first, so a
shred does not wait for the timer to be seen done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

from keyservice.catalog.shredding import run_due
from keyservice.state import ServiceState

log = logging.getLogger("keyservice.shredding")


def _round(state: ServiceState) -> None:
    try:
        carried = run_due(state.engine, state)
    except Exception:
        # Whatever failed (the database, the store), the timer must outlive it.
        log.warning("carrying out due shreds failed; the next round tries again", exc_info=True)
        return
    if carried:
        log.info("carried out %d due shreds", carried)


@asynccontextmanager
async def shreds_on_time(
    state: ServiceState, *, within: AbstractAsyncContextManager[None]
) -> AsyncIterator[None]:
    """Run ``within`` (the application's other timers) and the rounds while the block runs."""
    if not state.settings.shred_check_seconds > 0:
        raise ValueError("CAREVAULT_SHRED_CHECK_SECONDS must be a positive number of seconds")

    async def rounds() -> None:
        while True:
            await asyncio.sleep(state.settings.shred_check_seconds)
            await asyncio.to_thread(_round, state)

    async with within:
        task = asyncio.create_task(rounds())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
