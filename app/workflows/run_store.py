"""The SQL behind every run transition, in one place.

Correctness under concurrency rests on two rules (DESIGN.md 2 and 5):

* Every change of a run goes through ONE ``UPDATE workflow_runs ... WHERE id = :id AND status = ANY(:expected)``
  that also bumps ``last_event_seq`` by the number of events it writes. The row lock taken by that UPDATE
  orders concurrent writers (the worker's steps, a stop request, a resume), and the ``status`` guard makes the
  loser change nothing: a stop that lands first makes the worker's next step fail its guard, and the worker halts.
* The events of a change are inserted in the same transaction with the sequence numbers that UPDATE handed
  out, followed by ``pg_notify('sluice_run_events', run_id)``, which PostgreSQL delivers only at commit.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WorkflowNodeExecution, workflow_run_events

CHANNEL = "sluice_run_events"
ACTIVE = ("running", "paused")
FINISHED = ("succeeded", "failed", "stopped", "partial-succeeded")


class Event(msgspec.Struct, frozen=True):
    event: str
    data: dict[str, Any]


async def transition(
    session: AsyncSession,
    run_id: uuid.UUID,
    expected: Sequence[str],
    events: Sequence[Event] = (),
    **changes: Any,
) -> bool:
    """Compare-and-set the run (``status`` in ``expected``), apply ``changes``, append ``events``.

    Returns False, changing nothing, when the run is not in an expected status.
    """
    assignments = ", ".join(
        f"{column} = CAST(:{column} AS jsonb)" if column in _JSON_COLUMNS else f"{column} = :{column}"
        for column in changes
    )
    unknown = set(changes) - _COLUMNS
    if unknown:
        raise ValueError(f"not workflow_runs columns: {sorted(unknown)}")
    # Column names come from the allowlist above, values are bound parameters.
    sql = (
        "UPDATE workflow_runs SET "  # noqa: S608
        + (assignments + ", " if assignments else "")
        + "last_event_seq = last_event_seq + :n_events, updated_at = now() "
        + "WHERE id = :run_id AND status = ANY(:expected) RETURNING last_event_seq"
    )
    params = {**_jsonable(changes), "n_events": len(events), "run_id": run_id, "expected": list(expected)}
    last = (await session.execute(text(sql), params)).scalar_one_or_none()
    if last is None:
        return False
    await _insert_events(session, run_id, last - len(events) + 1, events)
    return True


async def append_events(session: AsyncSession, run_id: uuid.UUID, events: Sequence[Event]) -> None:
    """Events that change no status (streamed text): sequence numbers still come from the run row."""
    if not events:
        return
    last = (
        await session.execute(
            text(
                "UPDATE workflow_runs SET last_event_seq = last_event_seq + :n WHERE id = :id RETURNING last_event_seq"
            ),
            {"n": len(events), "id": run_id},
        )
    ).scalar_one()
    await _insert_events(session, run_id, last - len(events) + 1, events)


async def append_events_many(session: AsyncSession, items: Sequence[tuple[uuid.UUID, Event]]) -> None:
    """``append_events`` for many runs in a few statements (timer batches). The caller must already hold the
    runs' row locks, taken in id order, so that concurrent batches cannot deadlock on them."""
    per_run: dict[uuid.UUID, list[Event]] = {}
    for run_id, event in items:
        per_run.setdefault(run_id, []).append(event)
    if not per_run:
        return
    run_ids = sorted(per_run)
    rows = await session.execute(
        text(
            "UPDATE workflow_runs r SET last_event_seq = r.last_event_seq + c.n "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS integer[])) AS c(id, n) "
            "WHERE r.id = c.id RETURNING r.id, r.last_event_seq"
        ),
        {"ids": run_ids, "ns": [len(per_run[r]) for r in run_ids]},
    )
    values = []
    for run_id, last in rows:
        events = per_run[run_id]
        first = last - len(events) + 1
        values += [
            {"run_id": run_id, "seq": first + i, "event": e.event, "data": e.data}
            for i, e in enumerate(events)
        ]
    await session.execute(workflow_run_events.insert(), values)
    await session.execute(
        text("SELECT pg_notify(:channel, r) FROM unnest(CAST(:ids AS text[])) AS r"),
        {"channel": CHANNEL, "ids": [str(r) for r in run_ids]},
    )


async def _insert_events(
    session: AsyncSession, run_id: uuid.UUID, first_seq: int, events: Sequence[Event]
) -> None:
    if not events:
        return
    await session.execute(
        workflow_run_events.insert(),
        [
            {"run_id": run_id, "seq": first_seq + i, "event": e.event, "data": e.data}
            for i, e in enumerate(events)
        ],
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :run_id)"), {"channel": CHANNEL, "run_id": str(run_id)}
    )


async def upsert_node_execution(session: AsyncSession, run_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """Insert a node execution, or update it when the same execution id runs again (resume, crash retry)."""
    now = datetime.datetime.now(datetime.UTC)
    row = {"run_id": run_id, "created_at": now, "updated_at": now, **values}
    statement = insert(WorkflowNodeExecution).values(**row)
    updates = {k: statement.excluded[k] for k in values if k not in ("id", "created_at")}
    await session.execute(
        statement.on_conflict_do_update(index_elements=["id"], set_={**updates, "updated_at": now})
    )


async def stop_open_node_executions(session: AsyncSession, run_id: uuid.UUID, now: datetime.datetime) -> None:
    """A run that ends leaves no node execution running or paused."""
    await session.execute(
        update(WorkflowNodeExecution)
        .where(
            WorkflowNodeExecution.run_id == run_id, WorkflowNodeExecution.status.in_(["running", "paused"])
        )
        .values(status="stopped", finished_at=now)
    )


#: One stored event: (seq, event name, data).
EventRow = tuple[int, str, dict[str, Any]]


async def events_after(
    session: AsyncSession, run_id: uuid.UUID, after_seq: int, limit: int = 500
) -> list[EventRow]:
    rows = await session.execute(
        text(
            "SELECT seq, event, data FROM workflow_run_events WHERE run_id = :id AND seq > :after ORDER BY seq LIMIT :limit"
        ),
        {"id": run_id, "after": after_seq, "limit": limit},
    )
    return [(r.seq, r.event, r.data) for r in rows]


def _jsonable(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Values for text() parameters: JSON columns go through msgspec, the rest as they are."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        out[key] = (
            msgspec.json.encode(value).decode() if key in _JSON_COLUMNS and value is not None else value
        )
    return out


_JSON_COLUMNS = {"state", "outputs", "inputs"}
_COLUMNS = _JSON_COLUMNS | {
    "status",
    "error",
    "total_steps",
    "total_tokens",
    "exceptions_count",
    "elapsed_time",
    "finished_at",
    "paused_at",
}
