"""Dataset operations, always scoped to the calling key's workspace. Services never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from db.models import Dataset


class DatasetNameDuplicate(Conflict):
    """The dataset name already exists. Please modify your dataset name."""

    code = "dataset_name_duplicate"


async def create_dataset(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    description: str = "",
    permission: str = "only_me",
    indexing_technique: str | None = None,
) -> Dataset:
    dataset = Dataset(
        workspace_id=workspace_id,
        name=name.strip(),
        description=description,
        permission=permission,
        indexing_technique=indexing_technique,
    )
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


async def get_dataset(session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    """A dataset of this workspace. Another workspace's dataset is indistinguishable from a missing one."""
    dataset = await session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.workspace_id == workspace_id)
    )
    if dataset is None:
        raise NotFound("Dataset not found.")
    return dataset


async def delete_dataset(session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    await session.delete(await get_dataset(session, workspace_id, dataset_id))
    await session.flush()
