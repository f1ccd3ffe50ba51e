"""Deleting old rows in bounded batches: each batch is a transaction of its own, so no lock is held for long and
concurrent work (runs, requests) waits at most one batch; a time budget keeps one job from running for hours —
the next periodic run continues where this one stopped."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

#: One batch: delete up to ``limit`` rows in ``session``'s transaction, return how many went.
Batch = Callable[[AsyncSession, int], Awaitable[int]]


async def in_batches(
    sessions: async_sessionmaker[AsyncSession], batch: Batch, *, limit: int, budget_seconds: float = 60.0
) -> int:
    """Run ``batch`` in transactions of its own until one deletes fewer than ``limit`` rows (nothing older is
    left) or ``budget_seconds`` have passed. Returns the rows deleted."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        async with sessions() as session, session.begin():
            done = await batch(session, limit)
        total += done
        if done < limit or time.monotonic() >= deadline:
            return total
