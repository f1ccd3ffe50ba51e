"""Workflow versions, runs, node executions, the per-run event log and pauses."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Workflow(Base):
    """A published version of an app's graph, with the DSL document it came from (for export)."""

    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("app_id", "version", name="workflows_app_version"),)

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    graph: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dsl: Mapped[dict[str, Any]] = mapped_column(JSONB)


def latest_version(app_id: Any) -> sa.Select[uuid.UUID]:
    """The id of an app's latest version; ``app_id`` is a bound parameter or a column to correlate with."""
    return sa.select(Workflow.id).where(Workflow.app_id == app_id).order_by(Workflow.version.desc()).limit(1)


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("workflow_runs_app_created", "app_id", "created_at"),
        Index("workflow_runs_status", "status", postgresql_where=sa.text("status IN ('running', 'paused')")),
        # What the retention job looks for: finished runs whose history is still kept, oldest first.
        Index(
            "workflow_runs_history_kept",
            "finished_at",
            postgresql_where=sa.text("purged_at IS NULL AND finished_at IS NOT NULL"),
        ),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    total_steps: Mapped[int] = mapped_column(default=0)
    total_tokens: Mapped[int] = mapped_column(default=0)
    exceptions_count: Mapped[int] = mapped_column(default=0)
    elapsed_time: Mapped[float] = mapped_column(default=0.0)
    created_by: Mapped[str] = mapped_column(String(255))
    finished_at: Mapped[datetime.datetime | None]
    paused_at: Mapped[datetime.datetime | None]
    #: The engine's state at the last checkpoint (pool with large values referenced, node states, edges);
    #: NULL once the run has finished.
    state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    #: Sequence number of the run's last event; bumped in the same UPDATE that changes state.
    last_event_seq: Mapped[int] = mapped_column(default=0)
    #: When the retention job deleted the finished run's events, node executions and stored values (the row
    #: itself stays: status, inputs, outputs and totals); its event stream then answers 410.
    purged_at: Mapped[datetime.datetime | None]


class WorkflowNodeExecution(Base):
    __tablename__ = "workflow_node_executions"
    __table_args__ = (Index("workflow_node_executions_run", "run_id", "index"),)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(255))
    node_type: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    index: Mapped[int]
    predecessor_node_id: Mapped[str | None] = mapped_column(String(255))
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    process_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    elapsed_time: Mapped[float] = mapped_column(default=0.0)
    execution_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    finished_at: Mapped[datetime.datetime | None]


workflow_run_events = sa.Table(
    "workflow_run_events",
    Base.metadata,
    sa.Column("run_id", sa.Uuid, sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    comment="Every event of a run, in order (seq); SSE replays from here and follows via NOTIFY sluice_run_events.",
)

workflow_pauses = sa.Table(
    "workflow_pauses",
    Base.metadata,
    sa.Column("run_id", sa.Uuid, sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("node_id", sa.String(255), primary_key=True),
    sa.Column("execution_id", sa.Uuid, nullable=False),
    sa.Column(
        "kind", sa.String(64), nullable=False, comment="The pause kind that handles it (human_input, ...)."
    ),
    sa.Column("request", JSONB, nullable=False),
    sa.Column("resolution", JSONB, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    comment="A node waiting for the outside world. A run resumes once every pause of it is resolved.",
)

workflow_run_values = sa.Table(
    "workflow_run_values",
    Base.metadata,
    sa.Column("run_id", sa.Uuid, sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("digest", sa.Text, primary_key=True, comment="SHA-256 (hex) of the value's JSON"),
    sa.Column("value", JSONB, nullable=False),
    comment='Large values of a run, stored once: state, node executions and events hold {"$value": digest}.',
)
