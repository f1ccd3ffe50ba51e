"""One alarm for every form deadline: a single ``handle_human_input_deadlines`` job scheduled at the earliest
deadline of the waiting forms.

A queued job per deadline made every worker fetch walk past all of them (procrastinate orders by priority and
id, not by time): 0.9 ms per fetch at 10,000 waiting forms, 6 ms at 100,000. Deadlines live in
``human_input_forms.deadline`` (indexed for waiting forms); the queue holds one alarm whatever their number.

The alarm is the job queued under the queueing lock ``ALARM_LOCK``. :func:`ensure_alarm` makes sure it rings no
later than a given time, in the caller's transaction:

1. move the queued alarm earlier if it is set later (an UPDATE that only touches the row when it must, so the
   common case, a later deadline, locks nothing), and NOTIFY the workers as an insert would;
2. else, if an alarm is queued, it already rings early enough;
3. else queue one, in a savepoint: a concurrent transaction queueing its own alarm makes the unique queueing
   lock fail, and this transaction goes back to step 1 (that alarm is now committed and visible).

When the alarm rings it handles every due deadline, then calls ``ensure_alarm`` with the next one. The periodic
sweep does the same, so a lost alarm (a deleted job) is replaced within a sweep interval.
"""

from __future__ import annotations

import datetime
import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import queue

ALARM_LOCK = "human-input-deadlines"


async def ensure_alarm(session: AsyncSession, at: datetime.datetime | None) -> None:
    """The deadline alarm rings at ``at`` or earlier (None: nothing is waiting; a queued alarm stays)."""
    if at is None:
        return
    for _ in range(3):
        moved = await session.execute(
            text(
                "UPDATE procrastinate_jobs SET scheduled_at = :at "
                "WHERE queueing_lock = :lock AND status = 'todo' AND scheduled_at > :at RETURNING id, queue_name"
            ),
            {"at": at, "lock": ALARM_LOCK},
        )
        row = moved.first()
        if row is not None:
            # Moving a job sends no NOTIFY (only inserting one does): tell idle workers, as procrastinate's insert
            # trigger would, so that they look again and set their timer for the earlier time (jobs/punctual.py).
            await session.execute(
                text(
                    "SELECT pg_notify('procrastinate_queue_v1#' || :queue, :payload), "
                    "pg_notify('procrastinate_any_queue_v1', :payload)"
                ),
                {"queue": row.queue_name, "payload": json.dumps({"type": "job_inserted", "job_id": row.id})},
            )
            return
        queued = await session.scalar(
            text("SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = :lock AND status = 'todo'"),
            {"lock": ALARM_LOCK},
        )
        if queued:
            return
        if await queue.defer(
            session, queue.Task.HANDLE_HUMAN_INPUT_DEADLINES, schedule_at=at, queueing_lock=ALARM_LOCK
        ):
            return
    raise RuntimeError("could not queue the human-input deadline alarm")  # pragma: no cover - 3 lost races


async def next_deadline(session: AsyncSession) -> datetime.datetime | None:
    """The earliest deadline of a waiting form (an index scan)."""
    return await session.scalar(  # type: ignore[no-any-return]
        text("SELECT min(deadline) FROM human_input_forms WHERE status = 'waiting'")
    )
