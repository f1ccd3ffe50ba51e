"""Conversations of an end user (chatflow spec 4): list (cursor paging), rename (or generate the name), delete,
and their variables (list, set). Services never commit; a conversation of another user is "not found"."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import naming, variables
from app.chat.errors import (
    ConversationNotExists,
    LastConversationNotExists,
    VariableNotExists,
)
from app.clock import utcnow
from app.errors import InvalidParam
from app.settings import Settings
from app.workflows.engine.nodes.base import LLMPort
from db.models import Conversation, ConversationVariable, EndUser

SORTS = ("created_at", "-created_at", "updated_at", "-updated_at")


def _scope(app_id: uuid.UUID, end_user: EndUser) -> list[Any]:
    return [
        Conversation.app_id == app_id,
        Conversation.end_user_id == end_user.id,
        Conversation.from_source == "api",
        Conversation.invoke_from == "service-api",
    ]


async def get(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    conversation_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Conversation:
    if end_user is None:
        raise ConversationNotExists
    query = select(Conversation).where(Conversation.id == conversation_id, *_scope(app_id, end_user))
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise ConversationNotExists
    return found


async def page(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    *,
    last_id: uuid.UUID | None,
    limit: int,
    sort_by: str,
) -> tuple[list[Conversation], bool]:
    """A page of the user's conversations after ``last_id`` (strictly after it on the sort field, as Dify)."""
    if end_user is None:
        if last_id is not None:
            raise LastConversationNotExists
        return [], False
    field = getattr(Conversation, sort_by.lstrip("-"))
    descending = sort_by.startswith("-")
    scope = _scope(app_id, end_user)
    query = select(Conversation).where(*scope)
    if last_id is not None:
        last = await session.scalar(select(Conversation).where(Conversation.id == last_id, *scope))
        if last is None:
            raise LastConversationNotExists
        query = query.where(_after(field, descending, getattr(last, field.key)))
    order = (field.desc(), Conversation.id.desc()) if descending else (field.asc(), Conversation.id.asc())
    rows = list((await session.scalars(query.order_by(*order).limit(limit))).all())
    has_more = False
    if len(rows) == limit:
        rest = select(sa.literal(1)).where(*scope, _after(field, descending, getattr(rows[-1], field.key)))
        has_more = bool(await session.scalar(select(rest.exists())))
    return rows, has_more


def _after(field: Any, descending: bool, value: Any) -> Any:
    return field < value if descending else field > value


async def rename(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    conversation_id: uuid.UUID,
    *,
    name: str | None,
    auto_generate: bool,
    llm: LLMPort | None,
    settings: Settings,
) -> Conversation:
    conversation = await get(session, app_id, end_user, conversation_id, lock=True)
    if auto_generate:
        query = await naming.first_query(session, conversation.id)
        if query is None:
            raise InvalidParam("")  # Dify: a conversation with no message (its message is empty)
        graph = await naming.graph_of(session, conversation.id)
        conversation.name = await naming.generate_name(llm, naming.default_model(settings, graph), query)
    else:
        if name is None or not name.strip():
            raise InvalidParam("name is required when auto_generate is false")
        conversation.name = name.strip()
    conversation.updated_at = utcnow()
    await session.flush()
    return conversation


async def remove(
    session: AsyncSession, app_id: uuid.UUID, end_user: EndUser | None, conversation_id: uuid.UUID
) -> None:
    """Delete a conversation with its messages, files, feedback and variables, in the caller's transaction."""
    conversation = await get(session, app_id, end_user, conversation_id)
    await session.execute(delete(Conversation).where(Conversation.id == conversation.id))


async def variable_page(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    conversation_id: uuid.UUID,
    *,
    last_id: uuid.UUID | None,
    limit: int,
    name: str | None,
) -> tuple[list[ConversationVariable], bool]:
    conversation = await get(session, app_id, end_user, conversation_id)
    query = select(ConversationVariable).where(ConversationVariable.conversation_id == conversation.id)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(ConversationVariable.name.ilike(f"%{escaped}%"))
    if last_id is not None:
        last = await session.scalar(
            select(ConversationVariable).where(
                ConversationVariable.variable_id == str(last_id),
                ConversationVariable.conversation_id == conversation.id,
            )
        )
        if last is None:
            raise InvalidParam("")  # Dify leaks an unmapped error here: a 400 with an empty message
        query = query.where(
            sa.tuple_(ConversationVariable.created_at, ConversationVariable.position, ConversationVariable.id)
            > sa.tuple_(sa.literal(last.created_at), sa.literal(last.position), sa.literal(last.id))
        )
    order = (ConversationVariable.created_at, ConversationVariable.position, ConversationVariable.id)
    rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def set_variable(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    conversation_id: uuid.UUID,
    variable_id: str,
    value: Any,
) -> ConversationVariable:
    conversation = await get(session, app_id, end_user, conversation_id)
    row = await session.scalar(
        select(ConversationVariable)
        .where(
            ConversationVariable.conversation_id == conversation.id,
            ConversationVariable.variable_id == variable_id,
        )
        .with_for_update()
    )
    if row is None:
        raise VariableNotExists
    variables.check_value(row.name, row.value_type, value)
    row.value = value
    row.updated_at = utcnow()
    await session.flush()
    return row
