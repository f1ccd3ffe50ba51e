"""The ``history`` port (``HistoryPort``): a conversation's earlier turns, for nodes with ``memory``.

Turns of one conversation never run at once (``app/chat/turns.py``), so what a node reads here is exactly the
history committed before its turn started, whether it runs at once or after a pause.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.workflows.engine.nodes.base import RunInfo
from app.workflows.engine.nodes.llm_common import HistoryMessage
from app.workflows.events import reading

_NEWEST = text(
    "SELECT workflow_run_id, query, answer FROM messages "
    "WHERE conversation_id = :conversation AND app_id = :app ORDER BY created_at DESC, id DESC LIMIT :limit"
)


class ConversationHistory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], context_tokens: int = 0) -> None:
        self.sessions, self.context_tokens = sessions, context_tokens

    async def messages(self, run: RunInfo, conversation_id: str, limit: int) -> list[HistoryMessage]:
        try:
            conversation, app = uuid.UUID(conversation_id), uuid.UUID(run.app_id)
        except ValueError:
            return []
        async with reading(self.sessions) as session:
            rows = (
                await session.execute(_NEWEST, {"conversation": conversation, "app": app, "limit": limit})
            ).all()
        own = str(run.run_id)
        return [
            HistoryMessage(query=row.query, answer=row.answer)
            for row in reversed(rows)
            if str(row.workflow_run_id) != own
        ]
