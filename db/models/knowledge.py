"""Knowledge bases: datasets, uploaded files, documents, segments, child chunks, vectors, metadata and tags.

Vectors live in the rows they describe (``segments.embedding``, ``child_chunks.embedding``) as a dimensionless
``vector`` column tagged with an ``embedding_space_id``. Each embedding space (one model at one dimension) gets
its own partial HNSW index over ``embedding::vector(dim)`` (created by ``app/knowledge/embeddings/vectors.py``), so
vectors of different models never mix in one index and one table serves every model.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base

#: Full-text configuration of segments and child chunks (stemmed English; see README "Knowledge").
TEXT_SEARCH_CONFIG = "english"
_TSVECTOR = sa.Computed(f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, content)", persisted=True)

DOCUMENT_STATUSES = (
    "waiting",
    "parsing",
    "cleaning",
    "splitting",
    "indexing",
    "completed",
    "error",
    "paused",
)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="datasets_workspace_name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    permission: Mapped[str] = mapped_column(String(32), default="only_me", server_default="only_me")
    indexing_technique: Mapped[str | None] = mapped_column(String(32))
    #: The embedding model (``provider:model``) chosen when the dataset first indexes with high quality.
    embedding_model: Mapped[str | None] = mapped_column(String(255))
    embedding_model_provider: Mapped[str | None] = mapped_column(String(255))
    #: The dataset's default retrieval settings (Dify's ``retrieval_model``), JSON as the API gives it.
    retrieval_model: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    #: ``text_model`` or ``hierarchical_model``: fixed by the first document.
    doc_form: Mapped[str | None] = mapped_column(String(32))
    built_in_field_enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


embedding_spaces = sa.Table(
    "embedding_spaces",
    Base.metadata,
    sa.Column("id", sa.SmallInteger, sa.Identity(), primary_key=True),
    sa.Column("model", String(255), nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    UniqueConstraint("model", "dimension", name="embedding_spaces_model_dimension"),
    comment="One embedding model at one dimension; each has its own partial HNSW index per vector table.",
)


embedding_cache = sa.Table(
    "embedding_cache",
    Base.metadata,
    sa.Column("model", String(255), primary_key=True),
    sa.Column("content_hash", BYTEA, primary_key=True, comment="SHA-256 of the embedded text"),
    sa.Column("embedding", VECTOR(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    comment="Embeddings by (model, SHA-256 of the text): identical text is never embedded twice.",
)


#: Where an upload came from: a knowledge document, ``POST /v1/files/upload``, or a node of a run (Dify's tool files).
UPLOAD_SOURCES = ("datasets", "upload", "tool")


class UploadFile(Base):
    """A stored file: a knowledge document's file (text documents are stored as a .txt upload, like Dify), a
    file uploaded through the Service API for an app's runs, or a file a node of a run produced.

    App files (``source`` ``upload``/``tool``) belong to one app and one end user of it (``created_by``, the
    ``user`` string of the Service API): only that end user may reference them in a run.
    """

    __tablename__ = "upload_files"
    __table_args__ = (
        sa.CheckConstraint(f"source IN {UPLOAD_SOURCES!r}", name="source"),
        sa.CheckConstraint("(source = 'datasets') = (app_id IS NULL)", name="app_scope"),
        Index("upload_files_app", "app_id"),
        # What the retention job looks for: app files (never a knowledge document's), oldest first.
        Index(
            "upload_files_app_files_created", "created_at", postgresql_where=sa.text("source <> 'datasets'")
        ),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16), default="datasets", server_default="datasets")
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    #: the end user (the Service API's ``user``) who uploaded it, or whose run produced it
    created_by: Mapped[str | None] = mapped_column(String(255))
    #: the run whose node produced it (``source`` ``tool``)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_runs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    content_hash: Mapped[bytes] = mapped_column(BYTEA)
    content: Mapped[bytes] = mapped_column(BYTEA, deferred=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("dataset_id", "position", name="documents_dataset_position"),
        Index("documents_batch", "dataset_id", "batch"),
        sa.CheckConstraint(f"indexing_status IN {DOCUMENT_STATUSES!r}", name="indexing_status"),
    )

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(255))
    batch: Mapped[str] = mapped_column(String(64))
    data_source_type: Mapped[str] = mapped_column(String(32), default="upload_file")
    upload_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("upload_files.id", ondelete="SET NULL")
    )
    created_from: Mapped[str] = mapped_column(String(32), default="api")
    #: ``{mode, rules}`` as Dify's ``process_rule``; the splitter's input.
    process_rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    doc_form: Mapped[str] = mapped_column(String(32), default="text_model")
    doc_language: Mapped[str | None] = mapped_column(String(32))
    indexing_technique: Mapped[str] = mapped_column(String(32))
    indexing_status: Mapped[str] = mapped_column(String(16), default="waiting")
    #: Bumped by every (re)index; a job for an older generation finds nothing to do.
    indexing_generation: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(Text)
    processing_started_at: Mapped[datetime.datetime | None]
    parsing_completed_at: Mapped[datetime.datetime | None]
    cleaning_completed_at: Mapped[datetime.datetime | None]
    splitting_completed_at: Mapped[datetime.datetime | None]
    completed_at: Mapped[datetime.datetime | None]
    paused_at: Mapped[datetime.datetime | None]
    stopped_at: Mapped[datetime.datetime | None]
    is_paused: Mapped[bool] = mapped_column(default=False)
    indexing_latency: Mapped[float | None]
    word_count: Mapped[int] = mapped_column(default=0)
    tokens: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime.datetime | None]
    archived: Mapped[bool] = mapped_column(default=False)
    archived_at: Mapped[datetime.datetime | None]
    #: Metadata values by field name (``{"author": "Ada"}``); fields are declared in ``dataset_metadata``.
    doc_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (
        # Also what makes indexing idempotent: a retried split cannot add a second copy of a segment.
        UniqueConstraint("document_id", "position", name="segments_document_position"),
        Index("segments_dataset", "dataset_id"),
        Index("segments_search_vector", "search_vector", postgresql_using="gin"),
        Index("segments_keywords", "keywords", postgresql_using="gin"),
        sa.CheckConstraint("status IN ('waiting', 'indexing', 'completed', 'error')", name="status"),
    )

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int]
    content: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    word_count: Mapped[int] = mapped_column(default=0)
    tokens: Mapped[int] = mapped_column(default=0)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    content_hash: Mapped[bytes] = mapped_column(BYTEA)
    hit_count: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    error: Mapped[str | None] = mapped_column(Text)
    indexing_at: Mapped[datetime.datetime | None]
    completed_at: Mapped[datetime.datetime | None]
    search_vector: Mapped[Any] = mapped_column(TSVECTOR, _TSVECTOR)
    embedding_space_id: Mapped[int | None] = mapped_column(
        sa.SmallInteger, ForeignKey("embedding_spaces.id", ondelete="RESTRICT")
    )
    embedding: Mapped[Any] = mapped_column(VECTOR(), nullable=True, deferred=True)


class ChildChunk(Base):
    __tablename__ = "child_chunks"
    __table_args__ = (
        UniqueConstraint("segment_id", "position", name="child_chunks_segment_position"),
        Index("child_chunks_dataset", "dataset_id"),
        Index("child_chunks_document", "document_id"),
        Index("child_chunks_search_vector", "search_vector", postgresql_using="gin"),
        Index("child_chunks_keywords", "keywords", postgresql_using="gin"),
    )

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    position: Mapped[int]
    content: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int] = mapped_column(default=0)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    content_hash: Mapped[bytes] = mapped_column(BYTEA)
    #: ``automatic`` (from the splitter) or ``customized`` (added or edited through the API).
    type: Mapped[str] = mapped_column(String(16), default="automatic")
    search_vector: Mapped[Any] = mapped_column(TSVECTOR, _TSVECTOR)
    embedding_space_id: Mapped[int | None] = mapped_column(
        sa.SmallInteger, ForeignKey("embedding_spaces.id", ondelete="RESTRICT")
    )
    embedding: Mapped[Any] = mapped_column(VECTOR(), nullable=True, deferred=True)


class DatasetMetadata(Base):
    """A metadata field declared on a dataset; documents hold values by name in ``doc_metadata``."""

    __tablename__ = "dataset_metadata"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name", name="dataset_metadata_name"),
        sa.CheckConstraint("type IN ('string', 'number', 'time')", name="type"),
    )

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "type", "name", name="tags_workspace_type_name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16), default="knowledge")


tag_bindings = sa.Table(
    "tag_bindings",
    Base.metadata,
    sa.Column("tag_id", sa.Uuid, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("dataset_id", sa.Uuid, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Index("tag_bindings_dataset", "dataset_id"),
)
