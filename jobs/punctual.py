"""A procrastinate worker that wakes when its next scheduled job is due, not at its next poll.

procrastinate starts a job deferred for later (``schedule_at``) at the worker's next poll: NOTIFY fires when a
job is inserted, not when it becomes due. With the default half-second poll a deadline was up to 0.5 s late at
light load (p99 530 ms); polling faster costs queries all day. Instead, each time the worker runs out of jobs
it asks one indexed question, "when is the next job of my queues due?" (``sluice_procrastinate_jobs_scheduled``),
and sets a timer that wakes its fetch loop then. "Next" means due after the worker began its last look for
work, not after now: a job that fell due between that look and the question (the timer of a job due *now*
fires, the fetch runs a hair early, the job is due by the time of the question) is still answered, with a time
in the past, and the worker fetches again at once instead of waiting for the poll. A job deferred meanwhile wakes the worker by NOTIFY as before
(which ends in this question again), and the poll stays as the fallback.

This overrides a private method of ``procrastinate.worker.Worker`` (``_fetch_and_process_jobs``, called by the
run loop whenever there is something to fetch): procrastinate's minor version is pinned, and the timer
benchmark and ``tests/test_punctual_worker.py`` check the behaviour.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from procrastinate import worker as procrastinate_worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.heartbeat import HeartbeatThread

NextDue = Callable[[datetime.datetime], Awaitable[datetime.datetime | None]]

#: While jobs run, the question waits this long: asked at once, it competed with a short job's last steps for
#: the event loop and the database (a trivial workflow run is done within ~5 ms of its fetch), which put ~1 ms
#: on every run. A timer is at most this much later when the worker is busy.
BUSY_QUESTION_DELAY = 0.02


def next_due_query(sessions: async_sessionmaker[AsyncSession], queues: Sequence[str] | None) -> NextDue:
    """When the next job of ``queues`` (all when None) scheduled after ``after`` is due."""

    async def next_due(after: datetime.datetime) -> datetime.datetime | None:
        async with sessions() as session:
            # One statement, no transaction around it (asked whenever the worker runs out of work).
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return await session.scalar(  # type: ignore[no-any-return]
                text(
                    "SELECT min(scheduled_at) FROM procrastinate_jobs WHERE status = 'todo' "
                    "AND scheduled_at > :after AND (CAST(:queues AS text[]) IS NULL OR queue_name = ANY(:queues))"
                ),
                {"after": after, "queues": list(queues) if queues else None},
            )

    return next_due


class PunctualWorker(procrastinate_worker.Worker):
    """Also: with ``heartbeat_conninfo``, heartbeats come from a thread (``jobs/heartbeat.py``) that keeps beating
    until :meth:`stop_heartbeat`, called once every job of the worker has ended."""

    def __init__(self, *, next_due: NextDue, heartbeat_conninfo: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._next_due = next_due
        self._alarm: asyncio.TimerHandle | None = None
        self._question: asyncio.TimerHandle | None = None
        self._asking: set[asyncio.Task[None]] = set()
        self._heartbeat_conninfo = heartbeat_conninfo
        self._heartbeat: HeartbeatThread | None = None
        #: Set when a side task (the LISTEN connection, the heartbeat) died: the database went away, and the
        #: worker stopped because of it rather than because someone asked it to.
        self.side_task_failed = False

    async def _update_heartbeat(self) -> None:
        if self._heartbeat_conninfo is None:
            await super()._update_heartbeat()
            return
        if self._heartbeat is None:
            assert self.worker_id is not None
            self._heartbeat = HeartbeatThread(
                self._heartbeat_conninfo, self.worker_id, self.update_heartbeat_interval
            )
            self._heartbeat.start()
        # The side task itself only waits: procrastinate cancels it at shutdown, before the running jobs end, and
        # the thread must go on beating until they have.
        await asyncio.Event().wait()

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    async def _monitor_side_tasks(self, side_tasks: list[asyncio.Task[Any]]) -> None:
        await super()._monitor_side_tasks(side_tasks)
        self.side_task_failed = any(t.done() and not t.cancelled() and t.exception() for t in side_tasks)

    async def _fetch_and_process_jobs(self) -> None:
        looked = datetime.datetime.now(datetime.UTC)
        await super()._fetch_and_process_jobs()
        # Nothing more to fetch now: wake up when the next scheduled job is due (this question supersedes any
        # earlier one still waiting).
        for handle in (self._alarm, self._question):
            if handle is not None:
                handle.cancel()
        self._alarm = self._question = None
        if self._stop_event.is_set():
            return
        if self._running_jobs:
            self._question = asyncio.get_running_loop().call_later(
                BUSY_QUESTION_DELAY, self._ask_later, looked
            )
            return
        await self._ask(looked)

    def _ask_later(self, looked: datetime.datetime) -> None:
        self._question = None
        task = asyncio.create_task(self._ask(looked))
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _ask(self, looked: datetime.datetime) -> None:
        try:
            due = await self._next_due(looked)
        except Exception:  # the poll still wakes the worker; the next idle moment asks again
            self.logger.warning("could not read the next scheduled job", exc_info=True)
            return
        if due is not None and not self._stop_event.is_set():
            if self._alarm is not None:
                self._alarm.cancel()
            delay = (due - datetime.datetime.now(datetime.UTC)).total_seconds()
            self._alarm = asyncio.get_running_loop().call_later(max(0.0, delay), self._new_job_event.set)


def make_worker(app: Any, next_due: NextDue, **options: Any) -> PunctualWorker:
    """The worker ``app.run_worker_async(**options)`` would run, punctual."""
    app.perform_import_paths()
    return PunctualWorker(app=app, next_due=next_due, **{**app.worker_defaults, **options})


async def run(app: Any, next_due: NextDue, **options: Any) -> None:
    """``app.run_worker_async(**options)`` with a punctual worker."""
    await make_worker(app, next_due, **options).run()
