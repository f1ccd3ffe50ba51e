"""Messages of a conversation (chatflow spec 3): scroll-up history, feedback, the app's feedback list, suggested
questions, and how one message looks to a client (its files re-signed, its human-input forms)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import naming
from app.chat.errors import FirstMessageNotExists, MessageNotExists, SuggestionsDisabled
from app.chat.schemas import UUID_NIL, MessageFileItem, MessageItem
from app.chat.turns import features_of
from app.errors import InvalidParam
from app.files.signing import FileSigner
from app.human_input import forms as human_forms
from app.schemas import unix
from app.settings import Settings
from app.workflows.engine.nodes.base import LLMPort
from db.models import Conversation, EndUser, HumanInputForm, Message, MessageFeedback, MessageFile, Workflow


class MessageStatus(StrEnum):
    """A message's status (``messages.status``, Dify's strings), set when its turn ends."""

    NORMAL = "normal"
    #: the turn's run failed
    ERROR = "error"
    #: the turn's run waits for a human-input form
    PAUSED = "paused"


#: Retriever resource fields a message lists (chatflow spec 3.1).
LISTED_RESOURCE_FIELDS = (
    "position",
    "dataset_id",
    "dataset_name",
    "document_id",
    "document_name",
    "data_source_type",
    "segment_id",
    "score",
    "hit_count",
    "word_count",
    "segment_position",
    "index_node_hash",
    "content",
    "summary",
)


async def page(
    session: AsyncSession,
    conversation: Conversation,
    *,
    first_id: uuid.UUID | None,
    limit: int,
) -> tuple[list[Message], bool]:
    """Up to ``limit`` messages before ``first_id`` (the newest without it), oldest first; ``has_more`` when older
    ones remain."""
    query = select(Message).where(Message.conversation_id == conversation.id)
    if first_id is not None:
        first = await session.scalar(
            select(Message).where(Message.id == first_id, Message.conversation_id == conversation.id)
        )
        if first is None:
            raise FirstMessageNotExists
        query = query.where(Message.created_at < first.created_at)
    rows = list(
        (
            await session.scalars(
                query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
            )
        ).all()
    )
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


async def owned(
    session: AsyncSession, app_id: uuid.UUID, end_user: EndUser | None, message_id: uuid.UUID
) -> Message:
    """A message of this user (anyone else's is "not found")."""
    if end_user is None:
        raise MessageNotExists
    message = await session.scalar(
        select(Message).where(
            Message.id == message_id, Message.app_id == app_id, Message.end_user_id == end_user.id
        )
    )
    if message is None:
        raise MessageNotExists
    return message


async def of_run(
    session: AsyncSession, app_id: uuid.UUID, end_user: EndUser | None, run_id: uuid.UUID
) -> Message | None:
    """The message of this user whose turn is the run ``run_id`` (None: no such run, or another user's)."""
    if end_user is None:
        return None
    return await session.scalar(  # type: ignore[no-any-return]
        select(Message).where(
            Message.workflow_run_id == run_id, Message.app_id == app_id, Message.end_user_id == end_user.id
        )
    )


async def items(
    session: AsyncSession,
    settings: Settings,
    signer: FileSigner,
    messages: Sequence[Message],
    end_user: EndUser,
) -> list[MessageItem]:
    """Messages as ``GET /messages`` lists them: files, the user's feedback, citations, human-input forms."""
    ids = [m.id for m in messages]
    files: dict[uuid.UUID, list[MessageFileItem]] = {}
    for row in (
        await session.scalars(
            select(MessageFile).where(MessageFile.message_id.in_(ids)).order_by(MessageFile.created_at)
        )
    ).all():
        files.setdefault(row.message_id, []).append(_file_item(row, signer))
    ratings = {
        message_id: rating
        for message_id, rating in await session.execute(
            select(MessageFeedback.message_id, MessageFeedback.rating).where(
                MessageFeedback.message_id.in_(ids),
                MessageFeedback.from_source == "user",
                MessageFeedback.from_end_user_id == end_user.id,
            )
        )
    }
    contents = await _human_input_contents(
        session, settings, [m.workflow_run_id for m in messages if m.workflow_run_id]
    )
    return [
        MessageItem(
            id=m.id,
            conversation_id=m.conversation_id,
            parent_message_id=UUID_NIL,
            inputs=m.inputs or {},
            query=m.query,
            answer=m.answer,
            message_files=files.get(m.id, []),
            feedback={"rating": ratings[m.id]} if m.id in ratings else None,
            retriever_resources=[
                {
                    "id": str(uuid.uuid4()),
                    "message_id": str(uuid.uuid4()),
                    **{f: r.get(f) for f in LISTED_RESOURCE_FIELDS},
                    "created_at": None,
                }
                for r in (m.message_metadata or {}).get("retriever_resources") or []
                if isinstance(r, dict)
            ],
            created_at=unix(m.created_at) or 0,
            agent_thoughts=[],
            status=m.status,
            error=m.error,
            extra_contents=contents.get(m.workflow_run_id, []) if m.workflow_run_id else [],
        )
        for m in messages
    ]


def _file_item(row: MessageFile, signer: FileSigner) -> MessageFileItem:
    file = row.file or {}
    url = signer.url(row.upload_file_id) if row.upload_file_id else (row.url or file.get("url"))
    return MessageFileItem(
        id=str(row.id),
        filename=str(file.get("filename") or ""),
        type=row.type,
        url=url,
        mime_type=file.get("mime_type"),
        size=file.get("size"),
        transfer_method=row.transfer_method,
        belongs_to=row.belongs_to,
        upload_file_id=str(row.upload_file_id) if row.upload_file_id else None,
    )


async def _human_input_contents(
    session: AsyncSession, settings: Settings, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each run's human-input forms as a message's ``extra_contents`` (the definition while waiting, what was
    submitted once answered)."""
    if not run_ids:
        return {}
    found = list(
        (
            await session.scalars(
                select(HumanInputForm)
                .where(HumanInputForm.run_id.in_(list(run_ids)))
                .order_by(HumanInputForm.created_at, HumanInputForm.node_id)
            )
        ).all()
    )
    tokens = await human_forms.webapp_tokens(
        session, settings, [f.id for f in found if f.status == human_forms.FormStatus.WAITING]
    )
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for form in found:
        submitted = form.status == human_forms.FormStatus.SUBMITTED
        definition = None
        if not submitted:
            definition = {
                **human_forms.required_event(form),
                "display_in_ui": True,
                "form_token": tokens.get(form.id),
            }
        submission = None
        if submitted:
            action = next((a for a in form.user_actions or [] if a.get("id") == form.action_id), {})
            submission = {
                "node_id": form.node_id,
                "node_title": form.node_title,
                "rendered_content": form.form_content,
                "action_id": form.action_id,
                "action_text": action.get("title") or form.action_id,
            }
        out.setdefault(form.run_id, []).append(
            {
                "type": "human_input",
                "workflow_run_id": str(form.run_id),
                "submitted": submitted,
                "form_definition": definition,
                "form_submission_data": submission,
            }
        )
    return out


# --- feedback ------------------------------------------------------------------------------------------------


async def give_feedback(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    message_id: uuid.UUID,
    rating: str | None,
    content: str | None,
) -> None:
    """One feedback per user and message: create, update, or (``rating`` null) withdraw it."""
    message = await owned(session, app_id, end_user, message_id)
    assert end_user is not None
    existing = await session.scalar(
        select(MessageFeedback)
        .where(
            MessageFeedback.message_id == message.id,
            MessageFeedback.from_source == "user",
            MessageFeedback.from_end_user_id == end_user.id,
        )
        .with_for_update()
    )
    if rating is None:
        if existing is None:
            raise InvalidParam("rating cannot be None when feedback not exists")
        await session.execute(delete(MessageFeedback).where(MessageFeedback.id == existing.id))
        return
    if existing is None:
        session.add(
            MessageFeedback(
                app_id=app_id,
                conversation_id=message.conversation_id,
                message_id=message.id,
                rating=rating,
                content=content,
                from_source="user",
                from_end_user_id=end_user.id,
            )
        )
    else:
        existing.rating, existing.content = rating, content
    await session.flush()


async def app_feedbacks(
    session: AsyncSession, app_id: uuid.UUID, page_number: int, limit: int
) -> list[MessageFeedback]:
    rows = await session.scalars(
        select(MessageFeedback)
        .where(MessageFeedback.app_id == app_id)
        .order_by(MessageFeedback.created_at.desc(), MessageFeedback.id.desc())
        .offset((page_number - 1) * limit)
        .limit(limit)
    )
    return list(rows.all())


def iso(value: datetime.datetime) -> str:
    """Dify's feedback timestamps: ISO 8601 in UTC without a zone."""
    return value.astimezone(datetime.UTC).replace(tzinfo=None).isoformat()


# --- suggested questions -------------------------------------------------------------------------------------


async def suggestions(
    session: AsyncSession,
    app_id: uuid.UUID,
    end_user: EndUser | None,
    message_id: uuid.UUID,
    llm: LLMPort | None,
    settings: Settings,
) -> list[str]:
    message = await owned(session, app_id, end_user, message_id)
    workflow = await session.scalar(
        select(Workflow).where(Workflow.app_id == app_id).order_by(Workflow.version.desc()).limit(1)
    )
    features = features_of(workflow.dsl if workflow else {})
    config = features.get("suggested_questions_after_answer")
    if not isinstance(config, dict) or not config.get("enabled"):
        raise SuggestionsDisabled
    model_config = config.get("model")
    model = (
        str(model_config["name"])
        if isinstance(model_config, dict) and model_config.get("name")
        else naming.default_model(settings, workflow.graph if workflow else {})
    )
    history = [
        (row.query, row.answer)
        for row in reversed(
            (
                await session.execute(
                    select(Message.query, Message.answer)
                    .where(Message.conversation_id == message.conversation_id)
                    .order_by(Message.created_at.desc(), Message.id.desc())
                    .limit(naming.SUGGEST_TURNS)
                )
            ).all()
        )
    ]
    prompt = config.get("prompt") if isinstance(config.get("prompt"), str) and config.get("prompt") else None
    return await naming.suggest_questions(llm, model, history, prompt)
