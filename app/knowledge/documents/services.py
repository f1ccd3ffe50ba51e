"""Changing documents: create from a source, update, delete, enable/disable/archive, pause/resume/retry.

Services never commit: the request's transaction holds the document, its uploaded file and the ``index_document``
job together (``lifecycle.start_indexing`` defers the job in the same transaction), so a committed ``waiting``
document always has its job and a failed request leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.errors import InvalidParam
from app.knowledge.datasets.services import default_embedding_model, get_dataset
from app.knowledge.documents import queries
from app.knowledge.embeddings.providers import check_embedding_choice
from app.knowledge.errors import (
    ArchivedDocumentImmutable,
    DocumentAlreadyFinished,
    DocumentIndexing,
    EmptyFile,
    FileTooLarge,
    InvalidAction,
    UnsupportedFileType,
)
from app.knowledge.indexing import lifecycle
from app.knowledge.indexing.extract import SUPPORTED_EXTENSIONS, extension_of
from app.knowledge.indexing.splitting import ProcessRule
from app.schemas import unix
from app.settings import Settings
from db.models import Dataset, Document, UploadFile

if TYPE_CHECKING:
    from app.knowledge.documents.schemas import DocumentSettings, ProcessRuleIn

MB = 1024 * 1024
ACTIONS = ("enable", "disable", "archive", "un_archive")


def new_batch() -> str:
    """Dify's batch id: the time to the second and six random digits, shared by the documents of one call."""
    return time.strftime("%Y%m%d%H%M%S") + str(100000 + secrets.randbelow(900000))


@dataclass(frozen=True)
class Source:
    """A document's content: the file name it is parsed by (its extension picks the extractor) and the bytes."""

    filename: str
    data: bytes
    mime_type: str | None = None

    @classmethod
    def of_text(cls, name: str, text: str) -> Source:
        """A text document is stored as a ``<name>.txt`` upload, as in Dify."""
        return cls(f"{name[:250]}.txt", text.encode(), "text/plain")

    @property
    def document_name(self) -> str:
        """The file name as a document name (at most 255 characters, keeping the extension)."""
        if len(self.filename) <= 255:
            return self.filename
        stem, _, extension = self.filename.rpartition(".")
        return f"{stem[: 254 - len(extension)]}.{extension}"


def check_source(source: Source, limit_mb: int) -> str:
    """The source's extension, or the reason it cannot become a document."""
    extension = extension_of(source.filename)
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(f".{e}" for e in sorted(SUPPORTED_EXTENSIONS))
        raise UnsupportedFileType(f"File type not allowed; supported types: {supported}.")
    if not source.data:
        raise EmptyFile()
    if len(source.data) > limit_mb * MB:
        raise FileTooLarge(f"File size exceeded: at most {limit_mb} MB.")
    return extension


async def _store_upload(
    session: AsyncSession, workspace_id: uuid.UUID, source: Source, limit_mb: int
) -> UploadFile:
    extension = check_source(source, limit_mb)
    mime_type = source.mime_type or mimetypes.guess_type(f"x.{extension}")[0] or "application/octet-stream"
    upload = UploadFile(
        workspace_id=workspace_id,
        name=source.document_name,
        extension=extension,
        mime_type=mime_type[:255],
        size=len(source.data),
        content_hash=hashlib.sha256(source.data).digest(),
        content=source.data,
    )
    session.add(upload)
    await session.flush()
    return upload


def built_in_values(document: Document) -> dict[str, Any]:
    """The built-in metadata values of a document, as ``metadata/services.py`` writes them when a dataset
    enables its built-in fields (Dify's ``BuiltInField``); Sluice has no accounts, so no uploader."""
    return {
        "document_name": document.name,
        "uploader": None,
        "upload_date": unix(document.created_at),
        "last_update_date": unix(document.updated_at),
        "source": "file_upload",
    }


def _json_value(value: Any, name: str) -> Any:
    """A JSON value PostgreSQL's ``jsonb`` can store (it refuses ``\\u0000`` in strings)."""
    if b"\\u0000" in msgspec.json.encode(value):
        raise InvalidParam(f"{name}: must not contain NUL characters.")
    return value


def _process_rule(rule: ProcessRuleIn, doc_form: str) -> dict[str, Any]:
    """The rule as given, once ``splitting.ProcessRule.from_api`` accepts it and it suits the ``doc_form``."""
    stored: dict[str, Any] = {"mode": rule.mode}
    if rule.rules is not None:
        stored["rules"] = _json_value(rule.rules, "process_rule.rules")
    try:
        parsed = ProcessRule.from_api(rule.mode, rule.rules)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidParam(f"process_rule: {exc}") from None
    if (parsed.mode == "hierarchical") != (doc_form == "hierarchical_model"):
        raise InvalidParam(
            "process_rule: the hierarchical mode goes with doc_form hierarchical_model, and only with it."
        )
    return stored


def _default_process_rule(doc_form: str) -> dict[str, Any]:
    mode = "hierarchical" if doc_form == "hierarchical_model" else "automatic"
    return ProcessRule.from_api(mode, {} if mode == "hierarchical" else None).to_api()


def _doc_form(requested: str | None, current: str | None) -> str:
    doc_form = requested or current or "text_model"
    if doc_form == "qa_model":
        raise InvalidParam("qa_model is not supported.")
    if current and doc_form != current:
        raise InvalidParam("doc_form is different from the dataset doc_form.")
    return doc_form


def _settle_dataset(dataset: Dataset, options: DocumentSettings, doc_form: str, config: Settings) -> None:
    """What a dataset's first document decides: indexing technique, embedding model, retrieval model, doc_form."""
    if not dataset.indexing_technique:
        if not options.indexing_technique:
            raise InvalidParam("indexing_technique is required.")
        dataset.indexing_technique = options.indexing_technique
    if dataset.indexing_technique == "high_quality" and not dataset.embedding_model:
        if options.embedding_model and options.embedding_model_provider:
            check_embedding_choice(config, options.embedding_model_provider, options.embedding_model)
            dataset.embedding_model_provider = options.embedding_model_provider
            dataset.embedding_model = options.embedding_model
        else:
            dataset.embedding_model_provider, dataset.embedding_model = default_embedding_model(config)
    if dataset.retrieval_model is None and options.retrieval_model is not None:
        dataset.retrieval_model = _json_value(msgspec.to_builtins(options.retrieval_model), "retrieval_model")
    dataset.doc_form = doc_form


async def create_document(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    source: Source,
    options: DocumentSettings,
    config: Settings,
    name: str | None = None,
) -> tuple[Dataset, Document, UploadFile]:
    """A new ``waiting`` document at the end of the dataset, its upload, and its indexing job."""
    # FOR UPDATE serialises document creation per dataset: the next position, and the first document's choice
    # of indexing technique, embedding model and doc_form, are read and written by one request at a time.
    dataset = await get_dataset(session, workspace_id, dataset_id, lock="update")
    doc_form = _doc_form(options.doc_form, dataset.doc_form)
    if options.process_rule is not None:
        process_rule = _process_rule(options.process_rule, doc_form)
    else:
        latest = await queries.latest_process_rule(session, dataset.id)
        process_rule = latest or _default_process_rule(doc_form)
    _settle_dataset(dataset, options, doc_form, config)
    upload = await _store_upload(session, workspace_id, source, config.upload_file_size_limit)
    last = await session.scalar(select(func.max(Document.position)).where(Document.dataset_id == dataset.id))
    document = Document(
        dataset_id=dataset.id,
        position=(last or 0) + 1,
        name=name or source.document_name,
        batch=new_batch(),
        data_source_type="upload_file",
        upload_file_id=upload.id,
        created_from="api",
        process_rule=process_rule,
        doc_form=doc_form,
        doc_language=options.doc_language or "English",
        indexing_technique=dataset.indexing_technique,
    )
    session.add(document)
    await session.flush()
    if dataset.built_in_field_enabled:
        document.doc_metadata = {**document.doc_metadata, **built_in_values(document)}
    await lifecycle.start_indexing(session, document, new=True)
    return dataset, document, upload


async def update_document(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    document_id: uuid.UUID,
    options: DocumentSettings,
    config: Settings,
    *,
    name: str | None = None,
    source: Source | None = None,
) -> tuple[Dataset, Document]:
    """Rename the document, replace its source, change its process rule; a new source or rule indexes it again.

    Like Dify, a document being indexed cannot be updated (400 ``document_indexing``), nor an archived one (403).
    """
    dataset, document = await queries.get_document(session, workspace_id, dataset_id, document_id)
    if document.archived:
        raise ArchivedDocumentImmutable()
    if document.is_paused or document.indexing_status in lifecycle.ACTIVE_STATUSES:
        raise DocumentIndexing()
    doc_form = _doc_form(options.doc_form, document.doc_form)
    reindex = False
    if options.process_rule is not None:
        document.process_rule = _process_rule(options.process_rule, doc_form)
        reindex = True
    if options.doc_language:
        document.doc_language = options.doc_language
    replaced: uuid.UUID | None = None
    if source is not None:
        upload = await _store_upload(session, workspace_id, source, config.upload_file_size_limit)
        replaced, document.upload_file_id = document.upload_file_id, upload.id
        document.name = source.document_name
        reindex = True
    if name:
        document.name = name
    await session.flush()
    if dataset.built_in_field_enabled:
        document.doc_metadata = {**document.doc_metadata, **built_in_values(document)}
    if replaced is not None:
        await session.execute(delete(UploadFile).where(UploadFile.id == replaced))
    if reindex:
        await lifecycle.start_indexing(session, document)
    await session.flush()
    return dataset, document


async def delete_document(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID
) -> None:
    """Delete the document and its upload; its segments, child chunks and vectors go with it (FK cascade).

    A job still indexing it finds the document gone and stops.
    """
    _, document = await queries.get_document(session, workspace_id, dataset_id, document_id)
    if document.archived:
        raise ArchivedDocumentImmutable()
    file_id = document.upload_file_id
    await session.delete(document)
    await session.flush()
    if file_id is not None:
        await session.execute(delete(UploadFile).where(UploadFile.id == file_id))


async def set_status(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    action: str,
    document_ids: Sequence[uuid.UUID],
) -> None:
    """Dify's batch ``enable | disable | archive | un_archive``. Ids not in the dataset are skipped (as in Dify);
    a document that is not completed cannot be disabled, and then nothing changes."""
    if action not in ACTIONS:
        raise InvalidAction(f"Invalid action {action!r}: use one of {', '.join(ACTIONS)}.")
    dataset = await get_dataset(session, workspace_id, dataset_id)
    if not document_ids:
        return
    documents = await session.scalars(
        select(Document)
        .where(Document.dataset_id == dataset.id, Document.id.in_(document_ids))
        .order_by(Document.position)
    )
    now = utcnow()
    for document in documents:
        if action == "enable" and not document.enabled:
            document.enabled, document.disabled_at = True, None
        elif action == "disable" and document.enabled:
            if document.indexing_status != "completed":
                raise DocumentIndexing(f"Document {document.name!r} is not completed.")
            document.enabled, document.disabled_at = False, now
        elif action == "archive" and not document.archived:
            document.archived, document.archived_at = True, now
        elif action == "un_archive" and document.archived:
            document.archived, document.archived_at = False, None
    await session.flush()


async def pause(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID
) -> None:
    _, document = await queries.get_document(session, workspace_id, dataset_id, document_id)
    await lifecycle.pause_indexing(session, document)


async def resume(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID
) -> None:
    _, document = await queries.get_document(session, workspace_id, dataset_id, document_id)
    await lifecycle.resume_indexing(session, document)


async def retry(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, document_ids: Sequence[uuid.UUID]
) -> None:
    """Index failed (or stopped, or paused) documents again from their source. Unknown ids are skipped, as in
    Dify; a completed document is refused (``document_already_finished``), one still running too."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    if not document_ids:
        return
    documents = await session.scalars(
        select(Document)
        .where(Document.dataset_id == dataset.id, Document.id.in_(document_ids))
        .order_by(Document.position)
    )
    for document in documents:
        if document.indexing_status == "completed":
            raise DocumentAlreadyFinished()
        await lifecycle.retry_indexing(session, document)
