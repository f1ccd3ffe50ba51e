"""Service API (dataset key): ``/v1/datasets/tags`` (workspace tags) and ``/v1/datasets/{id}/tags``."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.knowledge.tags import services
from app.knowledge.tags.schemas import (
    DatasetTag,
    DatasetTags,
    TagBinding,
    TagCreate,
    TagDelete,
    TagOut,
    TagUnbinding,
    TagUpdate,
)
from app.tenancy.services import KeyContext
from db.models import Tag


def _out(tag: Tag, count: int) -> TagOut:
    return TagOut(id=tag.id, name=tag.name, type=tag.type, binding_count=str(count))


class TagController(Controller):
    # A static path: Litestar matches "/v1/datasets/tags" before "/v1/datasets/{dataset_id:uuid}".
    path = "/v1/datasets/tags"
    tags = ["service api: knowledge"]

    @get("/", responses=responses(401))
    async def list_tags(self, db_session: AsyncSession, key: KeyContext) -> list[TagOut]:
        """The workspace's knowledge tags, newest first."""
        return [_out(tag, count) for tag, count in await services.list_tags(db_session, key.workspace_id)]

    @post("/", status_code=200, responses=responses(401))
    async def create_tag(self, db_session: AsyncSession, key: KeyContext, data: TagCreate) -> TagOut:
        """Create a tag (1 to 50 characters, unique in the workspace)."""
        return _out(await services.create_tag(db_session, key.workspace_id, data.name), 0)

    @patch("/", responses=responses(401, 404))
    async def rename_tag(self, db_session: AsyncSession, key: KeyContext, data: TagUpdate) -> TagOut:
        tag = await services.rename_tag(db_session, key.workspace_id, data.tag_id, data.name)
        return _out(tag, await services.binding_count(db_session, tag))

    @delete("/", responses=responses(401, 404))
    async def delete_tag(self, db_session: AsyncSession, key: KeyContext, data: TagDelete) -> None:
        """Delete a tag and its bindings. The tag id is in the JSON body, as in Dify."""
        await services.delete_tag(db_session, key.workspace_id, data.tag_id)

    @post("/binding", status_code=204, responses=responses(401, 404))
    async def bind_tags(self, db_session: AsyncSession, key: KeyContext, data: TagBinding) -> None:
        """Bind tags to a dataset (``target_id``)."""
        await services.bind(db_session, key.workspace_id, data.tag_ids, data.target_id)

    @post("/unbinding", status_code=204, responses=responses(401, 404))
    async def unbind_tag(self, db_session: AsyncSession, key: KeyContext, data: TagUnbinding) -> None:
        """Remove a tag from a dataset (``target_id``)."""
        await services.unbind(db_session, key.workspace_id, data.tag_id, data.target_id)


class DatasetTagController(Controller):
    path = "/v1/datasets/{dataset_id:uuid}/tags"
    tags = ["service api: knowledge"]

    @get("/", responses=responses(401, 404))
    async def dataset_tags(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID
    ) -> DatasetTags:
        """The tags bound to a dataset."""
        tags = await services.tags_of_dataset(db_session, key.workspace_id, dataset_id)
        return DatasetTags(data=[DatasetTag(id=t.id, name=t.name) for t in tags], total=len(tags))
