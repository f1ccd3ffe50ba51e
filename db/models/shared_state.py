"""State the API processes share through the database: Litestar store entries (the rate limit) and the event
streams open per key. Neither is precious: both tables are UNLOGGED (no WAL; emptied by a crash of PostgreSQL,
which also ends every stream and resets a rate-limit window at worst)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA

from db.models.base import Base

store_entries = sa.Table(
    "store_entries",
    Base.metadata,
    sa.Column("key", sa.Text, primary_key=True, comment="store name and key, e.g. rate_limit:<client>"),
    sa.Column("value", BYTEA, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("store_entries_expires", "expires_at", postgresql_where=sa.text("expires_at IS NOT NULL")),
    comment="Litestar store entries shared by every API process (app/stores.py): the form rate limit.",
    prefixes=["UNLOGGED"],
)

event_streams = sa.Table(
    "event_streams",
    Base.metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("key_id", sa.Uuid, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column(
        "seen_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
        comment="refreshed by the API process serving it; a stale row (its process died) no longer counts",
    ),
    sa.Index("event_streams_key", "key_id"),
    comment="Event streams (SSE) open now, per Service API key: the per-key cap counts these rows.",
    prefixes=["UNLOGGED"],
)
