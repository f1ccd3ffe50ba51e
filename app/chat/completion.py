"""Completion apps' Service API routes (chatflow spec 6.1). A completion app (imported from a ``mode: completion``
DSL, see :mod:`app.workflows.completion_dsl`) runs each message as the one turn of a conversation of its own, so
it shares the chat turn's checks, records and stream; what differs is the outside: no ``conversation_id`` in the
answer or the events, ``mode: "completion"``, and only the message events Dify's easy-UI pipeline sends
(``message``, ``message_replace``, ``message_file``, ``message_end``, ``tts_message*``, ``error``; pings). An app
of another mode answers these routes as Dify does: 400 ``app_unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, post
from litestar.response import Response, Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chat import turns
from app.chat.controllers import (
    SSE_HEADERS,
    blocking_answer,
    envelope,
    stop_own_turn,
)
from app.chat.schemas import ChatRequest, CompletionRequest, UserBody
from app.chat.stream import follow
from app.errors import responses
from app.files.remote import remote_files
from app.files.run_inputs import FileContext
from app.files.signing import FileSigner
from app.schemas import Success
from app.settings import Settings
from app.tenancy.modes import require_completion_app
from app.tenancy.services import AppKey
from app.workflows.events import RunEventHub
from app.workflows.runs.pauses import Extensions

#: The events of a completion stream (Dify's ``EasyUIBasedGenerateTaskPipeline``); the workflow's own events of
#: the run behind it are not sent.
COMPLETION_EVENTS = frozenset(
    {"message", "message_replace", "message_file", "message_end", "tts_message", "tts_message_end", "error"}
)


class CompletionMessage(msgspec.Struct, kw_only=True):
    """The blocking answer (``CompletionResponse``)."""

    event: str
    task_id: str
    id: str
    message_id: str
    mode: str
    answer: str
    metadata: dict[str, Any]
    created_at: int


def completion_frame(frame: bytes) -> bytes | None:
    """One chat-stream frame as the completion stream has it: without ``conversation_id``, or None to drop it."""
    lines = frame.decode().split("\n")
    data = [line for line in lines if line.startswith("data: ")]
    if not data:
        return frame  # a ping (or a comment): as is
    body = json.loads(data[0][len("data: ") :])
    if not isinstance(body, dict) or body.get("event") not in COMPLETION_EVENTS:
        return None
    body.pop("conversation_id", None)
    head = [line for line in lines if line.startswith("id: ")]
    return ("".join(h + "\n" for h in head) + f"data: {json.dumps(body, ensure_ascii=False)}\n\n").encode()


async def completion_stream(chat: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for frame in chat:
        out = completion_frame(frame)
        if out is not None:
            yield out


class CompletionController(Controller):
    path = "/v1"
    tags = ["service api: completion"]

    @post("/completion-messages", status_code=200, responses=responses(400, 401, 404))
    async def completion(
        self,
        db_session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        hub: RunEventHub,
        extensions: Extensions,
        key: AppKey,
        data: CompletionRequest,
    ) -> Response[Any]:
        """Send a completion message (completion apps only, else 400 `app_unavailable`). `response_mode:
        streaming` answers with Server-Sent Events; every check is made before the stream opens."""
        require_completion_app(key)
        files = FileContext(FileSigner.of(settings), remote=remote_files(settings))
        chat = ChatRequest(
            query=data.query,
            inputs=data.inputs,
            user=data.user,
            response_mode=data.response_mode,
            files=data.files,
            auto_generate_name=False,
        )
        turn = await turns.start_turn(db_session, key, chat, files, None)
        assert turn.run_id is not None  # no annotation reply answers a completion
        # listening before the commit: nothing of the run comes before its first notice
        listening = hub.listen(turn.run_id)
        await db_session.commit()  # the run's job may start now
        if data.response_mode != "streaming":
            answer = await blocking_answer(sessions, hub, settings, turn, listening)
            return Response(
                CompletionMessage(
                    event="message",
                    task_id=answer.task_id,
                    id=answer.id,
                    message_id=answer.message_id,
                    mode="completion",
                    answer=answer.answer,
                    metadata=answer.metadata,
                    created_at=answer.created_at,
                )
            )
        env = msgspec.structs.replace(envelope(turn, None, turn.user), mode="completion")
        chat_stream = follow(sessions, hub, extensions.kinds, env, turn.run_id, listening=listening)
        return Stream(completion_stream(chat_stream), media_type="text/event-stream", headers=SSE_HEADERS)

    @post("/completion-messages/{task_id:str}/stop", status_code=200, responses=responses(400, 401))
    async def stop(
        self,
        db_session: AsyncSession,
        extensions: Extensions,
        key: AppKey,
        task_id: str,
        data: UserBody,
    ) -> Success:
        """Stop a completion (completion apps only). Always `{"result": "success"}`; only the user who sent the
        message can stop it."""
        require_completion_app(key)
        await stop_own_turn(db_session, extensions, key, task_id, data.user)
        return Success()
