"""Request and response bodies of the chat Service API (chatflow spec 1-4, Dify's shapes)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

from app.schemas import NO_NUL

User = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
#: A chat query; 1 MiB is far more than any model takes, and bounds what a turn stores.
Query = Annotated[str, msgspec.Meta(max_length=1024 * 1024)]
#: Service API turns are never threaded: every message has this parent (Dify's ``UUID_NIL``).
UUID_NIL = "00000000-0000-0000-0000-000000000000"


class ChatRequest(msgspec.Struct, kw_only=True):
    query: Query
    inputs: dict[str, Any]
    user: User
    response_mode: Literal["blocking", "streaming"] | None = None
    conversation_id: str | None = None
    files: list[Any] | None = None
    auto_generate_name: bool = True
    workflow_id: str | None = None
    retriever_from: str = "dev"


class CompletionRequest(msgspec.Struct, kw_only=True):
    inputs: dict[str, Any]
    user: User
    query: Query = ""
    response_mode: Literal["blocking", "streaming"] | None = None
    files: list[Any] | None = None


class UserBody(msgspec.Struct, kw_only=True):
    user: User


class OptionalUserBody(msgspec.Struct, kw_only=True):
    user: User | None = None


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=False):
    """The blocking answer of a turn (``event: message``)."""

    event: str
    task_id: str
    id: str
    message_id: str
    conversation_id: str | None
    mode: str
    answer: str
    metadata: dict[str, Any]
    created_at: int


class PausedChatMessage(msgspec.Struct, kw_only=True):
    """The blocking answer of a turn that paused for a person (Dify 1.14)."""

    event: str
    task_id: str
    id: str
    message_id: str
    conversation_id: str | None
    mode: str
    answer: str
    metadata: dict[str, Any]
    created_at: int
    workflow_run_id: str
    data: dict[str, Any]


class Conversation(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    inputs: dict[str, Any]
    status: str
    introduction: str
    created_at: int
    updated_at: int


class ConversationPage(msgspec.Struct):
    limit: int
    has_more: bool
    data: list[Conversation]


class RenameRequest(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    auto_generate: bool = False
    user: User | None = None


class Variable(msgspec.Struct, kw_only=True):
    id: str
    name: str
    value_type: str
    value: str | None
    description: str
    created_at: int
    updated_at: int


class VariablePage(msgspec.Struct):
    limit: int
    has_more: bool
    data: list[Variable]


class VariableUpdate(msgspec.Struct, kw_only=True):
    value: Any
    user: User | None = None


class MessageFileItem(msgspec.Struct, kw_only=True):
    id: str
    filename: str
    type: str
    url: str | None
    mime_type: str | None
    size: int | None
    transfer_method: str
    belongs_to: str | None
    upload_file_id: str | None


class MessageItem(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    conversation_id: uuid.UUID | None
    parent_message_id: str | None
    inputs: dict[str, Any]
    query: str
    answer: str
    message_files: list[MessageFileItem]
    feedback: dict[str, str] | None
    retriever_resources: list[dict[str, Any]]
    created_at: int
    agent_thoughts: list[Any]
    status: str
    error: str | None
    extra_contents: list[dict[str, Any]]


class MessagePage(msgspec.Struct):
    limit: int
    has_more: bool
    data: list[MessageItem]


class FeedbackRequest(msgspec.Struct, kw_only=True):
    user: User
    rating: Literal["like", "dislike"] | None = None
    content: Annotated[str, msgspec.Meta(max_length=65536)] | None = None


class Feedback(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    app_id: uuid.UUID
    conversation_id: uuid.UUID | None
    message_id: uuid.UUID
    rating: str
    content: str | None
    from_source: str
    from_end_user_id: uuid.UUID | None
    from_account_id: uuid.UUID | None
    created_at: str
    updated_at: str


class FeedbackPage(msgspec.Struct):
    data: list[Feedback]


class Suggestions(msgspec.Struct):
    result: str
    data: list[str]


class EndUserDetail(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    app_id: uuid.UUID | None
    type: str
    external_user_id: str | None
    name: str | None
    is_anonymous: bool
    session_id: str
    created_at: str
    updated_at: str
