"""Initial schema: pgvector, procrastinate's queue tables, tenancy and datasets.

procrastinate's schema is the ``schema.sql`` of the pinned version (3.10). When the pin moves, add a revision
that runs the migration files procrastinate ships for the versions in between (``db.migrate.procrastinate_sql``).

Revision ID: 0001
Revises:
Create Date: 2026-11-29 03:33:40.373028
"""

from collections.abc import Sequence

import advanced_alchemy.types
import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

from db.migrate import drop_procrastinate, procrastinate_sql, run_sql

# Autogenerate spells pgvector's and advanced-alchemy's types with these prefixes.
sa.VECTOR = pgvector.sqlalchemy.VECTOR
sa.HALFVEC = pgvector.sqlalchemy.HALFVEC
sa.GUID = advanced_alchemy.types.GUID
sa.DateTimeUTC = advanced_alchemy.types.DateTimeUTC
sa.JsonB = advanced_alchemy.types.JsonB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    run_sql(op.get_bind(), procrastinate_sql("schema.sql", expected_version="3.10"))
    op.create_table(
        "workspaces",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
    )
    op.create_index(
        "workspaces_one_default",
        "workspaces",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "apps",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("workspace_id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_apps_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
    )
    op.create_index(op.f("ix_apps_workspace_id"), "apps", ["workspace_id"], unique=False)
    op.create_table(
        "datasets",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("workspace_id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("permission", sa.String(length=32), server_default="only_me", nullable=False),
        sa.Column("indexing_technique", sa.String(length=32), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_datasets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("workspace_id", "name", name="datasets_workspace_name"),
    )
    op.create_index(op.f("ix_datasets_workspace_id"), "datasets", ["workspace_id"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.GUID(length=16), nullable=False),
        sa.Column("app_id", sa.GUID(length=16), nullable=True),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("token_hint", sa.String(length=32), nullable=False),
        sa.Column("last_used_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("(type = 'app') = (app_id IS NOT NULL)", name=op.f("ck_api_keys_app_scope")),
        sa.CheckConstraint("type IN ('app', 'dataset')", name=op.f("ck_api_keys_type")),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_api_keys_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_api_keys_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_keys_token_hash")),
    )
    op.create_index(op.f("ix_api_keys_app_id"), "api_keys", ["app_id"], unique=False)
    op.create_index(op.f("ix_api_keys_workspace_id"), "api_keys", ["workspace_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_workspace_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_app_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_datasets_workspace_id"), table_name="datasets")
    op.drop_table("datasets")
    op.drop_index(op.f("ix_apps_workspace_id"), table_name="apps")
    op.drop_table("apps")
    op.drop_index("workspaces_one_default", table_name="workspaces", postgresql_where=sa.text("is_default"))
    op.drop_table("workspaces")
    drop_procrastinate(op.get_bind())
    op.execute("DROP EXTENSION IF EXISTS vector")
