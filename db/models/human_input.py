"""Human-input forms, how each is delivered, and who may answer it (one unguessable token per recipient)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class HumanInputForm(Base):
    __tablename__ = "human_input_forms"
    __table_args__ = (
        # Deadline handling reads waiting forms by their next deadline; only waiting forms are ever looked at.
        Index(
            "human_input_forms_waiting_deadline", "deadline", postgresql_where=sa.text("status = 'waiting'")
        ),
        Index("human_input_forms_run", "run_id"),
        # What the retention job looks for: resolved forms, oldest first.
        Index("human_input_forms_resolved", "resolved_at", postgresql_where=sa.text("status <> 'waiting'")),
        sa.CheckConstraint("status IN ('waiting', 'submitted', 'timeout', 'expired')", name="status"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(255))
    node_title: Mapped[str] = mapped_column(String(255))
    execution_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    form_content: Mapped[str] = mapped_column(Text)
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    resolved_default_values: Mapped[dict[str, Any]] = mapped_column(JSONB)
    user_actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: The node's own deadline (NULL: no node timeout) and the global one (HUMAN_INPUT_GLOBAL_TIMEOUT_SECONDS).
    expiration_time: Mapped[datetime.datetime | None]
    global_expiration_time: Mapped[datetime.datetime]
    submitted_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    action_id: Mapped[str | None] = mapped_column(String(32))
    submitted_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime.datetime | None]
    #: The earlier of the two deadlines: what the deadline alarm and the sweep order and compare by.
    deadline: Mapped[datetime.datetime] = mapped_column(
        sa.DateTime(timezone=True),
        sa.Computed(
            "least(coalesce(expiration_time, global_expiration_time), global_expiration_time)", persisted=True
        ),
    )


class HumanInputDelivery(Base):
    __tablename__ = "human_input_deliveries"

    form_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("human_input_forms.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)


class HumanInputRecipient(Base):
    """Who may answer. The token is HMAC(SLUICE_SECRET_KEY, nonce): only its SHA-256 is stored, so a database
    dump alone cannot submit, while the service (which holds the key) can rebuild the link for delivery."""

    __tablename__ = "human_input_recipients"

    form_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("human_input_forms.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("human_input_deliveries.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(320))
    nonce: Mapped[bytes]
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    sent_at: Mapped[datetime.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
