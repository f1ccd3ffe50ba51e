"""Workspaces, apps and the API keys that reach them."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (
        # At most one default workspace: the partial unique index makes "create it if missing" race-free.
        Index("workspaces_one_default", "is_default", unique=True, postgresql_where=text("is_default")),
    )

    name: Mapped[str] = mapped_column(String(255))
    is_default: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class App(Base):
    __tablename__ = "apps"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")


class ApiKey(Base):
    """A Service API key. Only a SHA-256 of the secret is stored; the secret is shown once, at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("type IN ('app', 'dataset')", name="type"),
        CheckConstraint("(type = 'app') = (app_id IS NOT NULL)", name="app_scope"),
    )

    type: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    token_hint: Mapped[str] = mapped_column(String(32))
    last_used_at: Mapped[datetime.datetime | None]
    revoked_at: Mapped[datetime.datetime | None]
