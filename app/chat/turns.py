"""One chat turn's start (chatflow spec 7.1): everything checkable is checked here, before any stream opens, and the
turn's records and its run's first job commit in the caller's one transaction.

In order: the sizes of the query and inputs (the run input caps of workflow runs), the query, the workflow version, the end user, the conversation (owned by this user; row-locked, so two
turns of one conversation are decided one after the other), the inputs and files, the conversation variables,
the annotation reply (a stored answer ends the turn without a run), then the message, its files and the run.

One turn at a time per conversation (spec 7.8, Sluice's choice): a turn is refused with 409 while the previous
turn's run is running or paused. Turns are therefore never interleaved, each sees the history committed before
it, and a paused turn is resumed or stopped before the conversation goes on.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from advanced_alchemy.mixins.uuid import uuid7
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.annotations import services as annotation_replies
from app.chat import end_users, variables
from app.chat.errors import (
    BadRequest,
    ConversationBusy,
    ConversationNotExists,
    QueryRequired,
    WorkflowNotPublished,
)
from app.chat.naming import short_name
from app.chat.schemas import ChatRequest
from app.chat.usage import zero_usage
from app.clock import utcnow
from app.errors import InvalidParam, NotFound
from app.files.run_inputs import FileContext, resolve_run_files
from app.knowledge.embeddings.providers import Embedders
from app.tenancy.services import AppKey
from app.workflows import services as workflows
from app.workflows.engine.building import initial_state
from app.workflows.engine.errors import InputError
from app.workflows.runs import store, transitions
from db import queue
from db.models import Conversation, MessageFile

MODE = "advanced-chat"
COMPLETION = "completion"
#: A new conversation is named after its first query, cut here (Dify), until the generated name arrives.
#: The background naming starts this long after the first turn (Dify: about a second).
NAMING_DELAY = datetime.timedelta(seconds=1)
#: ``{{var}}`` in an opening statement (Dify's ``PromptTemplateParser``).
_OPENING_VARIABLE = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]{0,29})\}\}")


class Turn(msgspec.Struct, kw_only=True):
    """A started turn. ``run_id`` is None when an annotation answered (``answer`` holds it)."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    end_user_id: uuid.UUID
    user: str
    run_id: uuid.UUID | None
    created_at: datetime.datetime
    answer: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def task_id(self) -> uuid.UUID:
        """What the stop endpoint takes: the run (Sluice's task), or the message when no run answers."""
        return self.run_id or self.message_id


def introduction(features: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """The opening statement with its ``{{var}}`` filled from the first turn's inputs (unknown ones kept)."""
    opening = features.get("opening_statement")
    if not isinstance(opening, str) or not opening:
        return ""
    return _OPENING_VARIABLE.sub(
        lambda m: str(inputs[m.group(1)]) if m.group(1) in inputs else m.group(0), opening
    )


def features_of(dsl: Mapping[str, Any]) -> dict[str, Any]:
    workflow = dsl.get("workflow") if isinstance(dsl, Mapping) else None
    features = (workflow or {}).get("features") if isinstance(workflow, Mapping) else None
    return dict(features) if isinstance(features, Mapping) else {}


def parse_workflow_id(value: str | None) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise BadRequest(f"Invalid workflow_id format: '{value}'. ") from None


def parse_conversation_id(value: str | None) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidParam("conversation_id must be a valid UUID") from None


#: The user's conversation, row-locked (until the turn commits) and touched, its end user found by the request's
#: ``user`` string: one statement.
_LOCK_CONVERSATION = text(
    """
    UPDATE conversations c SET updated_at = :now
    FROM end_users u
    WHERE c.id = :conversation AND c.app_id = :app
      AND u.id = c.end_user_id AND u.app_id = :app AND u.session_id = :user
    RETURNING c.end_user_id
    """
)
#: Read under that lock, so in a statement of its own (its snapshot must include a turn committed while this one
#: waited for the lock): the number of messages, the status of the last turn's run, and the conversation
#: variables, seeded with the declared ones they lack.
_UNDER_LOCK = text(
    f"""
    WITH {variables.SEED_CTES}
    SELECT (SELECT count(*) FROM messages WHERE conversation_id = :conversation) AS messages,
           (SELECT r.status FROM messages m JOIN workflow_runs r ON r.id = m.workflow_run_id
            WHERE m.conversation_id = :conversation ORDER BY m.created_at DESC LIMIT 1) AS last_status,
           (SELECT json_agg(json_build_array(name, value) ORDER BY position) FROM conversation_values) AS values
    """  # noqa: S608 (a constant of app/chat/variables.py, no input)
)


class Locked(msgspec.Struct, frozen=True):
    end_user_id: uuid.UUID
    messages: int
    #: the conversation variables by name when they were seeded under the lock (None: not asked to)
    values: dict[str, Any] | None


async def _locked_conversation(
    session: AsyncSession,
    app_id: uuid.UUID,
    user: str,
    conversation_id: uuid.UUID,
    declared: list[variables.Declared] | None,
) -> Locked:
    """The user's conversation, row-locked until the turn commits, with the number of its messages and (given
    the ``declared`` variables) its variables, seeded. Refused while its last turn is running or paused: under
    the lock, that answer cannot change before this turn commits."""
    end_user_id = await session.scalar(
        _LOCK_CONVERSATION, {"conversation": conversation_id, "app": app_id, "user": user, "now": utcnow()}
    )
    if end_user_id is None:
        raise ConversationNotExists
    row = (
        await session.execute(_UNDER_LOCK, variables.seed_params(app_id, conversation_id, declared or []))
    ).one()
    if row.last_status in store.ACTIVE:
        raise ConversationBusy
    values = None if declared is None else {name: value for name, value in row.values or []}
    return Locked(end_user_id=end_user_id, messages=int(row.messages), values=values)


async def start_turn(
    session: AsyncSession,
    key: AppKey,
    request: ChatRequest,
    files: FileContext,
    embedders: Embedders | None,
    limits: workflows.InputLimits | None = None,
) -> Turn:
    """Check a chat request and start its turn in the caller's transaction (services never commit). Inputs or a
    query larger than ``limits`` (the defaults when None) are refused with 400 ``input_too_large``."""
    app_id = key.app_id
    # A completion app's turn (chatflow spec 6.1) is a chat turn of a one-message conversation; its query may be
    # empty (newer completion apps take their text from the inputs).
    mode = key.app_mode if key.app_mode == COMPLETION else MODE
    query = request.query.replace("\x00", "")
    check_sizes(query, request.inputs, limits or workflows.InputLimits())
    if not query and mode != COMPLETION:
        raise QueryRequired
    workflow_id = parse_workflow_id(request.workflow_id)
    try:
        version = await workflows.version_of(session, app_id, workflow_id, key.latest_workflow_id)
    except NotFound:
        if workflow_id is None:
            raise WorkflowNotPublished from None
        raise NotFound(f"Workflow not found with id: {request.workflow_id}") from None
    # Annotation replies are a chat feature: a matched annotation answers without a run.
    may_annotate = bool(embedders) and key.annotation_reply and mode != COMPLETION
    user = request.user or end_users.ANONYMOUS
    conversation_id = parse_conversation_id(request.conversation_id)
    locked: Locked | None = None
    if conversation_id is not None:
        # The turn's variables are seeded under the lock when it surely runs the graph.
        declared = None if may_annotate else variables.declared(version.dsl)
        locked = await _locked_conversation(session, app_id, user, conversation_id, declared)
        end_user_id = locked.end_user_id
    else:
        end_user_id = (await end_users.ensure(session, app_id, key.workspace_id, request.user)).id

    try:
        values = version.start_node.validate_inputs(request.inputs)
    except InputError as exc:
        raise InvalidParam(str(exc)) from None
    features = features_of(version.dsl)
    upload = features.get("file_upload")
    sent_files = request.files if isinstance(upload, Mapping) and upload.get("enabled") else None
    values, system_files = await resolve_run_files(
        session,
        files,
        app_id=app_id,
        user=request.user,
        variables=version.start_node.config.variables,
        dsl=version.dsl,
        inputs=values,
        files=sent_files,
    )

    now = utcnow()
    if conversation_id is None:
        conversation = Conversation(
            app_id=app_id,
            end_user_id=end_user_id,
            mode=mode,
            name=short_name(query),
            inputs=values,
            introduction=introduction(features, values),
        )
        session.add(conversation)
        await session.flush()
        conversation_id = conversation.id

    matched = (
        await annotation_replies.match_annotation(session, app_id, query, embedders=embedders)
        if may_annotate and embedders
        else None
    )
    metadata: dict[str, Any] = {"annotation_reply": None, "retriever_resources": [], "usage": zero_usage()}
    if matched is not None:
        await annotation_replies.record_hit(session, matched)
        metadata["annotation_reply"] = {
            "id": str(matched.id),
            "account": {"id": str(key.workspace_id), "name": "API"},
        }
    turn = Turn(
        message_id=uuid7(),
        conversation_id=conversation_id,
        end_user_id=end_user_id,
        user=request.user,
        run_id=None if matched is not None else uuid.uuid4(),
        created_at=now,
        answer=matched.answer if matched is not None else None,
        metadata=metadata,
    )
    message = {
        "message_id": turn.message_id,
        "message_conversation": conversation_id,
        "message_end_user": end_user_id,
        "message_mode": mode,
        "message_inputs": msgspec.json.encode(values).decode(),
        "message_query": query,
        "message_answer": turn.answer or "",
        "message_metadata": msgspec.json.encode(metadata).decode(),
        "message_created_at": now,
    }
    if turn.run_id is None:
        await session.execute(_INSERT_MESSAGE, {**message, "app_id": app_id, "id": None})
    else:
        # The run first, its message in the same statement (the message references the run).
        await _start_run(session, version, turn, locked, values, system_files, query, app_id, message)
    session.add_all(
        MessageFile(
            message_id=turn.message_id,
            belongs_to="user",
            type=str(f.get("type") or "custom"),
            transfer_method=str(f.get("transfer_method") or "local_file"),
            upload_file_id=_uuid(f.get("related_id")),
            url=f.get("remote_url"),
            file=f,
        )
        for f in system_files
    )
    if locked is None and request.auto_generate_name:
        await queue.defer_jobs(
            session,
            [
                queue.JobSpec(
                    task=queue.Task.GENERATE_CONVERSATION_NAME,
                    args={"conversation_id": str(conversation_id)},
                    schedule_at=now + NAMING_DELAY,
                )
            ],
        )
    return turn


#: A turn's message: the run's statement carries it (``:id`` is the run, ``:app_id`` the app), or it stands alone.
_MESSAGE_VALUES = """
    INSERT INTO messages (id, app_id, conversation_id, end_user_id, workflow_run_id, mode, inputs, query, answer,
                          message_metadata, created_at, updated_at)
    VALUES (:message_id, :app_id, :message_conversation, :message_end_user, :id, :message_mode,
            CAST(:message_inputs AS jsonb), :message_query, :message_answer, CAST(:message_metadata AS jsonb),
            :message_created_at, :message_created_at)
"""
_INSERT_MESSAGE = text(_MESSAGE_VALUES)


def check_sizes(query: str, inputs: Mapping[str, Any], limits: workflows.InputLimits) -> None:
    """The run input caps, on a turn: each input and the query (stored with the run as ``sys.query``, and in
    the message) at most ``MAX_VARIABLE_SIZE`` bytes of JSON, all of them together the run's total."""
    size = len(msgspec.json.encode(query))
    if size > limits.per_variable:
        raise workflows.InputTooLarge(
            f"The query is {size} bytes of JSON; a query may hold at most {limits.per_variable} bytes "
            "(MAX_VARIABLE_SIZE)."
        )
    workflows.check_input_sizes({**inputs, "sys.query": query}, limits)


async def _start_run(
    session: AsyncSession,
    version: workflows.Version,
    turn: Turn,
    locked: Locked | None,
    values: dict[str, Any],
    system_files: list[dict[str, Any]],
    query: str,
    app_id: uuid.UUID,
    message: dict[str, Any],
) -> None:
    """The turn's run: ``sys.*`` (spec 7.2), the conversation variables (seeded), and its first job; its message
    is written by the same statement."""
    assert turn.run_id is not None
    seeded = locked.values if locked is not None else None  # seeded under the conversation's lock
    conversation_values = (
        seeded
        if seeded is not None
        else await variables.seed(session, app_id, turn.conversation_id, variables.declared(version.dsl))
    )
    system = {
        "query": query,
        "files": system_files,
        "conversation_id": str(turn.conversation_id),
        "user_id": turn.user,
        "dialogue_count": (locked.messages if locked is not None else 0) + 1,
        "app_id": str(app_id),
        "workflow_id": str(version.id),
        "workflow_run_id": str(turn.run_id),
    }
    pools = {
        **version.environment,
        "conversation": {**version.environment["conversation"], **conversation_values},
    }
    state = initial_state(values, system, version.start.id, **pools)
    # Dify's chatflow runs show ``sys.*`` among their inputs (all but the conversation id).
    run_inputs = {**values, **{f"sys.{k}": v for k, v in system.items() if k != "conversation_id"}}
    await transitions.start(
        session,
        run_id=turn.run_id,
        app_id=app_id,
        workflow_id=version.id,
        inputs=run_inputs,
        user=turn.user,
        state=msgspec.to_builtins(state),
        created_at=turn.created_at,
        alongside=(_MESSAGE_VALUES, message),
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
