"""run lifecycle: run values stored once, pause kinds, one deadline per form, a scheduled-job index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_run_values",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False, comment="SHA-256 (hex) of the value's JSON"),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "digest"),
        comment='Large values of a run, stored once: state, node executions and events hold {"$value": digest}.',
    )
    op.add_column(
        "workflow_pauses",
        sa.Column(
            "kind",
            sa.String(length=64),
            nullable=False,
            server_default="human_input",
            comment="The pause kind that handles it (human_input, ...).",
        ),
    )
    op.alter_column("workflow_pauses", "kind", server_default=None)

    op.drop_index(
        "human_input_forms_waiting_node_deadline",
        table_name="human_input_forms",
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.drop_index(
        "human_input_forms_waiting_global_deadline",
        table_name="human_input_forms",
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.add_column(
        "human_input_forms",
        sa.Column(
            "deadline",
            sa.DateTime(timezone=True),
            sa.Computed(
                "least(coalesce(expiration_time, global_expiration_time), global_expiration_time)",
                persisted=True,
            ),
            nullable=False,
        ),
    )
    op.create_index(
        "human_input_forms_waiting_deadline",
        "human_input_forms",
        ["deadline"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
    )
    # Per-form timer jobs are gone (one alarm job per deadline set); drop the ones still queued.
    op.execute(
        "DELETE FROM procrastinate_jobs WHERE task_name = 'expire_human_input_form' AND status = 'todo'"
    )
    op.drop_column("human_input_forms", "timer_job_ids")
    # A worker sleeps until the next scheduled job of its queues: it asks this index when it goes idle.
    op.execute(
        "CREATE INDEX sluice_procrastinate_jobs_scheduled ON procrastinate_jobs (scheduled_at, queue_name) "
        "WHERE status = 'todo' AND scheduled_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sluice_procrastinate_jobs_scheduled")
    op.add_column(
        "human_input_forms",
        sa.Column(
            "timer_job_ids", postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.drop_index(
        "human_input_forms_waiting_deadline",
        table_name="human_input_forms",
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.drop_column("human_input_forms", "deadline")
    op.create_index(
        "human_input_forms_waiting_global_deadline",
        "human_input_forms",
        ["global_expiration_time"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "human_input_forms_waiting_node_deadline",
        "human_input_forms",
        ["expiration_time"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.drop_column("workflow_pauses", "kind")
    op.drop_table("workflow_run_values")
