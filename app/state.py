"""The objects one API process shares between requests, and how handlers get them: by name, as typed parameters.

``create_app`` builds a :class:`SluiceState` (``app.state``); :data:`DEPENDENCIES` are the app-level
``Provide``s over it, so a handler declares ``settings: Settings`` or ``hub: RunEventHub`` and never reads
``request.app.state``. The request's database session (``db_session``) and the engine (``db_engine``) come from
advanced-alchemy's plugin; ``sessions`` makes sessions of their own for work that outlives the request's (a
blocking wait, an event stream). The API key comes from the router that checked it (``app/routers.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Dependency
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval.services import Retriever
from app.settings import Settings
from app.tenancy.services import AppKey
from app.workflows.engine.nodes.base import LLMPort
from app.workflows.events import RunEventHub
from app.workflows.runs.pauses import Extensions
from app.workflows.streams import StreamSlots

#: The event stream of a run whose app mode has its own (``GET /v1/workflow/{run_id}/events`` of a chat turn):
#: called as ``(state, db_session, key, run_id, last_event_id, user)``.
RunEventStream = Callable[
    ["SluiceState", AsyncSession, AppKey, uuid.UUID, int | None, str | None], Awaitable[Stream]
]
#: The model client as a handler parameter: a Protocol, which Litestar cannot check an instance against.
LLM = Annotated[LLMPort | None, Dependency(skip_validation=True)]


class SluiceState(State):
    """``app.state`` of the API: the keys ``create_app`` sets, with their types (``State`` reads them as
    attributes)."""

    settings: Settings
    alchemy: SQLAlchemyAsyncConfig
    migration_head: str | None
    hub: RunEventHub
    extensions: Extensions
    stream_slots: StreamSlots
    retriever: Retriever
    llm: LLMPort | None
    #: app mode -> the event stream of its runs, for modes whose runs are not plain workflow runs
    run_event_streams: dict[str, RunEventStream]

    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session maker of the API's engine (made once), for sessions outside the request's own."""
        return cast("async_sessionmaker[AsyncSession]", self.alchemy.create_session_maker())


def state_of(app: Litestar) -> SluiceState:
    """The shared objects of ``app`` (for guards and the few helpers that run outside a handler)."""
    return cast(SluiceState, app.state)


def _settings(request: Request[Any, Any, Any]) -> Settings:
    return state_of(request.app).settings


def _sessions(request: Request[Any, Any, Any]) -> async_sessionmaker[AsyncSession]:
    return state_of(request.app).sessions()


def _hub(request: Request[Any, Any, Any]) -> RunEventHub:
    return state_of(request.app).hub


def _extensions(request: Request[Any, Any, Any]) -> Extensions:
    return state_of(request.app).extensions


def _stream_slots(request: Request[Any, Any, Any]) -> StreamSlots:
    return state_of(request.app).stream_slots


def _retriever(request: Request[Any, Any, Any]) -> Retriever:
    return state_of(request.app).retriever


def _embedders(request: Request[Any, Any, Any]) -> Embedders:
    return state_of(request.app).retriever.embedders


def _llm(request: Request[Any, Any, Any]) -> LLMPort | None:
    return state_of(request.app).llm


def _app_state(request: Request[Any, Any, Any]) -> SluiceState:
    return state_of(request.app)


#: What any handler may ask for by name, besides ``db_session``/``db_engine`` (advanced-alchemy) and ``key``.
DEPENDENCIES = {
    "settings": Provide(_settings, sync_to_thread=False),
    "sessions": Provide(_sessions, sync_to_thread=False),
    "hub": Provide(_hub, sync_to_thread=False),
    "extensions": Provide(_extensions, sync_to_thread=False),
    "stream_slots": Provide(_stream_slots, sync_to_thread=False),
    "retriever": Provide(_retriever, sync_to_thread=False),
    "embedders": Provide(_embedders, sync_to_thread=False),
    "llm": Provide(_llm, sync_to_thread=False),
    "app_state": Provide(_app_state, sync_to_thread=False),
}
