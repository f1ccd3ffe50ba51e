"""Document bodies, shaped like Dify's Service API (``fields/document_fields.py``); timestamps in Unix seconds.

Sluice has no user accounts: ``created_by`` names the workspace (``app.knowledge.accounts``), ``disabled_by`` is
null. ``doc_metadata`` values are strings in the list, create and update bodies (Dify marshals them with
``fields.String``) and keep their JSON type in the detail (Dify returns them unmarshalled there).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from app.knowledge.documents.queries import DocumentView, display_status
from app.knowledge.retrieval.model import RetrievalModel
from app.schemas import text_field, unix
from db.models import Document

DocForm = Literal["text_model", "hierarchical_model", "qa_model"]
ModelName = Annotated[str, text_field(1, 255)]
#: A document name: some visible character, no NUL.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")]
#: Dify's display statuses; ``active`` and ``enabled`` are Dify's aliases of ``available``.
DisplayStatus = Literal[
    "queuing", "indexing", "paused", "error", "available", "disabled", "archived", "active", "enabled"
]
MetadataScalar = str | int | float | bool | None


class ProcessRuleIn(msgspec.Struct, kw_only=True):
    """Dify's ``process_rule``; ``rules`` is checked by ``splitting.ProcessRule.from_api``."""

    mode: Literal["automatic", "custom", "hierarchical"]
    rules: dict[str, Any] | None = None


class DocumentSettings(msgspec.Struct, kw_only=True):
    """How to index a document; the fields shared by the text and the file endpoints.

    A dataset's first document fixes ``indexing_technique`` (when the dataset has none), its embedding model and
    its ``doc_form``. Without ``process_rule`` a document gets the rule of the dataset's latest document (as
    Dify's ``dataset.latest_process_rule``), or ``{"mode": "automatic"}``.
    """

    indexing_technique: Literal["high_quality", "economy"] | None = None
    doc_form: DocForm | None = None
    doc_language: Annotated[str, text_field(0, 32)] | None = None
    process_rule: ProcessRuleIn | None = None
    retrieval_model: RetrievalModel | None = None
    embedding_model: ModelName | None = None
    embedding_model_provider: ModelName | None = None


class DocumentTextCreate(DocumentSettings, kw_only=True):
    name: Name
    text: Annotated[str, text_field(1)]
    #: As in Dify (and the Dify SDK's ``original_document_id``): replace that document instead of adding one.
    original_document_id: uuid.UUID | None = None


class DocumentTextUpdate(DocumentSettings, kw_only=True):
    """Any of name, text and process rule; new text or a new process rule indexes the document again."""

    name: Name | None = None
    text: Annotated[str, text_field(1)] | None = None


class DocumentFileSettings(DocumentSettings, kw_only=True):
    """The ``data`` form field of the file endpoints, a JSON string. ``name`` (optional) names the document;
    otherwise it is named after the file, as in Dify."""

    name: Name | None = None
    #: Create only, as in Dify (and the Dify SDK's ``original_document_id``): replace that document's file and
    #: index it again instead of adding a document. The update endpoints take the document from the path.
    original_document_id: uuid.UUID | None = None


class DocumentIds(msgspec.Struct):
    document_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )


class MetadataValue(msgspec.Struct):
    id: str
    name: str
    type: str
    value: MetadataScalar


class DataSourceInfo(msgspec.Struct, omit_defaults=True):
    upload_file_id: uuid.UUID | None = None


class UploadFileDetail(msgspec.Struct):
    id: uuid.UUID
    name: str
    size: int
    extension: str
    mime_type: str
    created_by: str
    created_at: int


class DataSourceDetail(msgspec.Struct, omit_defaults=True):
    upload_file: UploadFileDetail | None = None


class DocumentOut(msgspec.Struct):
    """A document as Dify's ``DocumentResponse`` (create, update, list)."""

    id: uuid.UUID
    position: int
    data_source_type: str
    data_source_info: DataSourceInfo
    data_source_detail_dict: DataSourceDetail
    dataset_process_rule_id: str | None
    name: str
    created_from: str
    created_by: str
    created_at: int
    tokens: int
    indexing_status: str
    error: str | None
    enabled: bool
    disabled_at: int | None
    disabled_by: str | None
    archived: bool
    display_status: str | None
    word_count: int
    hit_count: int
    doc_form: str
    doc_metadata: list[MetadataValue]
    summary_index_status: str | None
    need_summary: bool

    @classmethod
    def of(cls, view: DocumentView) -> DocumentOut:
        d = view.document
        return cls(
            id=d.id,
            position=d.position,
            data_source_type=d.data_source_type,
            data_source_info=DataSourceInfo(upload_file_id=d.upload_file_id),
            data_source_detail_dict=_source_detail(view),
            dataset_process_rule_id=None,
            name=d.name,
            created_from=d.created_from,
            created_by=view.creator,
            created_at=unix(d.created_at) or 0,
            tokens=d.tokens,
            indexing_status=d.indexing_status,
            error=d.error,
            enabled=d.enabled,
            disabled_at=unix(d.disabled_at),
            disabled_by=None,
            archived=d.archived,
            display_status=display_status(d),
            word_count=d.word_count,
            hit_count=view.hit_count,
            doc_form=d.doc_form,
            doc_metadata=[_as_text(v) for v in metadata_values(view)],
            summary_index_status=None,
            need_summary=False,
        )


class DocumentAndBatch(msgspec.Struct):
    document: DocumentOut
    batch: str


class DocumentDetailOut(msgspec.Struct):
    """Dify's document detail. ``?metadata=only`` keeps ``id``, ``doc_type`` and ``doc_metadata``;
    ``?metadata=without`` drops ``doc_type`` and ``doc_metadata``."""

    id: uuid.UUID
    position: int | UnsetType = UNSET
    data_source_type: str | UnsetType = UNSET
    data_source_info: DataSourceInfo | UnsetType = UNSET
    dataset_process_rule_id: str | UnsetType | None = UNSET
    dataset_process_rule: dict[str, Any] | UnsetType = UNSET
    document_process_rule: dict[str, Any] | UnsetType = UNSET
    name: str | UnsetType = UNSET
    created_from: str | UnsetType = UNSET
    created_by: str | UnsetType | None = UNSET
    created_at: int | UnsetType = UNSET
    tokens: int | UnsetType = UNSET
    indexing_status: str | UnsetType = UNSET
    completed_at: int | UnsetType | None = UNSET
    updated_at: int | UnsetType | None = UNSET
    indexing_latency: float | UnsetType | None = UNSET
    error: str | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
    disabled_at: int | UnsetType | None = UNSET
    disabled_by: str | UnsetType | None = UNSET
    archived: bool | UnsetType = UNSET
    doc_type: str | UnsetType | None = UNSET
    doc_metadata: list[MetadataValue] | UnsetType = UNSET
    segment_count: int | UnsetType = UNSET
    average_segment_length: int | UnsetType = UNSET
    hit_count: int | UnsetType = UNSET
    display_status: str | UnsetType | None = UNSET
    doc_form: str | UnsetType = UNSET
    doc_language: str | UnsetType | None = UNSET
    summary_index_status: str | UnsetType | None = UNSET
    need_summary: bool | UnsetType = UNSET

    @classmethod
    def of(cls, view: DocumentView, metadata: Literal["all", "only", "without"]) -> DocumentDetailOut:
        d = view.document
        if metadata == "only":
            return cls(id=d.id, doc_type=None, doc_metadata=metadata_values(view))
        detail = cls(
            id=d.id,
            position=d.position,
            data_source_type=d.data_source_type,
            data_source_info=DataSourceInfo(upload_file_id=d.upload_file_id),
            dataset_process_rule_id=None,
            dataset_process_rule=view.dataset_process_rule,
            document_process_rule=view.document_process_rule,
            name=d.name,
            created_from=d.created_from,
            created_by=view.creator,
            created_at=unix(d.created_at) or 0,
            tokens=d.tokens,
            indexing_status=d.indexing_status,
            completed_at=unix(d.completed_at),
            updated_at=unix(d.updated_at),
            indexing_latency=d.indexing_latency,
            error=d.error,
            enabled=d.enabled,
            disabled_at=unix(d.disabled_at),
            disabled_by=None,
            archived=d.archived,
            segment_count=view.segment_count,
            average_segment_length=d.word_count // view.segment_count if view.segment_count else 0,
            hit_count=view.hit_count,
            display_status=display_status(d),
            doc_form=d.doc_form,
            doc_language=d.doc_language,
            summary_index_status=None,
            need_summary=False,
        )
        if metadata == "all":
            detail.doc_type = None
            detail.doc_metadata = metadata_values(view)
        return detail


class IndexingStatusOut(msgspec.Struct):
    id: uuid.UUID
    indexing_status: str
    processing_started_at: int | None
    parsing_completed_at: int | None
    cleaning_completed_at: int | None
    splitting_completed_at: int | None
    completed_at: int | None
    paused_at: int | None
    error: str | None
    stopped_at: int | None
    completed_segments: int
    total_segments: int

    @classmethod
    def of(cls, d: Document, completed_segments: int, total_segments: int) -> IndexingStatusOut:
        return cls(
            id=d.id,
            indexing_status="paused" if d.is_paused else d.indexing_status,
            processing_started_at=unix(d.processing_started_at),
            parsing_completed_at=unix(d.parsing_completed_at),
            cleaning_completed_at=unix(d.cleaning_completed_at),
            splitting_completed_at=unix(d.splitting_completed_at),
            completed_at=unix(d.completed_at),
            paused_at=unix(d.paused_at),
            error=d.error,
            stopped_at=unix(d.stopped_at),
            completed_segments=completed_segments,
            total_segments=total_segments,
        )


def _source_detail(view: DocumentView) -> DataSourceDetail:
    f = view.upload_file
    if f is None:
        return DataSourceDetail()
    return DataSourceDetail(
        upload_file=UploadFileDetail(
            id=f.id,
            name=f.name,
            size=f.size,
            extension=f.extension,
            mime_type=f.mime_type,
            created_by=view.creator,
            created_at=unix(f.created_at) or 0,
        )
    )


def _scalar(value: Any) -> MetadataScalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return msgspec.json.encode(value).decode()


def _as_text(item: MetadataValue) -> MetadataValue:
    """A metadata value as Dify's ``fields.String`` marshals it (``str()`` of the value; null stays null)."""
    if item.value is None or isinstance(item.value, str):
        return item
    return MetadataValue(id=item.id, name=item.name, type=item.type, value=str(item.value))


def metadata_values(view: DocumentView) -> list[MetadataValue]:
    """Dify's ``doc_metadata`` details: the dataset's declared fields the document has a value for, then the
    built-in fields when the dataset has them enabled."""
    d = view.document
    values = d.doc_metadata or {}
    out = [
        MetadataValue(id=str(f.id), name=f.name, type=f.type, value=_scalar(values[f.name]))
        for f in view.metadata_fields
        if f.name in values
    ]
    if view.built_in_fields:
        out += [
            MetadataValue(id="built-in", name="document_name", type="string", value=d.name),
            MetadataValue(id="built-in", name="uploader", type="string", value=None),
            # Dify: str(created_at.timestamp()), a string with the fraction, in every body
            MetadataValue(
                id="built-in", name="upload_date", type="time", value=str(d.created_at.timestamp())
            ),
            MetadataValue(
                id="built-in", name="last_update_date", type="time", value=str(d.updated_at.timestamp())
            ),
            MetadataValue(id="built-in", name="source", type="string", value="file_upload"),
        ]
    return out
