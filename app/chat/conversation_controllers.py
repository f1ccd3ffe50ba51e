"""Conversations, messages, feedback and end users of the chat Service API (app key). Every conversation and
message belongs to one end user (``user``); for anyone else it does not exist (404)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import conversations, end_users, messages, variables
from app.chat.errors import VariableNotExists
from app.chat.schemas import (
    Conversation,
    ConversationPage,
    EndUserDetail,
    Feedback,
    FeedbackPage,
    FeedbackRequest,
    MessagePage,
    OptionalUserBody,
    RenameRequest,
    Suggestions,
    Variable,
    VariablePage,
    VariableUpdate,
)
from app.errors import InvalidParam, responses
from app.files.signing import FileSigner
from app.schemas import NO_NUL, Limit, Success, unix
from app.settings import Settings
from app.state import LLM
from app.tenancy.modes import require_chat_app
from app.tenancy.services import AppKey
from db.models import Conversation as ConversationRow
from db.models import ConversationVariable, MessageFeedback

UserQuery = Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)]
RequiredUser = Annotated[str, Parameter(min_length=1, max_length=255, pattern=NO_NUL)]
CursorId = Annotated[str | None, Parameter(max_length=64, pattern=NO_NUL)]
#: A page size 1-100; empty means the default. Dify's SDK ``ChatClient.get_conversations`` sends every optional
#: argument, so a call without a limit arrives as ``?limit=`` (httpx writes None as an empty value).
OptionalLimit = Annotated[
    str | None, Parameter(pattern=r"^\s*([0-9]{1,3})?\s*$", description="1-100 (empty: 20)")
]
#: Dify's ``variable_name`` filter: names only, and nothing that looks like SQL.
_VARIABLE_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")
_SQL_FRAGMENTS = ("'", '"', ";", "--", "/*", "*/", "xp_", "sp_")


def _cursor(value: str | None, name: str) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidParam(f"{name} must be a valid UUID") from None


def _limit(value: str | None, default: int = 20) -> int:
    if value is None or not value.strip():
        return default
    limit = int(value)
    if not 1 <= limit <= 100:
        raise InvalidParam("limit must be between 1 and 100")
    return limit


def conversation_body(row: ConversationRow) -> Conversation:
    return Conversation(
        id=row.id,
        name=row.name,
        inputs=row.inputs or {},
        status=row.status,
        introduction=row.introduction,
        created_at=unix(row.created_at) or 0,
        updated_at=unix(row.updated_at) or 0,
    )


def variable_body(row: ConversationVariable) -> Variable:
    return Variable(
        id=row.variable_id,
        name=row.name,
        value_type=variables.exposed_type(row.value_type),
        value=variables.shown(row.value),
        description=row.description,
        created_at=unix(row.created_at) or 0,
        updated_at=unix(row.updated_at) or 0,
    )


def feedback_body(row: MessageFeedback) -> Feedback:
    return Feedback(
        id=row.id,
        app_id=row.app_id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        rating=row.rating,
        content=row.content,
        from_source=row.from_source,
        from_end_user_id=row.from_end_user_id,
        from_account_id=row.from_account_id,
        created_at=messages.iso(row.created_at),
        updated_at=messages.iso(row.updated_at),
    )


class ConversationController(Controller):
    path = "/v1"
    tags = ["service api: chat"]

    @get("/conversations", responses=responses(400, 401, 404))
    async def list_conversations(
        self,
        db_session: AsyncSession,
        key: AppKey,
        user: UserQuery = None,
        last_id: CursorId = None,
        limit: OptionalLimit = None,
        sort_by: Annotated[str, Parameter(pattern=r"^-?(created_at|updated_at)$")] = "-updated_at",
    ) -> ConversationPage:
        """The user's conversations, most recently active first by default (`last_id` pages on)."""
        require_chat_app(key)
        size = _limit(limit)
        end_user = await end_users.find(db_session, key.app_id, user)
        rows, has_more = await conversations.page(
            db_session,
            key.app_id,
            end_user,
            last_id=_cursor(last_id, "last_id"),
            limit=size,
            sort_by=sort_by,
        )
        return ConversationPage(limit=size, has_more=has_more, data=[conversation_body(r) for r in rows])

    @delete("/conversations/{conversation_id:uuid}", status_code=204, responses=responses(400, 401, 404))
    async def delete_conversation(
        self,
        db_session: AsyncSession,
        key: AppKey,
        conversation_id: uuid.UUID,
        data: OptionalUserBody | None = None,
    ) -> None:
        """Delete a conversation with its messages, feedback and variables."""
        require_chat_app(key)
        end_user = await end_users.find(db_session, key.app_id, data.user if data else None)
        await conversations.remove(db_session, key.app_id, end_user, conversation_id)

    @post("/conversations/{conversation_id:uuid}/name", status_code=200, responses=responses(400, 401, 404))
    async def rename(
        self,
        db_session: AsyncSession,
        settings: Settings,
        llm: LLM,
        key: AppKey,
        conversation_id: uuid.UUID,
        data: RenameRequest,
    ) -> Conversation:
        """Rename a conversation, or (`auto_generate`) have the model name it after its first message."""
        require_chat_app(key)
        end_user = await end_users.find(db_session, key.app_id, data.user)
        row = await conversations.rename(
            db_session,
            key.app_id,
            end_user,
            conversation_id,
            name=data.name,
            auto_generate=data.auto_generate,
            llm=llm,
            settings=settings,
        )
        return conversation_body(row)

    @get("/conversations/{conversation_id:uuid}/variables", responses=responses(400, 401, 404))
    async def list_variables(
        self,
        db_session: AsyncSession,
        key: AppKey,
        conversation_id: uuid.UUID,
        user: UserQuery = None,
        last_id: CursorId = None,
        limit: Limit = 20,
        variable_name: Annotated[str | None, Parameter(max_length=255)] = None,
    ) -> VariablePage:
        """The conversation's variables, values as Dify shows them (Python's `str()`)."""
        require_chat_app(key)
        if variable_name is not None and (
            not _VARIABLE_NAME.match(variable_name) or any(f in variable_name.lower() for f in _SQL_FRAGMENTS)
        ):
            raise InvalidParam("variable_name may only hold letters, digits, '-', '_' and '.'")
        end_user = await end_users.find(db_session, key.app_id, user)
        rows, has_more = await conversations.variable_page(
            db_session,
            key.app_id,
            end_user,
            conversation_id,
            last_id=_cursor(last_id, "last_id"),
            limit=limit,
            name=variable_name,
        )
        return VariablePage(limit=limit, has_more=has_more, data=[variable_body(r) for r in rows])

    @put(
        "/conversations/{conversation_id:uuid}/variables/{variable_id:str}",
        status_code=200,
        responses=responses(400, 401, 404),
    )
    async def set_variable(
        self,
        db_session: AsyncSession,
        key: AppKey,
        conversation_id: uuid.UUID,
        variable_id: str,
        data: VariableUpdate,
    ) -> Variable:
        """Replace a variable's value (its type is checked); the next turn sees it."""
        require_chat_app(key)
        end_user = await end_users.find(db_session, key.app_id, data.user)
        if len(variable_id) > 255:
            raise VariableNotExists
        row = await conversations.set_variable(
            db_session, key.app_id, end_user, conversation_id, variable_id, data.value
        )
        return variable_body(row)

    @get("/messages", responses=responses(400, 401, 404))
    async def list_messages(
        self,
        db_session: AsyncSession,
        settings: Settings,
        key: AppKey,
        conversation_id: Annotated[str, Parameter(max_length=64, pattern=NO_NUL)],
        user: UserQuery = None,
        first_id: CursorId = None,
        limit: Limit = 20,
    ) -> MessagePage:
        """A conversation's messages, scrolling up: the newest `limit` (or those before `first_id`), oldest first."""
        require_chat_app(key)
        wanted = _cursor(conversation_id, "conversation_id")
        if wanted is None:
            return MessagePage(limit=limit, has_more=False, data=[])
        end_user = await end_users.find(db_session, key.app_id, user)
        conversation = await conversations.get(db_session, key.app_id, end_user, wanted)
        assert end_user is not None
        rows, has_more = await messages.page(
            db_session, conversation, first_id=_cursor(first_id, "first_id"), limit=limit
        )
        data = await messages.items(db_session, settings, FileSigner.of(settings), rows, end_user)
        return MessagePage(limit=limit, has_more=has_more, data=data)

    @post("/messages/{message_id:uuid}/feedbacks", status_code=200, responses=responses(400, 401, 404))
    async def feedback(
        self, db_session: AsyncSession, key: AppKey, message_id: uuid.UUID, data: FeedbackRequest
    ) -> Success:
        """Like or dislike a message (one feedback per user; `rating: null` withdraws it)."""
        require_chat_app(key)
        end_user = await end_users.find(db_session, key.app_id, data.user)
        await messages.give_feedback(db_session, key.app_id, end_user, message_id, data.rating, data.content)
        return Success()

    @get("/messages/{message_id:uuid}/suggested", responses=responses(400, 401, 404))
    async def suggested(
        self,
        db_session: AsyncSession,
        settings: Settings,
        llm: LLM,
        key: AppKey,
        message_id: uuid.UUID,
        user: RequiredUser,
    ) -> Suggestions:
        """Three questions the user may ask next (needs `suggested_questions_after_answer` enabled)."""
        require_chat_app(key)
        end_user = await end_users.find(db_session, key.app_id, user)
        found = await messages.suggestions(db_session, key.app_id, end_user, message_id, llm, settings)
        return Suggestions(result="success", data=found)

    @get("/app/feedbacks", responses=responses(400, 401))
    async def app_feedbacks(
        self,
        db_session: AsyncSession,
        key: AppKey,
        page: Annotated[int, Parameter(ge=1, le=100000)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=101)] = 20,
    ) -> FeedbackPage:
        """Every feedback given on the app's messages, newest first."""
        rows = await messages.app_feedbacks(db_session, key.app_id, page, limit)
        return FeedbackPage(data=[feedback_body(r) for r in rows])

    @get("/end-users/{end_user_id:uuid}", responses=responses(401, 404))
    async def end_user(self, db_session: AsyncSession, key: AppKey, end_user_id: uuid.UUID) -> EndUserDetail:
        """An end user of the app (the `user` strings of the Service API, as rows)."""
        row = await end_users.get(db_session, key.app_id, end_user_id)
        return EndUserDetail(
            id=row.id,
            tenant_id=row.workspace_id,
            app_id=row.app_id,
            type=row.type,
            external_user_id=None if row.is_anonymous else row.session_id,
            name=row.name,
            is_anonymous=row.is_anonymous,
            session_id=row.session_id,
            created_at=messages.iso(row.created_at),
            updated_at=messages.iso(row.updated_at),
        )
