"""Chat apps: end users, conversations, messages (each turn, tied to its run), message files, feedback and
conversation variables (chatflow spec 3, 4, 7).

Everything a user says or gets belongs to one end user of one app (``end_users``: the Service API's ``user``
string, created on first sight). A message is one turn; an advanced-chat turn references the workflow run that
answered it (``workflow_run_id``), and the run's end (the run lifecycle's end hook) fills in its answer, usage
and status in the transaction that ends the run.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class EndUser(Base):
    """Someone using an app through the Service API, known by the ``user`` string the client sends."""

    __tablename__ = "end_users"
    __table_args__ = (UniqueConstraint("app_id", "session_id", name="end_users_app_session"),)

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    #: the ``user`` string of the Service API
    session_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32), default="service_api", server_default="service_api")
    is_anonymous: Mapped[bool] = mapped_column(default=False, server_default=sa.text("false"))
    name: Mapped[str | None] = mapped_column(String(255))


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("conversations_user_updated", "app_id", "end_user_id", "updated_at"),
        Index("conversations_user_created", "app_id", "end_user_id", "created_at"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    end_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("end_users.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: the first turn's inputs (shown by the conversation list; each message keeps its own)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    introduction: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    from_source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    invoke_from: Mapped[str] = mapped_column(String(32), default="service-api", server_default="service-api")


class Message(Base):
    """One turn: the query and the answer streamed back, with its usage (Dify's ``messages`` row)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("messages_conversation_created", "conversation_id", "created_at"),
        Index(
            "messages_run",
            "workflow_run_id",
            unique=True,
            postgresql_where=sa.text("workflow_run_id IS NOT NULL"),
        ),
        sa.CheckConstraint("status IN ('normal', 'error', 'paused')", name="status"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    end_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("end_users.id", ondelete="CASCADE"))
    #: the run that answers it (none when an annotation answered)
    workflow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="SET NULL")
    )
    mode: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    query: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    error: Mapped[str | None] = mapped_column(Text)
    message_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    answer_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    total_price: Mapped[float] = mapped_column(sa.Numeric(14, 7), default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(8), default="USD", server_default="USD")
    provider_response_latency: Mapped[float] = mapped_column(default=0.0, server_default="0")
    #: ``{annotation_reply, retriever_resources, usage}``: the ``metadata`` of ``message_end``
    message_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    from_source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")


class MessageFile(Base):
    """A file of a turn: one the user sent (``belongs_to`` user) or one the answer produced (assistant)."""

    __tablename__ = "message_files"
    __table_args__ = (Index("message_files_message", "message_id"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    belongs_to: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    transfer_method: Mapped[str] = mapped_column(String(16))
    upload_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("upload_files.id", ondelete="SET NULL")
    )
    url: Mapped[str | None] = mapped_column(Text)
    #: the file dict as the run saw it (name, MIME type, size: what a remote file's probe found)
    file: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class MessageFeedback(Base):
    __tablename__ = "message_feedbacks"
    __table_args__ = (
        UniqueConstraint(
            "message_id", "from_source", "from_end_user_id", name="message_feedbacks_one_per_user"
        ),
        Index("message_feedbacks_app_created", "app_id", "created_at"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    from_source: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    from_end_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("end_users.id", ondelete="CASCADE"))
    from_account_id: Mapped[uuid.UUID | None]


class ConversationVariable(Base):
    """One declared conversation variable's value in one conversation (keyed by the DSL's variable id)."""

    __tablename__ = "conversation_variables"
    __table_args__ = (
        UniqueConstraint("conversation_id", "variable_id", name="conversation_variables_one_each"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: the id in the DSL's ``conversation_variables`` (the same in every conversation of the app)
    variable_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    value_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: declaration order, so that rows created together list in the DSL's order
    position: Mapped[int] = mapped_column(default=0, server_default="0")
