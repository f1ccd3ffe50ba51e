"""The engine's ports built from settings: what nodes may reach outside the process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.files.documents import MB, ThreadedDocuments
from app.files.ports import DatabaseFiles
from app.files.signing import FileSigner
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
    from app.workflows.llm import OpenAIChat

    llm = OpenAIChat(
        base_url=settings.openai_api_base,
        api_key=settings.openai_api_key,
        model_map=settings.llm_model_map,
        timeout=settings.llm_timeout_seconds,
    )
    retriever = files = None
    if sessions is not None:
        retriever = KnowledgePort(sessions, Retriever(embedders or Embedders(settings)))
        # TODO(lead): pass remote= an adapter of app/net's guarded client (app/files/remote.py)
        files = DatabaseFiles(sessions, FileSigner.of(settings))
    # TODO(lead): switch to the sandbox once app/sandbox lands (app/files/documents.py says how)
    max_input = settings.upload_file_size_limit * MB
    documents = ThreadedDocuments(max_input_bytes=max_input, max_output_chars=2 * max_input)
    return Ports(llm=llm, retriever=retriever, files=files, documents=documents)
