"""files for workflow apps: app uploads and node-produced files in upload_files

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

sa.GUID = advanced_alchemy.types.GUID

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "upload_files", sa.Column("source", sa.String(length=16), server_default="datasets", nullable=False)
    )
    op.add_column("upload_files", sa.Column("app_id", sa.GUID(length=16), nullable=True))
    op.add_column("upload_files", sa.Column("created_by", sa.String(length=255), nullable=True))
    op.add_column("upload_files", sa.Column("run_id", sa.GUID(length=16), nullable=True))
    op.alter_column(
        "upload_files",
        "extension",
        existing_type=sa.String(length=16),
        type_=sa.String(length=255),
        existing_nullable=False,
    )
    op.create_foreign_key(
        op.f("fk_upload_files_app_id_apps"), "upload_files", "apps", ["app_id"], ["id"], ondelete="CASCADE"
    )
    op.create_foreign_key(
        op.f("fk_upload_files_run_id_workflow_runs"),
        "upload_files",
        "workflow_runs",
        ["run_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("upload_files_app", "upload_files", ["app_id"], unique=False)
    op.create_check_constraint(
        op.f("ck_upload_files_source"), "upload_files", "source IN ('datasets', 'upload', 'tool')"
    )
    op.create_check_constraint(
        op.f("ck_upload_files_app_scope"), "upload_files", "(source = 'datasets') = (app_id IS NULL)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM upload_files WHERE source <> 'datasets'")
    op.drop_constraint(op.f("ck_upload_files_app_scope"), "upload_files", type_="check")
    op.drop_constraint(op.f("ck_upload_files_source"), "upload_files", type_="check")
    op.drop_index("upload_files_app", table_name="upload_files")
    op.drop_constraint(op.f("fk_upload_files_run_id_workflow_runs"), "upload_files", type_="foreignkey")
    op.drop_constraint(op.f("fk_upload_files_app_id_apps"), "upload_files", type_="foreignkey")
    op.alter_column(
        "upload_files",
        "extension",
        existing_type=sa.String(length=255),
        type_=sa.String(length=16),
        existing_nullable=False,
    )
    op.drop_column("upload_files", "run_id")
    op.drop_column("upload_files", "created_by")
    op.drop_column("upload_files", "app_id")
    op.drop_column("upload_files", "source")
