"""Chat jobs: naming a new conversation a moment after its first turn (queue ``workflows``)."""

from __future__ import annotations

import uuid

import procrastinate

from app.chat.naming import name_conversation
from db.queue import Task
from jobs.app import task


@task(Task.GENERATE_CONVERSATION_NAME, pass_context=True)
async def generate_conversation_name(context: procrastinate.JobContext, conversation_id: str) -> None:
    """Ask the default model for a conversation's title (idempotent; a deleted conversation is skipped)."""
    resources = context.additional_context["resources"]
    async with resources.sessions() as session:
        await name_conversation(
            session, resources.runtime.ports.llm, resources.settings, uuid.UUID(conversation_id)
        )
        await session.commit()
