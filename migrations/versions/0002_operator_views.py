"""Operator views over the job queue: jobs by queue and status, and jobs stuck on dead workers.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW ops_queue_overview AS
        SELECT queue_name, status::text AS status, count(*) AS jobs,
               min(scheduled_at) FILTER (WHERE status = 'todo') AS next_scheduled_at
        FROM procrastinate_jobs
        GROUP BY queue_name, status
        """
    )
    op.execute(
        "COMMENT ON VIEW ops_queue_overview IS "
        "'Jobs per queue and status; next_scheduled_at is the earliest scheduled todo job (timers).'"
    )
    op.execute(
        """
        CREATE VIEW ops_stalled_jobs AS
        SELECT j.id, j.queue_name, j.task_name, j.args, j.attempts, j.worker_id, w.last_heartbeat,
               now() - w.last_heartbeat AS silent_for
        FROM procrastinate_jobs j
        LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
        WHERE j.status = 'doing' AND (w.id IS NULL OR w.last_heartbeat < now() - interval '30 seconds')
        """
    )
    op.execute(
        "COMMENT ON VIEW ops_stalled_jobs IS "
        "'Running jobs whose worker stopped beating (killed?). The retry_stalled_jobs task retries them "
        "every 15 s; rows here that do not go away mean no worker runs the timers queue.'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS ops_stalled_jobs")
    op.execute("DROP VIEW IF EXISTS ops_queue_overview")
