"""Forgetting the history of old finished runs (``WORKFLOW_LOG_RETENTION_DAYS``).

A finished run's events, node executions and stored values (``workflow_run_values``, referenced only by those
events and executions: a finished run has no state) are deleted together; the run row stays, with its status,
inputs, outputs and totals, and ``purged_at`` set. ``GET /v1/workflows/run/{id}`` and the logs keep showing it;
its event stream answers 410 ``run_events_purged``.

Only runs in a final status are touched, and those never change again (every transition compare-and-sets from
``running`` or ``paused``). Each batch locks its runs ``FOR UPDATE SKIP LOCKED``, so two workers purging at once
take different runs, and a stop request on such a run (which locks it) waits for one batch at most.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.runs.store import FINISHED


async def purge_run_history(session: AsyncSession, *, older_than_days: float, limit: int) -> int:
    """Delete the events, node executions and values of up to ``limit`` runs that finished more than
    ``older_than_days`` ago, oldest first, and mark them purged. Returns how many runs were purged."""
    run_ids: list[uuid.UUID] = list(
        await session.scalars(
            text(
                """
                SELECT id FROM workflow_runs
                WHERE purged_at IS NULL AND finished_at IS NOT NULL
                  AND finished_at < now() - make_interval(secs => :seconds)
                  AND status = ANY(:finished)
                ORDER BY finished_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
                """
            ),
            {"seconds": older_than_days * 86400, "finished": list(FINISHED), "limit": limit},
        )
    )
    if not run_ids:
        return 0
    for table in ("workflow_run_events", "workflow_node_executions", "workflow_run_values"):
        await session.execute(text(f"DELETE FROM {table} WHERE run_id = ANY(:ids)"), {"ids": run_ids})  # noqa: S608
    await session.execute(
        text("UPDATE workflow_runs SET purged_at = now() WHERE id = ANY(:ids)"), {"ids": run_ids}
    )
    return len(run_ids)
