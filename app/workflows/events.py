"""Following runs from the API process: one LISTEN connection, replay from the event table, SSE framing.

Event rows are the truth (DESIGN.md rule 5); NOTIFY only wakes readers early. A reader that misses a
notification (reconnect, a burst) still sees every event on its next poll, so delivery is exactly-once and in
order per connection, and ``Last-Event-ID`` resumes after any event.

A notice of streamed text carries its events (``app.workflows.runs.store.notice_of``): a reader that has every
event before them sends them on without reading them back (:meth:`Notices.take`). Any other notice, a gap, a
reader that fell behind, or a poll without a notice: the reader reads the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import asyncpg
import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import database_trouble
from app.workflows.engine.statuses import RunStatus
from app.workflows.runs import event_log
from app.workflows.runs import store as run_store
from app.workflows.runs.store import EventRow
from db import urls
from db.models import WorkflowRun

log = structlog.get_logger()

POLL_SECONDS = 1.0
PING_SECONDS = 10.0
#: A reader rides out a database outage (restart, failover) this long, pinging its client meanwhile; after that
#: the error ends the stream (the client reconnects with ``Last-Event-ID``) or the blocking request (503).
OUTAGE_PATIENCE_SECONDS = 60.0


class _Patience:
    """How long the database has been failing for one reader; raises once that exceeds the patience."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, exc: Exception) -> None:
        if database_trouble(exc) is None:
            raise exc
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since > OUTAGE_PATIENCE_SECONDS:
            raise exc
        log.warning("run_reader_waiting_for_database", error=f"{type(exc).__name__}: {str(exc)[:200]}")

    def ok(self) -> None:
        self.since = None


def _set_event(event: asyncio.Event, *_: Any) -> None:
    event.set()


#: The most carried events a reader holds before it must read the rows instead (a reader whose client is slow).
CARRIED_MAX = 256


class Notices(asyncio.Event):
    """One reader's waiter on one run: set by each notice, holding the events notices carried until taken."""

    def __init__(self) -> None:
        super().__init__()
        self.carried: list[EventRow] = []
        self.uncarried = False  # a notice came without its events (or they overflowed): read the rows

    def notified(self, carried: list[EventRow] | None) -> None:
        if carried is None or len(self.carried) + len(carried) > CARRIED_MAX:
            self.carried, self.uncarried = [], True
        else:
            self.carried += carried
        self.set()

    def take(self, after_seq: int) -> list[EventRow] | None:
        """The events carried since the last take that follow ``after_seq``, when they are all of them (each
        notice since carried its events, with no gap); None when the rows must be read."""
        carried, uncarried = self.carried, self.uncarried
        self.carried, self.uncarried = [], False
        if uncarried or not carried:
            return None
        fresh = [row for row in carried if row[0] > after_seq]
        if any(row[0] != after_seq + n for n, row in enumerate(fresh, start=1)):
            return None
        return fresh


def parse_notice(payload: str) -> tuple[str, list[EventRow] | None]:
    """``run_id`` or ``run_id first_seq [[event, data], ...]`` -> (run id, the events carried or None)."""
    run_id, _, rest = payload.partition(" ")
    if not rest:
        return run_id, None
    first, _, body = rest.partition(" ")
    try:
        rows = [(int(first) + n, str(event), data) for n, (event, data) in enumerate(json.loads(body))]
    except (ValueError, TypeError):
        return run_id, None
    return run_id, rows if all(isinstance(data, dict) for _, _, data in rows) else None


class RunEventHub:
    """Wakes the coroutines following a run when its events change (``NOTIFY sluice_run_events, run_id``).

    Waiters are held weakly: one taken by :meth:`listen` for a stream that is then never iterated (its client
    left before the response started) goes with the stream."""

    def __init__(self, database_url: str) -> None:
        self.database_url = urls.libpq(database_url)
        self.waiters: dict[str, weakref.WeakSet[Notices]] = defaultdict(weakref.WeakSet)
        self.connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_listening())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.connection is not None and not self.connection.is_closed():
            await self.connection.close()

    async def _keep_listening(self) -> None:
        while True:
            try:
                self.connection = await asyncpg.connect(self.database_url)
                await self.connection.add_listener(run_store.CHANNEL, self._notified)
                closed = asyncio.Event()
                self.connection.add_termination_listener(functools.partial(_set_event, closed))
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the readers keep polling meanwhile
                log.warning("run_event_listener_reconnecting", error=str(exc))
            await asyncio.sleep(1.0)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if not self.waiters.get(payload[:36]):
            return  # nobody here follows that run (a run id is 36 characters): not even parsed
        run_id, carried = parse_notice(payload)
        for waiter in list(self.waiters.get(run_id, ())):
            waiter.notified(carried)

    def listen(self, run_id: uuid.UUID) -> Notices:
        """A waiter on the run from now on, for a caller about to commit the run's start: it misses nothing of
        what the run does after that commit. Hand it to :meth:`subscribe` (or to a stream that does)."""
        key, waiter = str(run_id), Notices()
        self.waiters[key].add(waiter)
        weakref.finalize(waiter, self._forget, key)  # a stream never iterated: its run's entry goes with it
        return waiter

    def _forget(self, key: str) -> None:
        waiters = self.waiters.get(key)
        if waiters is not None and not any(True for _ in waiters):  # a dead entry may not be purged yet
            del self.waiters[key]

    @contextlib.contextmanager
    def subscribe(self, run_id: uuid.UUID, waiter: Notices | None = None) -> Iterator[Notices]:
        """A waiter on the run while the block runs (``waiter``: one from :meth:`listen`, dropped at the end)."""
        key, waiter = str(run_id), waiter or Notices()
        self.waiters[key].add(waiter)
        try:
            yield waiter
        finally:
            self.waiters[key].discard(waiter)
            if not self.waiters[key]:
                del self.waiters[key]


async def wait_for_notice(waiter: asyncio.Event, timeout: float) -> None:
    """Wait until ``waiter`` is set (a notice arrived) or ``timeout`` seconds pass, then clear it for the next one."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter.wait(), timeout)
    waiter.clear()


@contextlib.asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose statements each see the latest committed data, without BEGIN/ROLLBACK round trips
    (readers of the event log poll often: each saved round trip counts)."""
    async with sessions() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


#: Built once: waiters read it on every notice, and building a statement costs more CPU than
#: running it (SQLAlchemy caches the compiled SQL, not the expression).
_RUN = select(WorkflowRun).where(WorkflowRun.id == bindparam("run_id"))


async def wait_for_run(
    sessions: async_sessionmaker[AsyncSession],
    hub: RunEventHub,
    run_id: uuid.UUID,
    timeout: float,
    *,
    subscribed: Notices | None = None,
) -> WorkflowRun:
    """Wait until the run is no longer ``running`` (finished, failed, stopped or paused), or ``timeout``.
    ``subscribed``: the caller's waiter on the run (:meth:`RunEventHub.listen`), taken before it committed the run
    as ``running`` (as the creator of a blocking run does): nothing can have been missed, so the first read waits
    for a notice."""
    deadline = time.monotonic() + timeout
    patience = _Patience()
    with hub.subscribe(run_id, subscribed) as waiter:
        if subscribed is not None:
            await wait_for_notice(waiter, min(POLL_SECONDS, timeout))
        while True:
            try:
                async with reading(sessions) as session:
                    run = await session.scalar(_RUN, {"run_id": run_id})
                patience.ok()
            except Exception as exc:
                patience.failed(exc)
                await asyncio.sleep(POLL_SECONDS)
                continue
            assert run is not None
            if run.status != RunStatus.RUNNING or time.monotonic() >= deadline:
                return run
            await wait_for_notice(waiter, min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def sse_message(run_id: uuid.UUID, seq: int, event: str, data: dict[str, Any]) -> bytes:
    body = {"event": event, "workflow_run_id": str(run_id), "task_id": str(run_id), "data": data}
    return f"id: {seq}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


PING = b"event: ping\n\n"


#: Turns a run's stored event rows into the rows a client gets (large values put back, form links rebuilt).
Describe = Callable[[AsyncSession, uuid.UUID, list[EventRow]], Awaitable[list[EventRow]]]


#: One frame of a run's stream: the seq of the event it comes from, its SSE bytes, and whether the stream ends
#: after it.
Framed = tuple[int, bytes, bool]


class Page(NamedTuple):
    """What one read of the event log gives a stream: the run's status, the frames of the events read (in one
    snapshot with the status), and whether the read filled its page (more to read at once)."""

    status: str | None
    frames: list[Framed]
    full: bool


async def relay(
    hub: RunEventHub,
    run_id: uuid.UUID,
    after_seq: int,
    read: Callable[[int], Awaitable[Page]],
    carry: Callable[[list[EventRow]], list[Framed]],
    *,
    patient: bool,
    listening: Notices | None = None,
) -> AsyncIterator[bytes]:
    """The loop of every stream that follows a run: the frames of every event after ``after_seq``, then live
    ones, until a terminal frame or the run's end (everything up to the end was sent before: ``Last-Event-ID``
    at the end). ``read(last)`` reads the log after ``last``; ``carry`` frames the streamed text a notice
    carried (nothing to read). A ping after ``PING_SECONDS`` without a frame. ``patient``: a database outage is
    ridden out (pinging) for ``OUTAGE_PATIENCE_SECONDS``; otherwise its error ends the stream. ``listening``: a
    waiter from :meth:`RunEventHub.listen`, taken before the run started: there is nothing to read before its
    first notice (the stream's first read would only compete with the worker starting the run)."""
    last, last_sent = after_seq, time.monotonic()
    patience = _Patience()
    with hub.subscribe(run_id, listening) as waiter:
        carried: list[EventRow] | None = None
        if listening is not None:
            await wait_for_notice(waiter, POLL_SECONDS)
            carried = waiter.take(last)
        while True:
            if carried is not None:
                page = Page(RunStatus.RUNNING, carry(carried), full=False)
            else:
                try:
                    page = await read(last)
                    patience.ok()
                except Exception as exc:
                    if not patient:
                        raise
                    patience.failed(exc)  # the database is away for now: keep the client, try again
                    if time.monotonic() - last_sent >= PING_SECONDS:
                        yield PING
                        last_sent = time.monotonic()
                    await asyncio.sleep(POLL_SECONDS)
                    continue
            for seq, body, terminal in page.frames:
                yield body
                last, last_sent = max(last, seq), time.monotonic()
                if terminal:
                    return
            if page.full:
                continue
            if page.status in run_store.FINISHED:
                return
            if time.monotonic() - last_sent >= PING_SECONDS:
                yield PING
                last_sent = time.monotonic()
            await wait_for_notice(waiter, POLL_SECONDS)
            carried = waiter.take(last)


def follow(
    sessions: async_sessionmaker[AsyncSession],
    hub: RunEventHub,
    run_id: uuid.UUID,
    after_seq: int = 0,
    close_on: tuple[str, ...] = ("workflow_finished",),
    describe: Describe | None = None,
    listening: Notices | None = None,
) -> AsyncIterator[bytes]:
    """SSE frames of every event after ``after_seq``, then live ones, until one of ``close_on`` (``listening``:
    see :func:`relay`)."""

    def framed(rows: list[EventRow]) -> list[Framed]:
        return [(seq, sse_message(run_id, seq, event, data), event in close_on) for seq, event, data in rows]

    async def read(last: int) -> Page:
        status, rows, full = await _read(sessions, run_id, last, describe)
        return Page(status, framed(rows), full)

    return relay(hub, run_id, after_seq, read, framed, patient=True, listening=listening)


async def _read(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, last: int, describe: Describe | None
) -> tuple[str | None, list[EventRow], bool]:
    """The run's status and its events after ``last`` (described), read in one snapshot; and whether the page
    was full (more to read at once)."""
    async with reading(sessions) as session:
        # One snapshot: the final event commits with the final status, so when the status read here is final,
        # the events read with it include everything.
        status, rows = await event_log.status_and_events(session, run_id, last)
        page_full = len(rows) == event_log.EVENTS_PAGE
        if rows and describe is not None:
            rows = await describe(session, run_id, rows)
    return status, rows, page_full
