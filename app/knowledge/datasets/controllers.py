"""Service API (dataset key): datasets of the key's workspace."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.knowledge.datasets import services
from app.knowledge.datasets.schemas import DatasetCreate, DatasetOut, DatasetUpdate
from app.schemas import NO_NUL, Limit, Page, PageNumber
from app.settings import Settings
from app.tenancy.services import KeyContext
from db.models import Dataset


async def _out(session: AsyncSession, dataset: Dataset) -> DatasetOut:
    """One dataset in Dify's shape (its counts, tags and metadata fields read for it)."""
    return DatasetOut.of((await services.dataset_views(session, [dataset]))[0])


class DatasetController(Controller):
    path = "/v1/datasets"
    tags = ["service api: knowledge"]

    @post("/", status_code=200, responses=responses(400, 401, 409))
    async def create_dataset(
        self,
        settings: Settings,
        db_session: AsyncSession,
        key: KeyContext,
        data: DatasetCreate,
    ) -> DatasetOut:
        dataset = await services.create_dataset(
            db_session,
            key.workspace_id,
            data.name,
            data.description,
            data.permission,
            data.indexing_technique,
            embedding_model=data.embedding_model,
            embedding_model_provider=data.embedding_model_provider,
            retrieval_model=msgspec.to_builtins(data.retrieval_model) if data.retrieval_model else None,
            settings=settings,
        )
        return await _out(db_session, dataset)

    @get("/", responses=responses(400, 401))
    async def list_datasets(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        page: PageNumber = 1,
        limit: Limit = 20,
        keyword: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
    ) -> Page[DatasetOut]:
        datasets, total = await services.list_datasets(db_session, key.workspace_id, page, limit, keyword)
        views = await services.dataset_views(db_session, datasets)
        return Page.of([DatasetOut.of(v) for v in views], page, limit, total)

    @get("/{dataset_id:uuid}", responses=responses(401, 404))
    async def get_dataset(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID
    ) -> DatasetOut:
        return await _out(db_session, await services.get_dataset(db_session, key.workspace_id, dataset_id))

    @patch("/{dataset_id:uuid}", responses=responses(400, 401, 404))
    async def update_dataset(
        self,
        settings: Settings,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        data: DatasetUpdate,
    ) -> DatasetOut:
        """Change the fields given. Once the dataset has documents, its indexing technique and embedding model
        stay as they are (400)."""
        dataset = await services.update_dataset(db_session, key.workspace_id, dataset_id, data, settings)
        return await _out(db_session, dataset)

    @delete("/{dataset_id:uuid}", responses=responses(401, 404))
    async def delete_dataset(self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID) -> None:
        await services.delete_dataset(db_session, key.workspace_id, dataset_id)
