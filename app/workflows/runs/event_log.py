"""Reading a run's event log back: its status and events after a position, in one snapshot, and the large
values events and states reference (``app/workflows/runs/values.py``) put back. Followers (the run and chat
streams, the run's detail) and the runner use it; every write is ``app/workflows/runs/store.py``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.runs import values as run_values
from app.workflows.runs.store import EventRow

#: How many events a follower reads at once.
EVENTS_PAGE = 500

_STATUS_AND_EVENTS = text(
    "SELECT r.status, e.seq, e.event, e.data FROM workflow_runs r LEFT JOIN LATERAL ("
    "SELECT seq, event, data FROM workflow_run_events WHERE run_id = r.id AND seq > :after "
    "ORDER BY seq LIMIT :limit) e ON true WHERE r.id = :id ORDER BY e.seq"
)


async def status_and_events(
    session: AsyncSession, run_id: uuid.UUID, after_seq: int
) -> tuple[str | None, list[EventRow]]:
    """The run's status and its events after ``after_seq`` (as stored, at most :data:`EVENTS_PAGE`), read in one
    statement and so from one snapshot: when the status is final, the events include the last one. (None, [])
    for an unknown run."""
    params = {"id": run_id, "after": after_seq, "limit": EVENTS_PAGE}
    rows = (await session.execute(_STATUS_AND_EVENTS, params)).all()
    if not rows:
        return None, []
    return rows[0].status, [(r.seq, r.event, r.data) for r in rows if r.seq is not None]


async def load_values(session: AsyncSession, run_id: uuid.UUID, digests: Iterable[str]) -> dict[str, Any]:
    wanted = list(set(digests))
    if not wanted:
        return {}
    rows = await session.execute(
        text("SELECT digest, value FROM workflow_run_values WHERE run_id = :id AND digest = ANY(:digests)"),
        {"id": run_id, "digests": wanted},
    )
    return {row.digest: row.value for row in rows}


async def hydrate(session: AsyncSession, run_id: uuid.UUID, obj: Any) -> Any:
    """``obj`` (a pool, an event's data...) with its value references replaced by the values."""
    found = run_values.digests(obj)
    if not found:
        return obj
    return run_values.substitute(obj, await load_values(session, run_id, found))


async def hydrate_events(session: AsyncSession, run_id: uuid.UUID, rows: list[EventRow]) -> list[EventRow]:
    found = run_values.all_digests(data for _, _, data in rows)
    if not found:
        return rows
    loaded = await load_values(session, run_id, found)
    return [(seq, event, run_values.substitute(data, loaded)) for seq, event, data in rows]
