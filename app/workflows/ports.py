"""The engine's ports built from settings: what nodes may reach outside the process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.providers import Embedders
from app.knowledge.retrieval.port import KnowledgePort
from app.knowledge.retrieval.service import Retriever
from app.settings import Settings
from app.workflows.engine.nodes.base import Ports


def make_ports(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    embedders: Embedders | None = None,
) -> Ports:
    from app.net.node_port import HttpNodePort
    from app.workflows.llm import OpenAIChat

    llm = OpenAIChat(
        base_url=settings.openai_api_base,
        api_key=settings.openai_api_key,
        model_map=settings.llm_model_map,
        timeout=settings.llm_timeout_seconds,
        no_tool_models=settings.llm_no_tool_models,
    )
    retriever = None
    if sessions is not None:
        retriever = KnowledgePort(sessions, Retriever(embedders or Embedders(settings)))
    return Ports(llm=llm, retriever=retriever, http=HttpNodePort.from_settings(settings))
