"""The engine's ports built from settings: what nodes may reach outside the process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.files.documents import MB, SandboxDocuments
from app.files.ports import DatabaseFiles
from app.files.remote import remote_files
from app.files.signing import FileSigner
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval.port import KnowledgePort
from app.knowledge.retrieval.services import Retriever
from app.sandbox.client import Sandbox
from app.sandbox.errors import SandboxError
from app.settings import Settings
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import LLMPort, Ports
from app.workflows.engine.nodes.code import CodeLimits
from app.workflows.templates import SandboxTemplates


def code_limits(settings: Settings) -> CodeLimits:
    return CodeLimits(
        max_string_length=settings.code_max_string_length,
        max_number=settings.code_max_number,
        min_number=settings.code_min_number,
        max_precision=settings.code_max_precision,
        max_depth=settings.code_max_depth,
        max_string_array_length=settings.code_max_string_array_length,
        max_object_array_length=settings.code_max_object_array_length,
        max_number_array_length=settings.code_max_number_array_length,
    )


class SandboxCodePort:
    """The code node's port (``CodePort``): the worker's sandbox, its failures as node errors."""

    def __init__(self, sandbox: Sandbox, limits: CodeLimits) -> None:
        self.sandbox, self.limits = sandbox, limits

    async def run(self, language: str, code: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return await self.sandbox.run_code(language, code, inputs)
        except SandboxError as exc:
            raise NodeRunError(exc.message, exc.error_type) from None


def make_llm(settings: Settings, client: httpx.AsyncClient | None = None) -> LLMPort:
    """The OpenAI-compatible client (``LLMPort``) the settings name; ``client``: connections kept open between
    calls (``app.workflows.llm.model_client``)."""
    from app.workflows.llm import OpenAIChat

    return OpenAIChat(
        base_url=settings.openai_api_base,
        api_key=settings.openai_api_key,
        model_map=settings.llm_model_map,
        timeout=settings.llm_timeout_seconds,
        client=client,
        no_tool_models=settings.llm_no_tool_models,
    )


def make_ports(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    embedders: Embedders | None = None,
    sandbox: Sandbox | None = None,
    llm_client: httpx.AsyncClient | None = None,
) -> Ports:
    from app.chat.history import ConversationHistory
    from app.net.node_port import HttpNodePort

    llm = make_llm(settings, llm_client)
    retriever = files = history = None
    if sessions is not None:
        retriever = KnowledgePort(sessions, Retriever(embedders or Embedders(settings)))
        files = DatabaseFiles(sessions, FileSigner.of(settings), remote=remote_files(settings))
        history = ConversationHistory(sessions, settings.llm_context_tokens)
    code = documents = templates = None
    if sandbox is not None:
        code = SandboxCodePort(sandbox, code_limits(settings))
        templates = SandboxTemplates.from_settings(sandbox, settings)
        max_input = settings.upload_file_size_limit * MB
        documents = SandboxDocuments(sandbox, max_input_bytes=max_input, max_output_chars=2 * max_input)
    return Ports(
        llm=llm,
        retriever=retriever,
        code=code,
        http=HttpNodePort.from_settings(settings),
        files=files,
        documents=documents,
        history=history,
        templates=templates,
    )
