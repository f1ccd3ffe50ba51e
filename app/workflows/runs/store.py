"""Every statement that writes runs, events, node executions and run values, and the reads that lock runs with
their pauses, batch-first (the pause rows: ``runs/pause_rows.py``; reading the event log back: ``runs/event_log.py``).

Correctness under concurrency rests on three rules (DESIGN.md 1, 2 and 5):

* Every change of a run goes through :func:`apply`, whose one ``UPDATE workflow_runs ... FROM (the writes)
  WHERE r.id = w.id AND r.status = ANY(w.expected)`` is the compare-and-set for every run of the batch. It also
  bumps ``last_event_seq`` by the number of events each run writes; the row lock it takes orders concurrent
  writers (the worker's checkpoints, a stop, a resume), and a run whose status is not the expected one is left
  out: its events, node executions and pauses are not written, and the caller learns it from the result.
* The events of a change are inserted in the same transaction with the sequence numbers that UPDATE handed
  out, then ``pg_notify('sluice_run_events', run_id)``, which PostgreSQL delivers only at commit. A write of
  streamed text only (``text_chunk`` events, the run still running) that fits a notice carries its events in it
  (``run_id first_seq [[event, data], ...]``): a follower that has every event before them need not read them
  back (:func:`notice_of`). The rows stay the truth; a notice only spares a read.
* Pauses are resolved by a compare-and-set on the pause row (``resolved_at IS NULL``), their runs locked first in
  id order (``runs/pause_rows.py``).

A single change is a batch of one: there is no second code path for it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.engine.statuses import RunStatus
from app.workflows.runs import pause_rows
from app.workflows.runs.pause_rows import Pause
from db import queue

CHANNEL = "sluice_run_events"
#: The longest list of events a notice carries (PostgreSQL refuses a payload of 8000 bytes or more).
NOTICE_MAX_BYTES = 7000
#: The only events a notice carries: streamed text, whose data is the text as the client gets it.
CARRIED = "text_chunk"
#: a run that may still change (a worker may advance it), and one that ended
ACTIVE = (RunStatus.RUNNING, RunStatus.PAUSED)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.PARTIAL_SUCCEEDED)

#: One stored event as read back: (seq, event name, data).
EventRow = tuple[int, str, dict[str, Any]]


class Event(msgspec.Struct, frozen=True):
    event: str
    data: dict[str, Any]


class RunRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    app_id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    state: dict[str, Any] | None
    created_by: str
    created_at: datetime.datetime
    elapsed_time: float
    total_steps: int
    total_tokens: int
    exceptions_count: int


class Write(msgspec.Struct, kw_only=True):
    """One run's part of a transition. ``changes`` are column values (only those given are set)."""

    run_id: uuid.UUID
    expected: tuple[RunStatus, ...]
    changes: dict[str, Any] = msgspec.field(default_factory=dict)
    events: list[Event] = msgspec.field(default_factory=list)
    #: Node executions to insert or update (by id): a started and finished node in one write is one row.
    executions: list[dict[str, Any]] = msgspec.field(default_factory=list)
    opened: list[Pause] = msgspec.field(default_factory=list)
    #: Node ids whose pause this write consumes (their node finished after the resolution).
    consumed: list[str] = msgspec.field(default_factory=list)
    values: dict[str, bytes] = msgspec.field(default_factory=dict)


_RUN_COLUMNS = (
    "id, app_id, workflow_id, status, inputs, outputs, error, state, created_by, created_at, elapsed_time, "
    "total_steps, total_tokens, exceptions_count"
)


async def lock_runs(session: AsyncSession, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RunRow]:
    """The runs, row-locked in id order (so that batches locking several runs never deadlock)."""
    return {run_id: run for run_id, (run, _) in (await _lock(session, run_ids, pauses=False)).items()}


async def lock_with_pauses(
    session: AsyncSession, run_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[RunRow, list[Pause]]]:
    """The runs row-locked in id order, each with its pauses (one round trip: what a runner loads)."""
    return await _lock(session, run_ids, pauses=True)


_PAUSES_OF_RUN = (
    "(SELECT coalesce(json_agg(json_build_object('run_id', p.run_id, 'node_id', p.node_id, "
    "'execution_id', p.execution_id, 'kind', p.kind, 'request', p.request, 'resolution', p.resolution) "
    "ORDER BY p.created_at, p.node_id), '[]') FROM workflow_pauses p WHERE p.run_id = workflow_runs.id)"
)


async def _lock(
    session: AsyncSession, run_ids: Iterable[uuid.UUID], *, pauses: bool
) -> dict[uuid.UUID, tuple[RunRow, list[Pause]]]:
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    columns = _RUN_COLUMNS + (f", {_PAUSES_OF_RUN} AS pauses" if pauses else "")
    rows = await session.execute(
        text(f"SELECT {columns} FROM workflow_runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),  # noqa: S608
        {"ids": ids},
    )
    out = {}
    for row in rows:
        fields = row._asdict()
        found = msgspec.convert(fields.pop("pauses", None) or [], list[Pause]) if pauses else []
        out[row.id] = (msgspec.convert(fields, RunRow), found)
    return out


async def get_runs(session: AsyncSession, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RunRow]:
    rows = await session.execute(
        text(f"SELECT {_RUN_COLUMNS} FROM workflow_runs WHERE id = ANY(:ids)"),  # noqa: S608
        {"ids": list(set(run_ids))},
    )
    return {row.id: msgspec.convert(row._asdict(), RunRow) for row in rows}


#: A statement of the caller's that goes with a new run (a CTE of the run's statement) and its parameters; it
#: reads the run's id as ``:id`` and its app as ``:app_id`` (a chat turn's message, which references the run).
Alongside = tuple[str, Mapping[str, Any]]


async def insert_run(
    session: AsyncSession,
    run: Mapping[str, Any],
    started: Event,
    values: dict[str, bytes],
    jobs: Sequence[queue.JobSpec],
    alongside: Alongside | None = None,
) -> None:
    """A new run, ``running``, with its first event (seq 1), ``jobs`` deferred and the ``alongside`` statement,
    in one statement; then its large values. No NOTIFY: nobody can follow a run whose id is not committed yet
    (the creator subscribes first)."""
    sql, extra = alongside or ("", {})
    await session.execute(
        _insert_run(sql),
        {
            **run,
            "inputs": msgspec.json.encode(run["inputs"]).decode(),
            "state": msgspec.json.encode(run["state"]).decode(),
            "event": started.event,
            "data": msgspec.json.encode(started.data).decode(),
            **queue.defer_params(jobs),
            **extra,
        },
    )
    await _insert_values(session, [(run["id"], d, v) for d, v in values.items()])


_INSERT_RUN: dict[str, TextClause] = {}


def _insert_run(alongside: str) -> TextClause:
    """The run's statement, with the CTE ``alongside`` (built once per distinct one: they are constants)."""
    statement = _INSERT_RUN.get(alongside)
    if statement is None:
        also = f"also AS ({alongside})," if alongside else ""
        statement = _INSERT_RUN[alongside] = text(
            f"""
            WITH run AS (
                INSERT INTO workflow_runs (id, app_id, workflow_id, status, inputs, created_by, state,
                                           last_event_seq, total_steps, total_tokens, exceptions_count,
                                           elapsed_time, created_at, updated_at)
                VALUES (:id, :app_id, :workflow_id, 'running', CAST(:inputs AS jsonb), :created_by,
                        CAST(:state AS jsonb), 1, 0, 0, 0, 0, now(), now())
                RETURNING id),
            ev AS (
                INSERT INTO workflow_run_events (run_id, seq, event, data, created_at)
                SELECT id, 1, :event, CAST(:data AS jsonb), now() FROM run),
            {also}
            jobs AS ({queue.DEFER_SELECT})
            SELECT (SELECT id FROM run), (SELECT count(*) FROM jobs)
            """  # noqa: S608 (constants: db/queue.py's and the caller's, no input)
        )
    return statement


# --- the one compare-and-set ------------------------------------------------------------------------------

#: Columns a write may set, and how a JSON text becomes each one's type.
_SETTABLE = {
    "status": "text",
    "error": "text",
    "state": "jsonb",
    "outputs": "jsonb",
    "total_steps": "int",
    "total_tokens": "int",
    "exceptions_count": "int",
    "elapsed_time": "float8",
    "finished_at": "timestamptz",
    "paused_at": "timestamptz",
}


def _assignment(column: str, kind: str) -> str:
    value = f"w.changes->'{column}'" if kind == "jsonb" else f"CAST(w.changes->>'{column}' AS {kind})"
    if kind == "jsonb":
        # JSON null means SQL NULL (a finished run drops its state).
        value = f"CASE WHEN jsonb_typeof({value}) = 'null' THEN NULL ELSE {value} END"
    return f"{column} = CASE WHEN w.changes ? '{column}' THEN {value} ELSE r.{column} END"


_EXECUTION_COLUMNS = {
    "id": "uuid",
    "run_id": "uuid",
    "node_id": "text",
    "node_type": "text",
    "title": "text",
    "index": "int",
    "predecessor_node_id": "text",
    "inputs": "jsonb",
    "process_data": "jsonb",
    "outputs": "jsonb",
    "status": "text",
    "error": "text",
    "elapsed_time": "float8",
    "execution_metadata": "jsonb",
    "finished_at": "timestamptz",
}
_quoted = ", ".join(f'"{c}"' for c in _EXECUTION_COLUMNS)

#: The compare-and-set, with the events, node executions and NOTIFY of the runs that won, in one statement (one
#: round trip): the data-modifying CTEs join the UPDATE's RETURNING, so a run that lost writes nothing.
_APPLY = text(
    "WITH w AS (SELECT * FROM jsonb_to_recordset(CAST(:writes AS jsonb)) "  # noqa: S608 - names are ours
    "AS w(id uuid, expected text[], changes jsonb, n_events int, notice text)), "
    "cas AS (UPDATE workflow_runs r SET "
    + ", ".join(_assignment(c, k) for c, k in _SETTABLE.items())
    + """, last_event_seq = r.last_event_seq + w.n_events, updated_at = now()
        FROM w WHERE r.id = w.id AND r.status = ANY(w.expected)
        RETURNING r.id, r.last_event_seq, w.n_events, w.notice),
    ev AS (
        INSERT INTO workflow_run_events (run_id, seq, event, data, created_at)
        SELECT e.run_id, cas.last_event_seq - cas.n_events + e.idx, e.event, e.data, now()
        FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(run_id uuid, idx int, event text, data jsonb)
        JOIN cas ON cas.id = e.run_id),
    ex AS (
        INSERT INTO workflow_node_executions ("""
    + _quoted
    + ", created_at, updated_at) SELECT "
    + ", ".join(f'x."{c}"' for c in _EXECUTION_COLUMNS)
    + ", now(), now() FROM jsonb_to_recordset(CAST(:executions AS jsonb)) AS x("
    + ", ".join(f'"{c}" {k}' for c, k in _EXECUTION_COLUMNS.items())
    + ") JOIN cas ON cas.id = x.run_id ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f'"{c}" = excluded."{c}"' for c in _EXECUTION_COLUMNS if c not in ("id", "run_id"))
    + """, updated_at = now()),
    notified AS (
        SELECT pg_notify(:channel, CASE WHEN cas.notice IS NULL THEN CAST(cas.id AS text)
                                   ELSE concat_ws(' ', cas.id, cas.last_event_seq - cas.n_events + 1, cas.notice) END)
        FROM cas WHERE cas.n_events > 0)
    SELECT cas.id, cas.last_event_seq, (SELECT count(*) FROM notified) AS notified FROM cas
    """
)


async def apply(session: AsyncSession, writes: Sequence[Write]) -> set[uuid.UUID]:
    """Apply ``writes`` in the caller's transaction; returns the runs whose compare-and-set won. The others are
    left exactly as they were (nothing of their write is stored)."""
    if not writes:
        return set()
    for write in writes:
        unknown = set(write.changes) - set(_SETTABLE)
        if unknown:
            raise ValueError(f"not settable on workflow_runs: {sorted(unknown)}")
    payload = [
        {
            "id": str(w.run_id),
            "expected": list(w.expected),
            "changes": w.changes,
            "n_events": len(w.events),
            "notice": notice_of(w),
        }
        for w in writes
    ]
    events = [
        {"run_id": str(w.run_id), "idx": i, "event": e.event, "data": e.data}
        for w in writes
        for i, e in enumerate(w.events, start=1)
    ]
    executions = [{**e, "run_id": str(w.run_id)} for w in writes for e in w.executions]
    rows = await session.execute(
        _APPLY,
        {
            "writes": msgspec.json.encode(payload).decode(),
            "events": msgspec.json.encode(events).decode(),
            "executions": msgspec.json.encode(executions).decode(),
            "channel": CHANNEL,
        },
    )
    won_ids = {row.id for row in rows}
    won = [w for w in writes if w.run_id in won_ids]
    await _insert_values(session, [(w.run_id, d, v) for w in won for d, v in w.values.items()])
    await pause_rows.insert(session, [p for w in won for p in w.opened])
    await pause_rows.consume(session, [(w.run_id, n) for w in won for n in w.consumed])
    return won_ids


def notice_of(write: Write) -> str | None:
    """The events a write's notice carries (a JSON list of ``[event, data]``), or None: the notice names the run
    only. Only streamed text is carried, and only from a write that leaves the run running: a follower learns of
    every other change from the rows."""
    if write.changes.get("status", RunStatus.RUNNING) != RunStatus.RUNNING:
        return None
    if not write.events or any(e.event != CARRIED for e in write.events):
        return None
    carried = msgspec.json.encode([(e.event, e.data) for e in write.events])
    return carried.decode() if len(carried) <= NOTICE_MAX_BYTES else None


async def _insert_values(session: AsyncSession, rows: Sequence[tuple[uuid.UUID, str, bytes]]) -> None:
    if not rows:
        return
    await session.execute(
        text(
            """
            INSERT INTO workflow_run_values (run_id, digest, value)
            SELECT * FROM unnest(CAST(:runs AS uuid[]), CAST(:digests AS text[]), CAST(:values AS jsonb[]))
            ON CONFLICT DO NOTHING
            """
        ),
        {
            "runs": [r[0] for r in rows],
            "digests": [r[1] for r in rows],
            "values": [r[2].decode() for r in rows],
        },
    )


async def stop_open_executions(
    session: AsyncSession, run_ids: Sequence[uuid.UUID], now: datetime.datetime
) -> None:
    """Runs that end leave no node execution running or paused."""
    await session.execute(
        text(
            "UPDATE workflow_node_executions SET status = 'stopped', finished_at = :now, updated_at = now() "
            "WHERE run_id = ANY(:ids) AND status IN ('running', 'paused')"
        ),
        {"ids": list(run_ids), "now": now},
    )
