"""Forgetting resolved human-input forms (``SLUICE_FORM_RETENTION_DAYS``): a form that was submitted, timed out
or expired longer ago than that, whose run has finished, is deleted with its deliveries and recipients (their
foreign keys cascade). Waiting forms, and forms of runs still running or paused, are never touched."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.runs.store import FINISHED


async def purge_resolved_forms(session: AsyncSession, *, older_than_days: float, limit: int) -> int:
    """Delete up to ``limit`` such forms, oldest first; returns how many."""
    result = await session.execute(
        text(
            """
            DELETE FROM human_input_forms WHERE id IN (
                SELECT f.id FROM human_input_forms f JOIN workflow_runs r ON r.id = f.run_id
                WHERE f.status <> 'waiting' AND f.resolved_at < now() - make_interval(secs => :seconds)
                  AND r.status = ANY(:finished)
                ORDER BY f.resolved_at
                LIMIT :limit
                FOR UPDATE OF f SKIP LOCKED
            )
            RETURNING id
            """
        ),
        {"seconds": older_than_days * 86400, "finished": list(FINISHED), "limit": limit},
    )
    return len(result.all())
