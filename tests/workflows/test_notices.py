"""Notices that carry streamed text: a write of ``text_chunk`` events only (the run still running) notifies its
events with their sequence numbers, so that a reader holding every event before them sends them on without
reading the rows back; any other write notifies the run id only, and a reader that cannot use what was carried
(a gap, a notice without its events, too many held) reads the rows. Real PostgreSQL, a real LISTEN connection."""

from __future__ import annotations

import asyncio
import gc
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings
from app.workflows.engine.statuses import RunStatus
from app.workflows.events import CARRIED_MAX, Notices, Page, RunEventHub, parse_notice, relay
from app.workflows.runs import event_log, store, transitions
from app.workflows.runs.store import NOTICE_MAX_BYTES, Event, Write
from tests.workflows.test_recovery import start


def chunks(run_id: uuid.UUID, *texts: str, **changes: object) -> Write:
    write = transitions.checkpoint(run_id, (RunStatus.RUNNING,), **changes)
    write.events = [
        Event("text_chunk", {"text": t, "from_variable_selector": ["llm", "text"]}) for t in texts
    ]
    return write


async def apply(engine: AsyncEngine, write: Write) -> None:
    async with async_sessionmaker(engine)() as session, session.begin():
        assert await store.apply(session, [write]) == {write.run_id}


async def stored(engine: AsyncEngine, run_id: uuid.UUID, after: int) -> list[store.EventRow]:
    async with AsyncSession(engine) as session:
        return (await event_log.status_and_events(session, run_id, after))[1]


async def notice(waiter: Notices) -> None:
    await asyncio.wait_for(waiter.wait(), 5)
    waiter.clear()


async def test_streamed_text_arrives_with_its_notice_as_stored(
    wf_engine: AsyncEngine, wf_settings: Settings
) -> None:
    run_id = await start(wf_engine)
    last = (await stored(wf_engine, run_id, 0))[-1][0]
    hub = RunEventHub(wf_settings.database_url or "")
    await hub.start()
    try:
        with hub.subscribe(run_id) as waiter:
            await asyncio.sleep(0.3)  # LISTEN is on
            await apply(wf_engine, chunks(run_id, "Sluices ", "hold ", "wäter."))
            await notice(waiter)
            carried = waiter.take(last)
            assert carried is not None
            assert carried == await stored(wf_engine, run_id, last)
            assert [row[0] for row in carried] == [last + 1, last + 2, last + 3]

            # any other event: the notice names the run only, the reader reads the rows
            started = transitions.checkpoint(run_id, (RunStatus.RUNNING,))
            started.events = [Event("node_started", {"node_id": "llm"})]
            await apply(wf_engine, started)
            await notice(waiter)
            assert waiter.take(last + 3) is None

            # text too long for a notice (PostgreSQL's limit is 8000 bytes): committed, not carried
            await apply(wf_engine, chunks(run_id, "€" * (NOTICE_MAX_BYTES // 3)))
            await notice(waiter)
            assert waiter.take(last + 4) is None
            assert (await stored(wf_engine, run_id, last + 4))[0][2]["text"] == "€" * (NOTICE_MAX_BYTES // 3)
    finally:
        await hub.stop()


def test_only_streamed_text_of_a_running_run_is_carried() -> None:
    run_id = uuid.uuid4()
    assert store.notice_of(chunks(run_id, "a", "b")) is not None
    assert store.notice_of(chunks(run_id, "a", status=RunStatus.SUCCEEDED)) is None
    assert store.notice_of(chunks(run_id, "a", status=RunStatus.PAUSED)) is None
    assert store.notice_of(chunks(run_id)) is None  # no events: no notice at all
    mixed = chunks(run_id, "a")
    mixed.events.append(Event("node_finished", {}))
    assert store.notice_of(mixed) is None
    assert store.notice_of(chunks(run_id, "x" * NOTICE_MAX_BYTES)) is None


def test_a_notice_is_parsed_back_to_rows() -> None:
    run_id = str(uuid.uuid4())
    write = chunks(uuid.UUID(run_id), "one ", "two")
    assert parse_notice(f"{run_id} 7 {store.notice_of(write)}") == (
        run_id,
        [(7, "text_chunk", write.events[0].data), (8, "text_chunk", write.events[1].data)],
    )
    assert parse_notice(run_id) == (run_id, None)
    assert parse_notice(f"{run_id} 7 not json") == (run_id, None)
    assert parse_notice(f'{run_id} 7 [["text_chunk", 3]]') == (run_id, None)


def rows(*seqs: int) -> list[store.EventRow]:
    return [(s, "text_chunk", {"text": str(s)}) for s in seqs]


def test_a_reader_uses_what_was_carried_only_when_nothing_is_missing() -> None:
    waiter = Notices()
    assert waiter.take(4) is None  # woken by its poll, not a notice: read
    waiter.notified(rows(5, 6))
    waiter.notified(rows(7))
    assert waiter.take(4) == rows(5, 6, 7)
    waiter.notified(rows(5, 6, 7, 8))  # read meanwhile up to 7: only what follows
    assert waiter.take(7) == rows(8)
    waiter.notified(rows(5, 6))  # all of it read already: nothing to send, nothing to read
    assert waiter.take(6) == []
    waiter.notified(rows(9))  # 8 is missing
    assert waiter.take(7) is None
    waiter.notified(rows(8))
    waiter.notified(None)  # a notice without its events
    waiter.notified(rows(10))
    assert waiter.take(7) is None
    for n in range(CARRIED_MAX + 1):  # a reader far behind holds no more than CARRIED_MAX
        waiter.notified(rows(8 + n))
    assert waiter.carried == [] and waiter.take(7) is None


async def test_a_stream_listening_since_before_its_run_started_first_reads_at_a_notice() -> None:
    """The creator of a run listens before committing it: its stream's first read waits for the run's first
    notice (reading at once would only compete with the worker starting the run)."""
    hub, run_id = RunEventHub("postgresql://unused"), uuid.uuid4()
    reads: list[int] = []

    async def read(last: int) -> Page:
        reads.append(last)
        return Page(RunStatus.SUCCEEDED, [(1, b"done", True)], full=False)

    listening = hub.listen(run_id)
    stream = relay(hub, run_id, 0, read, lambda rows: [], patient=False, listening=listening)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    assert reads == [] and not first.done()
    listening.notified(None)  # the run's first notice (not carrying its events)
    assert await asyncio.wait_for(first, 5) == b"done"
    assert reads == [0]
    await stream.aclose()
    assert str(run_id) not in hub.waiters


async def test_a_listening_waiter_goes_with_a_stream_never_iterated() -> None:
    """A stream whose client left before it started is never iterated: its waiter, held by the hub weakly,
    goes with it, and so does the hub's entry for the run."""
    hub, run_id = RunEventHub("postgresql://unused"), uuid.uuid4()

    async def read(last: int) -> Page:
        raise AssertionError("never read")

    listening = hub.listen(run_id)
    stream = relay(hub, run_id, 0, read, lambda rows: [], patient=False, listening=listening)
    assert str(run_id) in hub.waiters
    del listening, stream
    gc.collect()
    assert str(run_id) not in hub.waiters
