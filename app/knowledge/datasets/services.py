"""Dataset operations, always scoped to the calling key's workspace. Services never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from sqlalchemy import Select, delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.knowledge.embeddings.embedders import E5_MODEL
from app.knowledge.embeddings.providers import check_embedding_choice
from app.knowledge.errors import DatasetNameDuplicate, DatasetNameTaken
from app.settings import Settings
from db.models import Dataset, DatasetMetadata, Document, Tag, UploadFile, Workspace, tag_bindings

if TYPE_CHECKING:
    from app.knowledge.datasets.schemas import DatasetUpdate


def default_embedding_model(settings: Settings | None) -> tuple[str, str | None]:
    """``(provider, model)`` recorded on a high-quality dataset that names none: the configured default
    (``EMBEDDING_PROVIDER``/``EMBEDDING_MODEL``; the local provider's own default model when none is set)."""
    settings = settings or Settings()
    model = settings.embedding_model or (E5_MODEL if settings.embedding_provider == "local" else None)
    return settings.embedding_provider, model


@dataclass
class DatasetView:
    """A dataset with the figures Dify's dataset shape shows (computed for a whole page at once)."""

    dataset: Dataset
    document_count: int = 0
    word_count: int = 0
    available_document_count: int = 0
    tags: list[Tag] = field(default_factory=list)
    metadata_fields: list[DatasetMetadata] = field(default_factory=list)
    #: Dify's ``author_name``: the name of the workspace (standing in for its owner account, see app.knowledge.accounts).
    author_name: str = ""


async def create_dataset(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    description: str = "",
    permission: str = "only_me",
    indexing_technique: str | None = None,
    *,
    embedding_model: str | None = None,
    embedding_model_provider: str | None = None,
    retrieval_model: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> Dataset:
    """A new empty dataset. A high-quality one records its embedding model now (the default when none is named)."""
    dataset = Dataset(
        workspace_id=workspace_id,
        name=name.strip(),
        description=description,
        permission=permission,
        indexing_technique=indexing_technique,
        retrieval_model=retrieval_model,
    )
    if indexing_technique == "high_quality":
        if embedding_model and embedding_model_provider:
            check_embedding_choice(settings or Settings(), embedding_model_provider, embedding_model)
            dataset.embedding_model_provider, dataset.embedding_model = (
                embedding_model_provider,
                embedding_model,
            )
        else:
            dataset.embedding_model_provider, dataset.embedding_model = default_embedding_model(settings)
    try:
        async with session.begin_nested():
            session.add(dataset)
            await session.flush()
    except IntegrityError:
        raise DatasetNameDuplicate() from None
    return dataset


async def list_datasets(
    session: AsyncSession, workspace_id: uuid.UUID, page: int, limit: int, keyword: str | None = None
) -> tuple[list[Dataset], int]:
    query = select(Dataset).where(Dataset.workspace_id == workspace_id)
    if keyword:
        query = query.where(Dataset.name.icontains(keyword, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(Dataset.created_at.desc()).offset((page - 1) * limit).limit(limit)
    )
    return list(rows.scalars()), total


#: A row lock taken with a read: ``"update"`` is ``FOR UPDATE``, ``"no_key_update"`` ``FOR NO KEY UPDATE`` (does
#: not wait for, nor block, the ``FOR KEY SHARE`` of other transactions' foreign-key checks), ``"share"``
#: ``FOR SHARE``. ``None`` reads without a lock.
RowLock = Literal["update", "no_key_update", "share"]

Row = TypeVar("Row")


def locked(query: Select[Row], lock: RowLock | None) -> Select[Row]:
    """``query`` with the row lock ``lock`` (unchanged for ``None``)."""
    if lock == "update":
        return query.with_for_update()
    if lock == "no_key_update":
        return query.with_for_update(key_share=True)
    if lock == "share":
        return query.with_for_update(read=True)
    return query


async def get_dataset(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, *, lock: RowLock | None = None
) -> Dataset:
    """A dataset of this workspace, its row locked with ``lock`` for the transaction (see :data:`RowLock`).
    Another workspace's dataset is indistinguishable from a missing one."""
    query = select(Dataset).where(Dataset.id == dataset_id, Dataset.workspace_id == workspace_id)
    dataset = await session.scalar(locked(query, lock))
    if dataset is None:
        raise NotFound("Dataset not found.")
    return dataset


async def delete_dataset(session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    """Delete the dataset with everything in it (FK cascade), and the uploaded files of its documents.

    Locks before deleting: the dataset row ``FOR NO KEY UPDATE`` (keeps out new documents and metadata changes,
    yet not the ``FOR KEY SHARE`` of an indexing transaction's foreign-key checks), then its documents ``FOR
    UPDATE``, which waits for any transaction holding a document row (the indexing pipeline and segment edits
    lock it before they write segments). Without this the cascade could lock a document's segments, or the
    dataset row, that such a transaction needs while it waits for the document row: a deadlock (a 500 here, or
    a failed indexing job). The indexing job's next transaction finds the document gone and stops.
    """
    dataset = await get_dataset(session, workspace_id, dataset_id, lock="no_key_update")
    await session.execute(
        select(Document.id).where(Document.dataset_id == dataset.id).order_by(Document.id).with_for_update()
    )
    files = select(Document.upload_file_id).where(Document.dataset_id == dataset.id).scalar_subquery()
    file_ids = list(await session.scalars(select(UploadFile.id).where(UploadFile.id.in_(files))))
    await session.delete(dataset)
    await session.flush()
    if file_ids:
        await session.execute(delete(UploadFile).where(UploadFile.id.in_(file_ids)))


async def update_dataset(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    changes: DatasetUpdate,
    settings: Settings | None = None,
) -> Dataset:
    """Dify's dataset PATCH: only the fields given change. Once a dataset has documents its indexing technique
    and embedding model are fixed (its vectors were made with them)."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    has_documents = bool(await session.scalar(select(exists().where(Document.dataset_id == dataset.id))))
    if changes.description is not None:
        dataset.description = changes.description
    if changes.permission is not None:
        dataset.permission = changes.permission
    if changes.retrieval_model is not None:
        dataset.retrieval_model = msgspec.to_builtins(changes.retrieval_model)
    technique = changes.indexing_technique or dataset.indexing_technique
    if technique != dataset.indexing_technique:
        if has_documents:
            raise InvalidParam("indexing_technique cannot be changed once the dataset has documents.")
        dataset.indexing_technique = technique
    if changes.embedding_model or changes.embedding_model_provider:
        chosen = (
            changes.embedding_model_provider or dataset.embedding_model_provider,
            changes.embedding_model or dataset.embedding_model,
        )
        if chosen != (dataset.embedding_model_provider, dataset.embedding_model):
            if has_documents:
                raise InvalidParam("The embedding model cannot be changed once the dataset has documents.")
            check_embedding_choice(settings or Settings(), chosen[0] or "", chosen[1] or "")
            dataset.embedding_model_provider, dataset.embedding_model = chosen
    if dataset.indexing_technique == "high_quality" and not dataset.embedding_model:
        dataset.embedding_model_provider, dataset.embedding_model = default_embedding_model(settings)
    if changes.name is not None:
        dataset.name = changes.name.strip()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise DatasetNameTaken() from None
    return dataset


async def dataset_views(session: AsyncSession, datasets: Sequence[Dataset]) -> list[DatasetView]:
    """Views of some datasets: document counts and words in one grouped query, tags, metadata fields and the
    workspaces' names in one query each, whatever the number of datasets."""
    ids = [d.id for d in datasets]
    if not ids:
        return []
    available = (
        (Document.indexing_status == "completed") & Document.enabled.is_(True) & Document.archived.is_(False)
    )
    counts = {
        row[0]: row[1:]
        for row in (
            await session.execute(
                select(
                    Document.dataset_id,
                    func.count(),
                    func.coalesce(func.sum(Document.word_count), 0),
                    func.count().filter(available),
                )
                .where(Document.dataset_id.in_(ids))
                .group_by(Document.dataset_id)
            )
        )
    }
    tags: dict[uuid.UUID, list[Tag]] = {}
    for dataset_id, tag in await session.execute(
        select(tag_bindings.c.dataset_id, Tag)
        .join(Tag, Tag.id == tag_bindings.c.tag_id)
        .where(tag_bindings.c.dataset_id.in_(ids))
        .order_by(Tag.name)
    ):
        tags.setdefault(dataset_id, []).append(tag)
    fields: dict[uuid.UUID, list[DatasetMetadata]] = {}
    for metadata_field in await session.scalars(
        select(DatasetMetadata).where(DatasetMetadata.dataset_id.in_(ids)).order_by(DatasetMetadata.name)
    ):
        fields.setdefault(metadata_field.dataset_id, []).append(metadata_field)
    owners = select(Workspace.id, Workspace.name).where(Workspace.id.in_({d.workspace_id for d in datasets}))
    names = {workspace_id: name for workspace_id, name in await session.execute(owners)}
    views = []
    for d in datasets:
        document_count, word_count, available_count = counts.get(d.id, (0, 0, 0))
        views.append(
            DatasetView(
                dataset=d,
                document_count=int(document_count),
                word_count=int(word_count),
                available_document_count=int(available_count),
                tags=tags.get(d.id, []),
                metadata_fields=fields.get(d.id, []),
                author_name=names.get(d.workspace_id, ""),
            )
        )
    return views
