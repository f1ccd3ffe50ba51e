"""The engine's ports built from settings: what nodes may reach outside the process."""

from __future__ import annotations

from app.settings import Settings
from app.workflows.engine.nodes.base import Ports


def make_ports(settings: Settings) -> Ports:
    from app.workflows.llm import OpenAIChat

    llm = OpenAIChat(
        base_url=settings.openai_api_base,
        api_key=settings.openai_api_key,
        model_map=settings.llm_model_map,
        timeout=settings.llm_timeout_seconds,
    )
    return Ports(llm=llm)
