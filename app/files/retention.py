"""Forgetting old app files (``SLUICE_UPLOAD_FILE_RETENTION_DAYS``): files uploaded with ``/v1/files/upload``
(``source`` ``upload``) or produced by a node (``tool``) older than that are deleted with their bytes.

Never deleted: a knowledge document's file (``source`` ``datasets``, or any file a document still points at); a
file produced by a run that is still running or paused; an upload of an app that has a run still running or
paused which started after the upload (it may have the file among its inputs). A finished run that mentioned a
deleted file keeps the mention; the file's links then answer 404.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def purge_app_files(session: AsyncSession, *, older_than_days: float, limit: int) -> int:
    """Delete up to ``limit`` such files, oldest first; returns how many."""
    result = await session.execute(
        text(
            """
            DELETE FROM upload_files WHERE id IN (
                SELECT f.id FROM upload_files f
                WHERE f.source IN ('upload', 'tool')
                  AND f.created_at < now() - make_interval(secs => :seconds)
                  AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.upload_file_id = f.id)
                  AND NOT EXISTS (
                      SELECT 1 FROM workflow_runs r
                      WHERE r.status IN ('running', 'paused')
                        AND (r.id = f.run_id OR (r.app_id = f.app_id AND r.created_at >= f.created_at))
                  )
                ORDER BY f.created_at
                LIMIT :limit
                FOR UPDATE OF f SKIP LOCKED
            )
            RETURNING id
            """
        ),
        {"seconds": older_than_days * 86400, "limit": limit},
    )
    return len(result.all())
