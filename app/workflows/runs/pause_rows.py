"""The rows of ``workflow_pauses``: a node waiting for the outside world, from the write that opens it to the one
that consumes it (both inside ``store.apply``'s compare-and-set), its resolution, and its removal when its run
stops.

A pause is resolved by a compare-and-set of its own on the pause row (``resolved_at IS NULL``), after its runs are
locked in id order (the lock order of every transition): concurrent batches of resolutions cannot deadlock, of two
resolutions of one pause exactly one wins, and a run with no open pause left is ready to resume.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class Pause(msgspec.Struct, frozen=True, kw_only=True):
    """A node waiting for the outside world; ``kind`` names the pause kind that handles it."""

    run_id: uuid.UUID
    node_id: str
    execution_id: uuid.UUID
    kind: str
    request: dict[str, Any]
    resolution: dict[str, Any] | None = None


async def insert(session: AsyncSession, pauses: Sequence[Pause]) -> None:
    if not pauses:
        return
    await session.execute(
        text(
            """
            INSERT INTO workflow_pauses (run_id, node_id, execution_id, kind, request, created_at)
            SELECT run_id, node_id, execution_id, kind, request, now()
            FROM jsonb_to_recordset(CAST(:rows AS jsonb))
                 AS p(run_id uuid, node_id text, execution_id uuid, kind text, request jsonb)
            """
        ),
        {"rows": msgspec.json.encode(pauses).decode()},
    )


async def consume(session: AsyncSession, items: Sequence[tuple[uuid.UUID, str]]) -> None:
    if not items:
        return
    await session.execute(
        text(
            """
            DELETE FROM workflow_pauses p
            USING unnest(CAST(:runs AS uuid[]), CAST(:nodes AS text[])) AS d(run_id, node_id)
            WHERE p.run_id = d.run_id AND p.node_id = d.node_id
            """
        ),
        {"runs": [i[0] for i in items], "nodes": [i[1] for i in items]},
    )


async def resolve(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, str, Mapping[str, Any], str]]
) -> tuple[set[uuid.UUID], list[uuid.UUID]]:
    """Record how paused nodes end: ``(run, node, outputs, edge handle)`` each. Returns the runs whose pause this
    call won, and those of them left with no open pause (ready to resume), in id order.

    The runs are locked first, in id order (the lock order of every transition), so that two resolutions of one
    run committing at once cannot both see the other's pause still open (each would then leave the resume to
    the other). Then a compare-and-set on each pause (``resolved_at IS NULL``): of two concurrent resolutions
    of one pause exactly one wins."""
    if not items:
        return set(), []
    await session.execute(
        text("SELECT id FROM workflow_runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": sorted({i[0] for i in items})},
    )
    won = await session.execute(
        text(
            """
            UPDATE workflow_pauses p SET resolution = d.res, resolved_at = now()
            FROM unnest(CAST(:runs AS uuid[]), CAST(:nodes AS text[]), CAST(:res AS jsonb[])) AS d(run_id, node_id, res)
            WHERE p.run_id = d.run_id AND p.node_id = d.node_id AND p.resolved_at IS NULL
            RETURNING p.run_id
            """
        ),
        {
            "runs": [i[0] for i in items],
            "nodes": [i[1] for i in items],
            "res": [
                msgspec.json.encode({"outputs": dict(i[2]), "edge_source_handle": i[3]}).decode()
                for i in items
            ],
        },
    )
    runs = {row[0] for row in won}
    if not runs:
        return runs, []
    still_open = {
        row[0]
        for row in await session.execute(
            text(
                "SELECT DISTINCT run_id FROM workflow_pauses WHERE run_id = ANY(:ids) AND resolved_at IS NULL"
            ),
            {"ids": list(runs)},
        )
    }
    return runs, sorted(runs - still_open)


async def drop(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> list[Pause]:
    """Remove every pause of the runs (they stopped); returns them, for their kinds to close."""
    rows = await session.execute(
        text(
            "DELETE FROM workflow_pauses WHERE run_id = ANY(:ids) "
            "RETURNING run_id, node_id, execution_id, kind, request, resolution"
        ),
        {"ids": list(run_ids)},
    )
    return [msgspec.convert(row._asdict(), Pause) for row in rows]
