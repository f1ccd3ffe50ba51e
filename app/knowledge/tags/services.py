"""Knowledge tags: per workspace, type ``knowledge``, bound to datasets of the same workspace. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.knowledge.datasets.services import get_dataset
from db.models import Tag, tag_bindings

KNOWLEDGE = "knowledge"


class TagNameExists(InvalidParam):
    """Tag name already exists"""


async def list_tags(session: AsyncSession, workspace_id: uuid.UUID) -> list[tuple[Tag, int]]:
    """The workspace's knowledge tags, newest first, with how many datasets carry each."""
    count = (
        select(func.count())
        .select_from(tag_bindings)
        .where(tag_bindings.c.tag_id == Tag.id)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Tag, count)
        .where(Tag.workspace_id == workspace_id, Tag.type == KNOWLEDGE)
        .order_by(Tag.created_at.desc(), Tag.id.desc())
    )
    return [(tag, int(count)) for tag, count in rows]


async def get_tag(session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID) -> Tag:
    tag = await session.scalar(
        select(Tag).where(Tag.id == tag_id, Tag.workspace_id == workspace_id, Tag.type == KNOWLEDGE)
    )
    if tag is None:
        raise NotFound("Tag not found")
    return tag


async def binding_count(session: AsyncSession, tag: Tag) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(tag_bindings).where(tag_bindings.c.tag_id == tag.id)
        )
        or 0
    )


async def _save_name(session: AsyncSession, tag: Tag) -> None:
    # The unique constraint (workspace, type, name) decides, also between concurrent requests.
    try:
        async with session.begin_nested():
            session.add(tag)
            await session.flush()
    except IntegrityError:
        raise TagNameExists() from None


async def create_tag(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> Tag:
    tag = Tag(workspace_id=workspace_id, name=name, type=KNOWLEDGE)
    await _save_name(session, tag)
    return tag


async def rename_tag(session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID, name: str) -> Tag:
    tag = await get_tag(session, workspace_id, tag_id)
    if tag.name != name:
        tag.name = name
        await _save_name(session, tag)
    return tag


async def delete_tag(session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID) -> None:
    """Delete the tag; its bindings go with it (``ON DELETE CASCADE``)."""
    await session.delete(await get_tag(session, workspace_id, tag_id))
    await session.flush()


async def bind(
    session: AsyncSession, workspace_id: uuid.UUID, tag_ids: Sequence[uuid.UUID], dataset_id: uuid.UUID
) -> None:
    """Bind tags to a dataset; binding an already bound tag changes nothing."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    wanted = set(tag_ids)
    if not wanted:
        return
    known = set(
        await session.scalars(
            select(Tag.id).where(Tag.id.in_(wanted), Tag.workspace_id == workspace_id, Tag.type == KNOWLEDGE)
        )
    )
    if wanted - known:
        raise NotFound("Tag not found")
    await session.execute(
        insert(tag_bindings)
        .values([{"tag_id": tag_id, "dataset_id": dataset.id} for tag_id in sorted(wanted)])
        .on_conflict_do_nothing()
    )


async def unbind(
    session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID, dataset_id: uuid.UUID
) -> None:
    """Remove one binding; removing a binding that does not exist changes nothing (like Dify)."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    await session.execute(
        delete(tag_bindings).where(tag_bindings.c.tag_id == tag_id, tag_bindings.c.dataset_id == dataset.id)
    )


async def tags_of_dataset(session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID) -> list[Tag]:
    dataset = await get_dataset(session, workspace_id, dataset_id)
    rows = await session.scalars(
        select(Tag)
        .join(tag_bindings, tag_bindings.c.tag_id == Tag.id)
        .where(tag_bindings.c.dataset_id == dataset.id, Tag.type == KNOWLEDGE)
        .order_by(tag_bindings.c.created_at, Tag.name)
    )
    return list(rows)
