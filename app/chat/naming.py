"""Conversation names (chatflow spec 7.7) and suggested questions (3.4): the two small model calls of chat apps.

Names: a new conversation is first named after its query (cut at 20 characters); about a second later a job asks
the default model for a title ("intention + subject", in the query's language) and keeps it when the model gave
one. ``POST .../name {auto_generate: true}`` asks the same, synchronously. A model that fails or rambles never
fails a request: the name falls back to the query.

The default model is ``SLUICE_DEFAULT_LLM_MODEL``, else the model of the app's first LLM node (Sluice has no
workspace model settings).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings
from app.workflows.engine.nodes.base import LLMPort
from app.workflows.engine.nodes.llm_common import first_json_object
from db.models import Conversation, Message, Workflow

log = structlog.get_logger()

MAX_NAME = 75
NAME_PROMPT = """You give conversations short titles.
Read the user input below and:
1. Work out which language it is written in; the title must be in that same language.
2. Describe it as "intention + subject" in a short, natural phrase (a question may start with a fitting emoji).
3. Reply with a JSON object and nothing else, with exactly these keys:
{"Language Type": "<the language>", "Your Reasoning": "<one sentence>", "Your Output": "<the title>"}

User Input: """
SUGGEST_PROMPT = """Predict the three questions the human is most likely to ask next, each one short.
Write them in the same language as the assistant's latest answer.
Reply with a JSON array of three strings and nothing else, like ["question 1", "question 2", "question 3"].
"""
#: How much of the conversation the suggestions see (Dify: 3 turns, 3000 tokens).
SUGGEST_TURNS = 3
SUGGEST_MAX_CHARS = 12000


def default_model(settings: Settings, graph: Mapping[str, Any]) -> str | None:
    if settings.default_llm_model:
        return settings.default_llm_model
    for node in graph.get("nodes") or []:
        data = node.get("data") if isinstance(node, Mapping) else None
        if isinstance(data, Mapping) and data.get("type") == "llm":
            model = data.get("model")
            if isinstance(model, Mapping) and model.get("name"):
                return str(model["name"])
    return None


#: A new conversation's provisional name: its first query, cut at this many characters.
NAME_LENGTH = 20


def short_name(query: str) -> str:
    """The name a conversation gets when it starts, until the naming job (or its owner) gives a better one."""
    return query[:NAME_LENGTH] + "…" if len(query) > NAME_LENGTH else query


def fallback_name(query: str) -> str:
    return query[:47] + "..." if len(query) > 50 else query


def _prompt_query(query: str) -> str:
    query = query.replace("\n", " ")
    if len(query) > 2000:
        query = query[:300] + "...[TRUNCATED]..." + query[-300:]
    return query


async def generate_name(llm: LLMPort | None, model: str | None, query: str) -> str:
    """A title for ``query``; the query itself (shortened) when the model fails or gives none."""
    if llm is None or not model:
        return fallback_name(query)
    try:
        reply = await llm.chat(
            model,
            [{"role": "user", "content": NAME_PROMPT + _prompt_query(query)}],
            {"max_tokens": 500, "temperature": 1},
            stream=False,
        )
    except Exception as exc:  # any model failure: the query names the conversation
        log.info("conversation_name_failed", error=str(exc))
        return fallback_name(query)
    if not reply.text.strip():
        return ""
    parsed = first_json_object(reply.text)
    output = parsed.get("Your Output") if parsed else None
    name = (output if isinstance(output, str) and output.strip() else query).strip()
    return name[:MAX_NAME] + "..." if len(name) > MAX_NAME else name


async def graph_of(session: AsyncSession, conversation_id: uuid.UUID) -> dict[str, Any]:
    graph = await session.scalar(
        select(Workflow.graph)
        .join(Conversation, Conversation.app_id == Workflow.app_id)
        .where(Conversation.id == conversation_id)
        .order_by(Workflow.version.desc())
        .limit(1)
    )
    return graph or {}


async def first_query(session: AsyncSession, conversation_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(Message.query)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at, Message.id)
        .limit(1)
    )


async def name_conversation(
    session: AsyncSession, llm: LLMPort | None, settings: Settings, conversation_id: uuid.UUID
) -> str | None:
    """The background naming of a new conversation (idempotent: a deleted conversation is skipped). Only the
    provisional name is replaced: a name its owner set meanwhile (``POST .../name``) stays."""
    query = await first_query(session, conversation_id)
    if query is None:
        return None
    name = await generate_name(llm, default_model(settings, await graph_of(session, conversation_id)), query)
    named = await session.execute(
        text("UPDATE conversations SET name = :name WHERE id = :id AND name = :provisional RETURNING id"),
        {"name": name, "id": conversation_id, "provisional": short_name(query)},
    )
    return name if named.first() is not None else None


async def suggest_questions(
    llm: LLMPort | None, model: str | None, history: list[tuple[str, str]], instruction: str | None = None
) -> list[str]:
    """Three likely next questions after ``history`` ((query, answer) turns, oldest first); [] on any failure."""
    if llm is None or not model:
        return []
    lines = []
    for query, answer in history[-SUGGEST_TURNS:]:
        lines += [f"Human: {query}", f"Assistant: {answer}"]
    histories = "\n".join(lines)[-SUGGEST_MAX_CHARS:]
    prompt = f"{histories}\n{instruction or SUGGEST_PROMPT}"
    try:
        reply = await llm.chat(
            model, [{"role": "user", "content": prompt}], {"max_tokens": 2560, "temperature": 0}, stream=False
        )
    except Exception as exc:
        log.info("suggested_questions_failed", error=str(exc))
        return []
    start, end = reply.text.find("["), reply.text.rfind("]")
    if start < 0 or end <= start:
        return []
    try:
        questions = json.loads(reply.text[start : end + 1])
    except ValueError:
        return []
    if not isinstance(questions, list):
        return []
    return [q.strip() for q in questions if isinstance(q, str) and q.strip()]
