"""Chat Service API (app key): chat messages (blocking and streaming), stop, and a turn's event stream.

Everything is checked before a stream opens (chatflow spec 9): a request that cannot start a turn gets the 4xx
JSON Dify's blocking mode would give. The turn's records and its run's job are committed before the response
starts, so the stream reads what the worker writes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.params import Parameter
from litestar.response import Response, Stream
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import provide_app_key, request_session
from app.chat import end_users, messages, turns
from app.chat.schemas import ChatMessage, ChatRequest, PausedChatMessage, UserBody
from app.chat.stream import Envelope, answered, follow
from app.clock import utcnow
from app.errors import InvalidParam, NotFound, responses
from app.files.remote import remote_files
from app.files.run_inputs import FileContext
from app.files.signing import FileSigner
from app.human_input import forms as human_forms
from app.human_input.forms import FormStatus
from app.schemas import NO_NUL, Success, unix
from app.settings import Settings
from app.state import SluiceState
from app.tenancy.modes import require_chat_app
from app.tenancy.services import AppKey
from app.workflows.engine.statuses import NodeStatus, RunStatus
from app.workflows.events import Notices, RunEventHub, wait_for_run
from app.workflows.runs import transitions
from app.workflows.runs.pauses import Extensions
from app.workflows.services import InputLimits
from db.models import EndUser, HumanInputForm, Message

#: A blocking call returns when the turn ends or pauses; past this it answers with what the turn has so far.
BLOCKING_TIMEOUT_SECONDS = 600.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STOPPED_BY_USER = "Stopped by user."


def envelope(message: Message | turns.Turn, end_user: EndUser | None, user: str) -> Envelope:
    if isinstance(message, turns.Turn):
        return Envelope(
            message_id=str(message.message_id),
            conversation_id=str(message.conversation_id),
            created_at=unix(message.created_at) or 0,
            task_id=str(message.task_id),
            end_user_id=str(message.end_user_id),
            user=message.user,
        )
    return Envelope(
        message_id=str(message.id),
        conversation_id=str(message.conversation_id) if message.conversation_id else None,
        created_at=unix(message.created_at) or 0,
        task_id=str(message.workflow_run_id or message.id),
        end_user_id=str(message.end_user_id),
        user=end_user.session_id if end_user else user,
        mode=message.mode,
    )


async def blocking_answer(
    sessions: async_sessionmaker[AsyncSession],
    hub: RunEventHub,
    settings: Settings,
    turn: turns.Turn,
    listening: Notices | None = None,
) -> ChatMessage | PausedChatMessage:
    """Wait for the turn's run to end (or pause) and answer as Dify's blocking mode does (``listening``: a
    waiter on the run taken before its start was committed)."""
    env = envelope(turn, None, turn.user)
    metadata = dict(turn.metadata)
    answer = turn.answer or ""
    if turn.run_id is not None:
        run = await wait_for_run(sessions, hub, turn.run_id, BLOCKING_TIMEOUT_SECONDS, subscribed=listening)
        if run.status == RunStatus.FAILED:
            raise InvalidParam(f"Run failed: {run.error}")
        async with sessions() as session:
            message = await session.get_one(Message, turn.message_id)
            answer, metadata = message.answer, dict(message.message_metadata or {})
            if run.status == RunStatus.PAUSED:
                return PausedChatMessage(
                    event="workflow_paused",
                    task_id=env.task_id,
                    id=env.message_id,
                    message_id=env.message_id,
                    conversation_id=env.conversation_id,
                    mode=env.mode,
                    answer=answer,
                    metadata=metadata,
                    created_at=env.created_at,
                    workflow_run_id=str(run.id),
                    data={
                        "id": env.message_id,
                        "mode": env.mode,
                        "conversation_id": env.conversation_id,
                        "message_id": env.message_id,
                        "workflow_run_id": str(run.id),
                        "answer": answer,
                        "metadata": metadata,
                        "created_at": env.created_at,
                        "paused_nodes": [
                            n
                            for n, s in ((run.state or {}).get("nodes") or {}).items()
                            if s.get("status") == NodeStatus.PAUSED
                        ],
                        "reasons": await pause_reasons(session, settings, run.id),
                        "status": RunStatus.PAUSED,
                        "elapsed_time": round(run.elapsed_time, 6),
                        "total_tokens": run.total_tokens,
                        "total_steps": run.total_steps,
                    },
                )
    else:
        metadata.pop("annotation_reply", None)
    return ChatMessage(
        event="message",
        task_id=env.task_id,
        id=env.message_id,
        message_id=env.message_id,
        conversation_id=env.conversation_id,
        mode=env.mode,
        answer=answer,
        metadata=metadata,
        created_at=env.created_at,
    )


async def pause_reasons(session: AsyncSession, settings: Settings, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The waiting forms of a paused turn, as Dify 1.14's ``PauseReason`` objects."""
    found = list(
        (
            await session.scalars(
                select(HumanInputForm)
                .where(HumanInputForm.run_id == run_id, HumanInputForm.status == FormStatus.WAITING)
                .order_by(HumanInputForm.created_at, HumanInputForm.node_id)
            )
        ).all()
    )
    tokens = await human_forms.webapp_tokens(session, settings, [f.id for f in found])
    return [
        {
            "TYPE": "human_input_required",
            **human_forms.required_event(form),
            "display_in_ui": True,
            "form_token": tokens.get(form.id),
        }
        for form in found
    ]


class ChatController(Controller):
    path = "/v1"
    tags = ["service api: chat"]

    @post("/chat-messages", status_code=200, responses=responses(400, 401, 404, 409, 413, 429))
    async def chat(
        self, request: Request[Any, Any, Any], state: SluiceState, data: ChatRequest
    ) -> Response[Any]:
        """Send a chat message. `response_mode: streaming` answers with Server-Sent Events; every check is made
        before the stream opens. Inputs and the query obey the run input caps (400 `input_too_large`); a
        streaming turn holds one of its key's event streams (`SLUICE_MAX_EVENT_STREAMS_PER_KEY`, else 429
        `too_many_streams` and no turn starts)."""
        # On the first token's path: the key and the request's session come from the request, the shared objects
        # from `state` (both parameters Litestar reserves). Asked for as dependencies, they would be resolved in a
        # task group of their own, ~0.3 ms a request (litestar-org/litestar#4563; measured side by side).
        key, db_session = provide_app_key(request), request_session(request)
        require_chat_app(key)
        settings, slots = state.settings, state.stream_slots
        files = FileContext(FileSigner.of(settings), remote=remote_files(settings))
        turn = await turns.start_turn(
            db_session, key, data, files, state.retriever.embedders, limits=InputLimits.of(settings)
        )
        # A streaming turn holds a stream slot, taken in the turn's transaction: over the key's cap, no turn starts.
        slot = await slots.take_in(db_session, key.key_id) if data.response_mode == "streaming" else None
        # The turn's follower (the stream, or the blocking wait) listens before the commit: nothing the run does can
        # come before its first notice.
        listening = state.hub.listen(turn.run_id) if turn.run_id is not None else None
        try:
            # the run's job may start now; the response must not wait for the request's end
            await db_session.commit()
        except BaseException:
            if slot is not None:
                await slots.release(slot)
            raise
        if slot is None:
            return Response(await blocking_answer(state.sessions(), state.hub, settings, turn, listening))
        env = envelope(turn, None, turn.user)
        stream: AsyncIterator[bytes]
        if turn.run_id is None:
            stream = answered(env, turn.answer or "", turn.metadata)
        else:
            kinds = state.extensions.kinds
            stream = follow(state.sessions(), state.hub, kinds, env, turn.run_id, listening=listening)
        return Stream(slots.guard(slot, stream), media_type="text/event-stream", headers=SSE_HEADERS)

    @post("/chat-messages/{task_id:str}/stop", status_code=200, responses=responses(400, 401))
    async def stop(
        self,
        db_session: AsyncSession,
        extensions: Extensions,
        key: AppKey,
        task_id: str,
        data: UserBody,
    ) -> Success:
        """Stop a turn (its run, including a model call in flight, and a paused turn's forms). Always
        `{"result": "success"}`; only the user who started the turn can stop it."""
        require_chat_app(key)
        await stop_own_turn(db_session, extensions, key, task_id, data.user)
        return Success()


async def stop_own_turn(
    db_session: AsyncSession, extensions: Extensions, key: AppKey, task_id: str, user: str | None
) -> None:
    """Stop the run ``task_id`` when it is a turn of ``user`` (a chat or a completion message); anything else,
    an id that is not one included, changes nothing (Dify answers success either way)."""
    try:
        run_id = uuid.UUID(task_id)
    except ValueError:
        return
    end_user = await end_users.find(db_session, key.app_id, user)
    if await messages.of_run(db_session, key.app_id, end_user, run_id) is not None:
        await transitions.stop(db_session, extensions, [run_id], STOPPED_BY_USER, utcnow())


async def run_events(
    state: SluiceState,
    db_session: AsyncSession,
    key: AppKey,
    run_id: uuid.UUID,
    last_event_id: int | None,
    user: str | None,
) -> Stream:
    """``GET /v1/workflow/{run_id}/events`` of an advanced-chat app: the turn's chat stream, followed across
    pauses to its end. The run must be a turn of ``user`` (anyone else: 404)."""
    end_user = await end_users.find(db_session, key.app_id, user)
    message = await messages.of_run(db_session, key.app_id, end_user, run_id)
    if message is None or end_user is None:
        raise NotFound("Workflow run not found.")
    slots = state.stream_slots
    slot = await slots.acquire(key.key_id)
    stream = follow(
        state.sessions(),
        state.hub,
        state.extensions.kinds,
        envelope(message, end_user, user or ""),
        run_id,
        last_event_id or 0,
        follow_pauses=True,
    )
    return Stream(slots.guard(slot, stream), media_type="text/event-stream", headers=SSE_HEADERS)


UserQuery = Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)]
