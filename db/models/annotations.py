"""Annotations: stored question/answer pairs of an app, and the app's annotation-reply setting and its jobs.

Dify's ``message_annotations``, ``app_annotation_settings`` and its Redis-held enable/disable jobs, as rows. An
annotation's ``embedding`` (dimensionless ``vector``, the model named in the setting) is filled by the enable
job and on each create/update while reply is enabled; matching compares a query against them (a handful to a
few thousand rows per app, so an exact scan, no index).
"""

from __future__ import annotations

import uuid
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Annotation(Base):
    __tablename__ = "app_annotations"
    __table_args__ = (Index("app_annotations_app_created", "app_id", "created_at"),)

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    hit_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The vector of ``question`` in the model of ``embedding_model`` (null until reply is enabled).
    embedding: Mapped[Any] = mapped_column(VECTOR(), nullable=True, deferred=True)
    embedding_model: Mapped[str | None] = mapped_column(String(255))


class AnnotationSetting(Base):
    """An app's annotation reply: on or off, the score a match needs, the embedding model of its vectors."""

    __tablename__ = "app_annotation_settings"

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    score_threshold: Mapped[float] = mapped_column(Float, default=0.9, server_default="0.9")
    embedding_provider_name: Mapped[str] = mapped_column(String(255))
    embedding_model_name: Mapped[str] = mapped_column(String(255))


class AnnotationReplyJob(Base):
    """One enable or disable of annotation reply, as Dify reports it: waiting, processing, completed, error."""

    __tablename__ = "app_annotation_reply_jobs"

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="waiting", server_default="waiting")
    error_msg: Mapped[str] = mapped_column(Text, default="", server_default="")
    score_threshold: Mapped[float | None] = mapped_column(Float)
    embedding_provider_name: Mapped[str | None] = mapped_column(String(255))
    embedding_model_name: Mapped[str | None] = mapped_column(String(255))
