"""hardening: purged run histories, retention indexes, shared store entries and open event streams

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflow_runs", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "workflow_runs_history_kept",
        "workflow_runs",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text("purged_at IS NULL AND finished_at IS NOT NULL"),
    )
    op.create_index(
        "human_input_forms_resolved",
        "human_input_forms",
        ["resolved_at"],
        unique=False,
        postgresql_where=sa.text("status <> 'waiting'"),
    )
    op.create_index(
        "upload_files_app_files_created",
        "upload_files",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("source <> 'datasets'"),
    )
    op.create_table(
        "store_entries",
        sa.Column("key", sa.Text(), nullable=False, comment="store name and key, e.g. rate_limit:<client>"),
        sa.Column("value", postgresql.BYTEA(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
        comment="Litestar store entries shared by every API process (app/stores.py): the form rate limit.",
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "store_entries_expires",
        "store_entries",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_table(
        "event_streams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="refreshed by the API process serving it; a stale row (its process died) no longer counts",
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        comment="Event streams (SSE) open now, per Service API key: the per-key cap counts these rows.",
        prefixes=["UNLOGGED"],
    )
    op.create_index("event_streams_key", "event_streams", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index("event_streams_key", table_name="event_streams")
    op.drop_table("event_streams")
    op.drop_index("store_entries_expires", table_name="store_entries")
    op.drop_table("store_entries")
    op.drop_index("upload_files_app_files_created", table_name="upload_files")
    op.drop_index("human_input_forms_resolved", table_name="human_input_forms")
    op.drop_index("workflow_runs_history_kept", table_name="workflow_runs")
    op.drop_column("workflow_runs", "purged_at")
