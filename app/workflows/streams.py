"""A cap on the event streams (SSE) one Service API key holds open at once, counted across API processes.

Each open stream is a row of ``event_streams`` (UNLOGGED). Opening one (one call of the function
``sluice_take_stream_slot``) takes a transaction-scoped advisory lock for its key, so that two processes opening
streams of one key at once count one after the other, drops the key's stale rows, counts the rest, and inserts a
row when under ``SLUICE_MAX_EVENT_STREAMS_PER_KEY`` — else 429 ``too_many_streams``. The stream of a run or turn
that a request starts takes its slot in that request's transaction, last before the commit (:meth:`take_in`); a
stream of events only, in a statement of its own (:meth:`acquire`). The row is deleted when the stream ends,
however it ends (the stream's ``finally``, or the refresh loop noticing that the stream object is gone: a client
that disconnected before the first byte).

The process serving a stream refreshes its rows' ``seen_at`` every ``REFRESH_SECONDS``; rows of a process that
died (``kill -9``, a crash) stop being refreshed and no longer count after ``STALE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator

import anyio
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.errors import SluiceError

log = structlog.get_logger()

REFRESH_SECONDS = 15.0
STALE_SECONDS = 60.0


class TooManyStreams(SluiceError):
    """Too many event streams are open for this API key; close one and try again."""

    status, code = 429, "too_many_streams"


#: The key's advisory lock, its stale rows dropped, its live ones counted and the slot inserted when they leave
#: room: one call of a function (migration 0012), so one round trip in a transaction of its own.
_TAKE = text("SELECT live, taken FROM sluice_take_stream_slot(:id, :key, :stale, :cap)")


class StreamSlots:
    """This process's open streams and their rows; ``start``/``stop`` run the refresh loop."""

    def __init__(self, engine: AsyncEngine, cap: int) -> None:
        self.engine, self.cap = engine, cap
        self._open: dict[uuid.UUID, weakref.ref[AsyncIterator[bytes]] | None] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_fresh())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._delete(list(self._open))
        self._open.clear()

    async def acquire(self, key_id: uuid.UUID) -> uuid.UUID:
        """A slot for a new stream of ``key_id``, taken at once (a statement of its own), or 429 when the key holds
        ``cap`` streams already."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await self._take(conn, key_id)

    async def take_in(self, session: AsyncSession, key_id: uuid.UUID) -> uuid.UUID:
        """A slot for the stream of a run or turn that ``session``'s transaction starts, taken last before its
        commit: the key's lock is held until that commit, and the slot's row commits (or rolls back) with the run.
        Over the cap, 429: the caller never commits, and no run starts. One more statement on the request's
        connection costs the stream's start less than a connection of its own taking the slot meanwhile."""
        return await self._take(session, key_id)

    async def _take(self, db: AsyncConnection | AsyncSession, key_id: uuid.UUID) -> uuid.UUID:
        slot = uuid.uuid4()
        row = (
            await db.execute(_TAKE, {"id": slot, "key": key_id, "stale": STALE_SECONDS, "cap": self.cap})
        ).one()
        if not row.taken:
            raise TooManyStreams(
                f"This API key has {row.live} event streams open, the most it may hold at once "
                f"(SLUICE_MAX_EVENT_STREAMS_PER_KEY={self.cap}); close one and try again."
            )
        self._open[slot] = None
        return slot

    async def release(self, slot: uuid.UUID) -> None:
        if self._open.pop(slot, "gone") != "gone":
            await self._delete([slot])

    def guard(self, slot: uuid.UUID, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``stream``, releasing ``slot`` when it ends, fails or is closed."""

        async def guarded() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                # A client that went away cancels the response's task group (anyio): shielded, the release
                # still reaches the database.
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.release(slot)

        wrapper = guarded()
        self._open[slot] = weakref.ref(wrapper)
        return wrapper

    async def _delete(self, slots: list[uuid.UUID]) -> None:
        if not slots:
            return
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM event_streams WHERE id = ANY(:ids)"), {"ids": slots})

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                # A stream whose object is gone (never iterated, then dropped) releases its slot here.
                gone = [s for s, ref in self._open.items() if ref is not None and ref() is None]
                for slot in gone:
                    self._open.pop(slot, None)
                await self._delete(gone)
                alive = list(self._open)
                if alive:
                    async with self.engine.begin() as conn:
                        await conn.execute(
                            text("UPDATE event_streams SET seen_at = now() WHERE id = ANY(:ids)"),
                            {"ids": alive},
                        )
            except Exception as exc:  # the database is away: try again next time
                log.warning("event_stream_refresh_failed", error=f"{type(exc).__name__}: {exc}")
