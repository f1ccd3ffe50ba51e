"""Service API (dataset key): the documents of a dataset of the key's workspace.

Paths are Dify's, with both spellings where Dify has both (``create_by_text`` and ``create-by-text``); pause and
resume use Dify's console paths. Create and update answer 200 with ``{document, batch}`` as Dify does.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, responses
from app.knowledge.documents import queries, services, uploads
from app.knowledge.documents.schemas import (
    DisplayStatus,
    DocumentAndBatch,
    DocumentDetailOut,
    DocumentIds,
    DocumentOut,
    DocumentSettings,
    DocumentTextCreate,
    DocumentTextUpdate,
    IndexingStatusOut,
)
from app.knowledge.documents.services import Source
from app.schemas import NO_NUL, Limit, Listing, Page, PageNumber, Success
from app.settings import Settings
from app.state import state_of
from app.tenancy.services import KeyContext
from db.models import Dataset, Document, UploadFile

_DOCUMENT = "/documents/{document_id:uuid}"


def _operation_id(handler: HTTPRouteHandler, method: str, components: list[Any]) -> str:
    """One operation id per path: Dify's two spellings of a path (``create_by_text``, ``create-by-text``) would
    otherwise get the same id from Litestar."""
    legacy = any(isinstance(c, str) and "_by_" in c for c in components)
    return "Documents" + handler.handler_name.title().replace("_", "") + ("Underscored" if legacy else "")


def _settings(request: Request[Any, Any, Any]) -> Settings:
    return state_of(request.app).settings


async def _answer(
    session: AsyncSession, dataset: Dataset, document: Document, upload: UploadFile | None = None
) -> DocumentAndBatch:
    (view,) = await queries.views(session, dataset, [document])
    if upload is not None:
        view.upload_file = upload
    return DocumentAndBatch(document=DocumentOut.of(view), batch=document.batch)


class DocumentController(Controller):
    path = "/v1/datasets/{dataset_id:uuid}"
    tags = ["service api: knowledge"]

    async def _create(
        self,
        session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        settings: Settings,
        source: Source,
        options: DocumentSettings,
        name: str | None = None,
    ) -> DocumentAndBatch:
        dataset, document, upload = await services.create_document(
            session, key.workspace_id, dataset_id, source, options, settings, name
        )
        return await _answer(session, dataset, document, upload)

    async def _update(
        self,
        session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        settings: Settings,
        source: Source | None,
        options: DocumentSettings,
        name: str | None,
    ) -> DocumentAndBatch:
        """The update of a document (same id, same batch): the update routes, and Dify's create with
        ``original_document_id``."""
        dataset, document = await services.update_document(
            session,
            key.workspace_id,
            dataset_id,
            document_id,
            options,
            settings,
            name=name,
            source=source,
        )
        return await _answer(session, dataset, document)

    @post(
        ["/document/create_by_text", "/document/create-by-text"],
        status_code=200,
        operation_id=_operation_id,
        responses=responses(400, 401, 404, 413),
    )
    async def create_by_text(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        data: DocumentTextCreate,
    ) -> DocumentAndBatch:
        """Create a document from text (stored as ``<name>.txt``) and start indexing it; with
        ``original_document_id``, replace that document's text instead (as ``update_by_text``)."""
        source, original = Source.of_text(data.name, data.text), data.original_document_id
        if original is not None:
            return await self._update(
                db_session, key, dataset_id, original, _settings(request), source, data, data.name
            )
        return await self._create(db_session, key, dataset_id, _settings(request), source, data, data.name)

    @post(
        ["/document/create_by_file", "/document/create-by-file"],
        status_code=200,
        operation_id=_operation_id,
        responses=responses(400, 401, 404, 413),
        request_max_body_size=None,  # read by uploads.read_form against UPLOAD_FILE_SIZE_LIMIT
        operation_class=uploads.UploadOperation,
    )
    async def create_by_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
    ) -> DocumentAndBatch:
        """Create a document from an uploaded file (multipart: ``file``, and ``data``, a JSON string of
        settings) and start indexing it; with ``original_document_id`` in ``data``, replace that document's file
        instead (as ``update_by_file``)."""
        settings = _settings(request)
        form = await uploads.read_form(request, settings.upload_file_size_limit)
        source = form.source(required=True)
        assert source is not None
        options = form.settings()
        if options.original_document_id is not None:
            original = options.original_document_id
            return await self._update(
                db_session, key, dataset_id, original, settings, source, options, options.name
            )
        return await self._create(db_session, key, dataset_id, settings, source, options, options.name)

    @post(
        [f"{_DOCUMENT}/update_by_text", f"{_DOCUMENT}/update-by-text"],
        status_code=200,
        operation_id=_operation_id,
        responses=responses(400, 401, 403, 404, 413),
    )
    async def update_by_text(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        data: DocumentTextUpdate,
    ) -> DocumentAndBatch:
        """Rename the document, replace its text, change its process rule; new text or a new rule indexes it
        again (the document keeps its batch)."""
        source = None
        if data.text is not None:
            if data.name is None:
                raise InvalidParam("name is required when text is provided.")
            source = Source.of_text(data.name, data.text)
        return await self._update(
            db_session, key, dataset_id, document_id, _settings(request), source, data, data.name
        )

    @post(
        [f"{_DOCUMENT}/update_by_file", f"{_DOCUMENT}/update-by-file"],
        status_code=200,
        operation_id=_operation_id,
        responses=responses(400, 401, 403, 404, 413),
        request_max_body_size=None,  # read by uploads.read_form against UPLOAD_FILE_SIZE_LIMIT
        operation_class=uploads.OptionalUploadOperation,
    )
    async def update_by_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
    ) -> DocumentAndBatch:
        """Replace the document's file and/or change its settings (multipart: optional ``file``, ``data``)."""
        return await self._update_by_file(request, db_session, key, dataset_id, document_id)

    @patch(
        _DOCUMENT,
        responses=responses(400, 401, 403, 404, 413),
        request_max_body_size=None,  # read by uploads.read_form against UPLOAD_FILE_SIZE_LIMIT
        operation_class=uploads.OptionalUploadOperation,
    )
    async def update_document(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
    ) -> DocumentAndBatch:
        """Dify's canonical file update (the update-by-file routes are its legacy aliases): same multipart body."""
        return await self._update_by_file(request, db_session, key, dataset_id, document_id)

    async def _update_by_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
    ) -> DocumentAndBatch:
        settings = _settings(request)
        form = await uploads.read_form(request, settings.upload_file_size_limit)
        source = form.source(required=False)
        options = form.settings()
        return await self._update(
            db_session, key, dataset_id, document_id, settings, source, options, options.name
        )

    @get("/documents/{batch:str}/indexing-status", responses=responses(401, 404))
    async def indexing_status(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        batch: Annotated[str, Parameter(max_length=64, pattern=NO_NUL)],
    ) -> Listing[IndexingStatusOut]:
        """Indexing progress of the documents created by one call (``batch``)."""
        rows = await queries.batch_status(db_session, key.workspace_id, dataset_id, batch)
        return Listing(data=[IndexingStatusOut.of(d, done, total) for d, done, total in rows])

    @get("/documents", responses=responses(400, 401, 404))
    async def list_documents(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        page: PageNumber = 1,
        limit: Limit = 20,
        keyword: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
        status: DisplayStatus | None = None,
    ) -> Page[DocumentOut]:
        """The dataset's documents, newest first; ``status`` filters by Dify's display status."""
        views, total = await queries.list_documents(
            db_session, key.workspace_id, dataset_id, page, limit, keyword, status
        )
        return Page.of([DocumentOut.of(v) for v in views], page, limit, total)

    @get(_DOCUMENT, responses=responses(400, 401, 404))
    async def get_document(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        metadata: Literal["all", "only", "without"] = "all",
    ) -> DocumentDetailOut:
        """The document in detail; ``metadata=only`` gives just its metadata, ``without`` everything else."""
        view = await queries.document_detail(db_session, key.workspace_id, dataset_id, document_id)
        return DocumentDetailOut.of(view, metadata)

    @delete(_DOCUMENT, responses=responses(401, 403, 404))
    async def delete_document(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, document_id: uuid.UUID
    ) -> None:
        """Delete the document with its segments, child chunks, vectors and file (403 when archived)."""
        await services.delete_document(db_session, key.workspace_id, dataset_id, document_id)

    @patch("/documents/status/{action:str}", responses=responses(400, 401, 404))
    async def set_status(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        action: Annotated[str, Parameter(description="enable, disable, archive or un_archive")],
        data: DocumentIds,
    ) -> Success:
        """Enable, disable, archive or un-archive documents (ids not in the dataset are skipped)."""
        await services.set_status(db_session, key.workspace_id, dataset_id, action, data.document_ids)
        return Success()

    @patch(f"{_DOCUMENT}/processing/pause", responses=responses(400, 401, 404))
    async def pause(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, document_id: uuid.UUID
    ) -> Success:
        """Pause indexing; finished segments stay finished."""
        await services.pause(db_session, key.workspace_id, dataset_id, document_id)
        return Success()

    @patch(f"{_DOCUMENT}/processing/resume", responses=responses(400, 401, 404))
    async def resume(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, document_id: uuid.UUID
    ) -> Success:
        """Resume a paused document where it stopped."""
        await services.resume(db_session, key.workspace_id, dataset_id, document_id)
        return Success()

    @post("/retry", status_code=200, responses=responses(400, 401, 404))
    async def retry(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, data: DocumentIds
    ) -> Success:
        """Index failed documents again from their source."""
        await services.retry(db_session, key.workspace_id, dataset_id, data.document_ids)
        return Success()
