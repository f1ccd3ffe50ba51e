"""The chat stream (chatflow spec 1.3-1.5, 9): a turn's run events, as stored, turned into Dify's chat events.

The run's event table stays the one source: a live stream, a reconnect (``Last-Event-ID``) and
``GET /v1/workflow/{run_id}/events`` all read it and transform each row here, so they agree. Each event gets
the chat envelope (``conversation_id``, ``message_id``, the message's ``created_at``); ``text_chunk`` becomes
``message``; and the run's end becomes the terminal group Dify's task pipeline produces — which Sluice always
delivers before closing:

* succeeded / partial-succeeded: ``message_end``, ``workflow_finished``
* failed: ``workflow_finished``, ``error`` (``invalid_param``, "Run failed: ...")
* stopped: ``workflow_finished``, ``message_end`` (the partial answer)
* paused: ``human_input_required`` ..., ``workflow_paused`` (the POST stream closes; the events endpoint follows
  the run across the pause)

Frames derived from one row share its position: only the last carries the row's ``id``, so a client that
reconnects between them gets the group again rather than losing its tail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.workflows.engine.statuses import RunStatus
from app.workflows.events import PING, Framed, Notices, Page, RunEventHub, reading, relay
from app.workflows.runs import event_log
from app.workflows.runs.pauses import PauseKinds
from app.workflows.runs.store import EventRow

RUN_FAILED = "Run failed: {}"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """What every event of one turn's stream carries."""

    message_id: str
    conversation_id: str | None
    created_at: int
    task_id: str
    end_user_id: str
    user: str
    mode: str = "advanced-chat"


class Frame(msgspec.Struct, frozen=True):
    body: bytes
    #: The stream ends after this frame.
    terminal: bool = False


def sse(body: dict[str, Any], seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def _base(env: Envelope, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "conversation_id": env.conversation_id,
        "message_id": env.message_id,
        "created_at": env.created_at,
    }


def message_event(env: Envelope, answer: str, selector: Any = None) -> dict[str, Any]:
    return {
        **_base(env, "message"),
        "task_id": env.task_id,
        "id": env.message_id,
        "answer": answer,
        "from_variable_selector": selector,
    }


def chunk_event(env: Envelope, data: dict[str, Any]) -> dict[str, Any]:
    """A ``text_chunk`` event's data as the chat ``message`` event."""
    return message_event(env, str(data.get("text") or ""), data.get("from_variable_selector"))


def message_end_event(env: Envelope, metadata: dict[str, Any], files: list[Any]) -> dict[str, Any]:
    return {
        **_base(env, "message_end"),
        "task_id": env.task_id,
        "id": env.message_id,
        "metadata": metadata,
        "files": files,
    }


def error_event(env: Envelope, code: str, status: int, message: str) -> dict[str, Any]:
    return {**_base(env, "error"), "code": code, "status": status, "message": message}


async def message_metadata(session: AsyncSession, message_id: str) -> dict[str, Any]:
    found = await session.scalar(
        text("SELECT message_metadata FROM messages WHERE id = :id"), {"id": uuid.UUID(message_id)}
    )
    return dict(found or {})


async def frames(
    session: AsyncSession, env: Envelope, run: uuid.UUID, rows: Sequence[EventRow], *, follow_pauses: bool
) -> list[tuple[int, Frame]]:
    """The frames of stored events (already described: values put back, form links added), by row."""
    out: list[tuple[int, Frame]] = []
    run_id = str(run)
    for seq, event, data in rows:
        if event == "text_chunk":
            out.append((seq, Frame(sse(chunk_event(env, data), seq))))
            continue
        common = {**_base(env, event), "task_id": env.task_id}
        if event == "workflow_finished":
            finished = {
                **data,
                "created_by": {"id": env.end_user_id, "user": env.user},
                "files": list((data.get("outputs") or {}).get("files") or []),
            }
            body = {**common, "workflow_run_id": run_id, "data": finished}
            status = data.get("status")
            if status == RunStatus.FAILED:
                error = error_event(env, "invalid_param", 400, RUN_FAILED.format(data.get("error")))
                out += [(seq, Frame(sse(body))), (seq, Frame(sse(error, seq), terminal=True))]
            else:
                end = message_end_event(
                    env, await message_metadata(session, env.message_id), finished["files"]
                )
                if status == RunStatus.STOPPED:
                    out += [(seq, Frame(sse(body))), (seq, Frame(sse(end, seq), terminal=True))]
                else:
                    out += [(seq, Frame(sse(end))), (seq, Frame(sse(body, seq), terminal=True))]
            continue
        body = {**common, "workflow_run_id": run_id, "data": data}
        terminal = event == "workflow_paused" and not follow_pauses
        out.append((seq, Frame(sse(body, seq), terminal=terminal)))
    return out


async def follow(
    sessions: async_sessionmaker[AsyncSession],
    hub: RunEventHub,
    kinds: PauseKinds,
    env: Envelope,
    run_id: uuid.UUID,
    after_seq: int = 0,
    *,
    follow_pauses: bool = False,
    listening: Notices | None = None,
) -> AsyncIterator[bytes]:
    """A turn's chat stream: a ping at once, every event after ``after_seq``, then live ones, until its terminal
    group (or, with ``follow_pauses``, across pauses until the run ends). ``listening``: see
    :func:`app.workflows.events.relay`."""

    def carry(rows: list[EventRow]) -> list[Framed]:
        return [(seq, sse(chunk_event(env, data), seq), False) for seq, _, data in rows]

    async def read(last: int) -> Page:
        async with reading(sessions) as session:
            # One snapshot of status and events (see app.workflows.events.relay).
            status, rows = await event_log.status_and_events(session, run_id, last)
            out: list[Framed] = []
            if rows:
                described = await kinds.describe_events(
                    session, await event_log.hydrate_events(session, run_id, rows)
                )
                framed = await frames(session, env, run_id, described, follow_pauses=follow_pauses)
                out = [(seq, frame.body, frame.terminal) for seq, frame in framed]
        return Page(status, out, full=len(rows) == event_log.EVENTS_PAGE)

    yield PING
    async for body in relay(hub, run_id, after_seq, read, carry, patient=False, listening=listening):
        yield body


async def answered(env: Envelope, answer: str, metadata: dict[str, Any]) -> AsyncIterator[bytes]:
    """The stream of a turn answered without a run (an annotation): ``message``, ``message_end``."""
    yield PING
    yield sse(message_event(env, answer))
    yield sse(message_end_event(env, {k: v for k, v in metadata.items() if k != "annotation_reply"}, []))
