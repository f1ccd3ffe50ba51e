"""The end of a chat turn, written with the end of its run (an end hook of the run lifecycle, ``runs/pauses.py``).

Called in the transaction that finishes, fails, stops or pauses runs, after their compare-and-set won, so a
turn's message can never disagree with its run:

* the message gets its answer — every ``message`` chunk the run streamed, read back from the run's event log
  (the one record of what the client was sent) — its usage summed over the run's model calls, its retriever
  resources, and its status: ``normal`` (succeeded, or stopped with the partial answer), ``error`` (failed:
  the error kept, the partial answer not, as in Dify), ``paused`` (the partial answer so far);
* the conversation variables that the run's assigners wrote get their final values — only when the turn ends
  well (succeeded, partial-succeeded, or stopped: what was committed by then). A failed turn writes none, and a
  paused turn writes them when it ends. (Dify writes each assigner's result as it happens, so a failed turn
  keeps half of its writes; Sluice keeps a turn's writes together.)
* the files the answer produced become the message's assistant files.

Runs that are not chat turns have no message and are left alone.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.messages import MessageStatus
from app.chat.usage import usage
from app.clock import utcnow
from app.settings import Settings
from app.workflows.engine.state import CHAT_MODE
from app.workflows.engine.statuses import RunStatus
from app.workflows.runs import event_log
from app.workflows.runs.pauses import RunEnd

#: Retriever resource fields as message metadata keeps them (chatflow spec 1.2).
RESOURCE_FIELDS = (
    "position",
    "dataset_id",
    "dataset_name",
    "document_id",
    "document_name",
    "data_source_type",
    "segment_id",
    "retriever_from",
    "score",
    "hit_count",
    "word_count",
    "segment_position",
    "index_node_hash",
    "content",
    "page",
    "doc_metadata",
    "title",
    "files",
    "summary",
)
WRITES_VARIABLES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED, RunStatus.STOPPED)
#: the status of a turn's message when its run ended (or paused) so; any other: normal
MESSAGE_STATUS = {RunStatus.FAILED: MessageStatus.ERROR, RunStatus.PAUSED: MessageStatus.PAUSED}

#: Everything the end needs of each turn, in one round trip (the message row locked).
_TURNS = text(
    """
    SELECT m.id, m.workflow_run_id AS run_id, m.conversation_id, m.created_at,
        (SELECT coalesce(string_agg(e.data->>'text', '' ORDER BY e.seq), '')
         FROM workflow_run_events e WHERE e.run_id = m.workflow_run_id AND e.event = 'text_chunk') AS answer,
        (SELECT json_build_object('first', min(e.created_at), 'last', max(e.created_at))
         FROM workflow_run_events e WHERE e.run_id = m.workflow_run_id AND e.event = 'text_chunk') AS chunks,
        (SELECT json_build_object(
                    'prompt', coalesce(sum((u.usage->>'prompt_tokens')::bigint), 0),
                    'completion', coalesce(sum((u.usage->>'completion_tokens')::bigint), 0),
                    'total', coalesce(sum((u.usage->>'total_tokens')::bigint), 0),
                    'latency', coalesce(sum((u.usage->>'latency')::float8), 0))
         FROM workflow_node_executions x,
              LATERAL (SELECT coalesce(x.process_data->'usage', x.outputs->'usage') AS usage) u
         WHERE x.run_id = m.workflow_run_id AND jsonb_typeof(u.usage) = 'object') AS usage,
        (SELECT coalesce(json_agg(x.process_data->'retriever_resources' ORDER BY x.index), '[]')
         FROM workflow_node_executions x
         WHERE x.run_id = m.workflow_run_id AND jsonb_typeof(x.process_data->'retriever_resources') = 'array')
            AS resources,
        (SELECT coalesce(json_agg(x.process_data->'__updated_variables'), '[]')
         FROM workflow_node_executions x
         WHERE x.run_id = m.workflow_run_id AND x.node_type = 'assigner' AND x.status = 'succeeded'
           AND jsonb_typeof(x.process_data->'__updated_variables') = 'array') AS written,
        coalesce((w.dsl->'workflow'->'features'->'retriever_resource'->>'enabled')::boolean, false) AS cite
    FROM messages m
    JOIN workflow_runs r ON r.id = m.workflow_run_id
    JOIN workflows w ON w.id = r.workflow_id
    WHERE m.workflow_run_id = ANY(:ids)
    ORDER BY m.id
    FOR UPDATE OF m
    """
)

_UPDATE_MESSAGES = text(
    """
    UPDATE messages m SET answer = d.answer, status = d.status, error = d.error,
        message_tokens = d.message_tokens, answer_tokens = d.answer_tokens,
        provider_response_latency = d.latency, message_metadata = d.metadata, updated_at = now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(id uuid, answer text, status text, error text,
        message_tokens int, answer_tokens int, latency float8, metadata jsonb)
    WHERE m.id = d.id
    """
)

_UPDATE_VARIABLES = text(
    """
    UPDATE conversation_variables v SET value = d.value, updated_at = now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(conversation_id uuid, name text, value jsonb)
    WHERE v.conversation_id = d.conversation_id AND v.name = d.name
    """
)

_INSERT_FILES = text(
    """
    INSERT INTO message_files (id, message_id, belongs_to, type, transfer_method, upload_file_id, url, file,
                               created_at, updated_at)
    SELECT gen_random_uuid(), d.message_id, 'assistant', coalesce(d.file->>'type', 'custom'),
           coalesce(d.file->>'transfer_method', 'tool_file'),
           (SELECT u.id FROM upload_files u WHERE u.id::text = d.file->>'related_id'),
           d.file->>'remote_url', d.file, now(), now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(message_id uuid, file jsonb)
    """
)


def retriever_resources(groups: Sequence[Any]) -> list[dict[str, Any]]:
    """Every model call's citations, de-duplicated by (dataset, document), numbered 1..n."""
    seen: set[tuple[Any, Any]] = set()
    out: list[dict[str, Any]] = []
    for group in groups:
        for item in group if isinstance(group, list) else []:
            if not isinstance(item, dict):
                continue
            key = (item.get("dataset_id"), item.get("document_id"))
            if key in seen:
                continue
            seen.add(key)
            out.append({**{f: item.get(f) for f in RESOURCE_FIELDS}, "position": len(out) + 1})
    return out


class ChatTurnEnds:
    """The end hook (``app/wiring.py``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def ended(self, session: AsyncSession, ends: Sequence[RunEnd]) -> None:
        # a workflow app's run has no message: skip the lookup when the runner said which mode ran
        by_run = {end.run.id: end for end in ends if end.mode in (None, CHAT_MODE)}
        if not by_run:
            return
        rows = (await session.execute(_TURNS, {"ids": list(by_run)})).all()
        if not rows:
            return
        now = utcnow()
        messages: list[dict[str, Any]] = []
        written: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        for row in rows:
            end = by_run[row.run_id]
            spent = row.usage or {}
            first, last = _times(row.chunks)
            spent_usage = usage(
                int(spent.get("prompt") or 0),
                int(spent.get("completion") or 0),
                int(spent.get("total") or 0),
                float(spent.get("latency") or 0.0),
                _seconds(first, row.created_at),
                _seconds(last, first),
            )
            metadata = {
                "annotation_reply": None,
                "retriever_resources": retriever_resources(row.resources or []) if row.cite else [],
                "usage": spent_usage,
            }
            failed = end.status == RunStatus.FAILED
            messages.append(
                {
                    "id": str(row.id),
                    "answer": "" if failed else row.answer,
                    "status": MESSAGE_STATUS.get(end.status, MessageStatus.NORMAL),
                    "error": end.error if failed else None,
                    "message_tokens": spent_usage["prompt_tokens"],
                    "answer_tokens": spent_usage["completion_tokens"],
                    "latency": (now - row.created_at).total_seconds(),
                    "metadata": metadata,
                }
            )
            if end.status in WRITES_VARIABLES and row.conversation_id is not None:
                names = _written_names(row.written or [])
                if names:
                    values = await _conversation_pool(session, end)
                    written += [
                        {"conversation_id": str(row.conversation_id), "name": name, "value": values.get(name)}
                        for name in sorted(names)
                        if name in values
                    ]
            if end.status != RunStatus.PAUSED and not failed:
                produced = (end.outputs or {}).get("files")
                files += [
                    {"message_id": str(row.id), "file": f}
                    for f in (produced if isinstance(produced, list) else [])
                    if isinstance(f, dict)
                ]
        await session.execute(_UPDATE_MESSAGES, {"rows": msgspec.json.encode(messages).decode()})
        if written:
            await session.execute(_UPDATE_VARIABLES, {"rows": msgspec.json.encode(written).decode()})
        if files:
            await session.execute(_INSERT_FILES, {"rows": msgspec.json.encode(files).decode()})


def _written_names(groups: Sequence[Any]) -> set[str]:
    names: set[str] = set()
    for group in groups:
        for item in group if isinstance(group, list) else []:
            selector = item.get("selector") if isinstance(item, dict) else None
            if isinstance(selector, list) and len(selector) == 2 and selector[0] == "conversation":
                names.add(str(selector[1]))
    return names


async def _conversation_pool(session: AsyncSession, end: RunEnd) -> dict[str, Any]:
    """The run's ``conversation`` variables as it ended (a stopped run: as its last checkpoint left them)."""
    if end.state is not None:
        return dict(end.state.pool.get("conversation") or {})
    pool = (end.run.state or {}).get("pool") or {}
    conversation = pool.get("conversation") if isinstance(pool, dict) else None
    if not isinstance(conversation, dict):
        return {}
    return dict(await event_log.hydrate(session, end.run.id, conversation))


def _times(chunks: Any) -> tuple[Any, Any]:
    if not isinstance(chunks, dict):
        return None, None
    return _ts(chunks.get("first")), _ts(chunks.get("last"))


def _ts(value: Any) -> datetime.datetime | None:
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value if isinstance(value, datetime.datetime) else None


def _seconds(later: Any, earlier: Any) -> float | None:
    if later is None or earlier is None:
        return None
    return round(max(0.0, (later - earlier).total_seconds()), 3)
