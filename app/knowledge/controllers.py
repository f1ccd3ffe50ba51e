"""Service API (dataset key): datasets of the key's workspace."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import dataset_key_guard, provide_key
from app.errors import responses
from app.knowledge import services
from app.knowledge.schemas import DatasetCreate, DatasetOut
from app.schemas import NO_NUL, Limit, Page, PageNumber
from app.tenancy.services import KeyContext


class DatasetController(Controller):
    path = "/v1/datasets"
    guards = [dataset_key_guard]
    dependencies = {"key": Provide(provide_key, sync_to_thread=False)}
    tags = ["service api: knowledge"]
    security = [{"ApiKey": []}]

    @post("/", responses=responses(400, 401, 409))
    async def create_dataset(
        self, db_session: AsyncSession, key: KeyContext, data: DatasetCreate
    ) -> DatasetOut:
        dataset = await services.create_dataset(
            db_session,
            key.workspace_id,
            data.name,
            data.description,
            data.permission,
            data.indexing_technique,
        )
        return DatasetOut.of(dataset)

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
        return Page.of([DatasetOut.of(d) for d in datasets], page, limit, total)

    @get("/{dataset_id:uuid}", responses=responses(401, 404))
    async def get_dataset(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID
    ) -> DatasetOut:
        return DatasetOut.of(await services.get_dataset(db_session, key.workspace_id, dataset_id))

    @delete("/{dataset_id:uuid}", responses=responses(401, 404))
    async def delete_dataset(self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID) -> None:
        await services.delete_dataset(db_session, key.workspace_id, dataset_id)
