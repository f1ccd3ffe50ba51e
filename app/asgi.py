"""The HTTP application: ``create_app(settings)``.

``uvicorn --factory app.asgi:create_app`` works too: without settings it reads them from the environment
(when called, never at import time) and starts the embedded database if ``DATABASE_URL`` is unset.
"""

from __future__ import annotations

from typing import Any

import structlog
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from litestar import Litestar, Router
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy.exc import ProgrammingError

from app import body_limits, runtime
from app.chat import controllers as chat
from app.errors import handle_exception
from app.files.controllers import SignedFileController
from app.health import HealthController
from app.human_input.controllers import PublicFormController
from app.human_input.pages import FormPageController
from app.json_body import SluiceRequest
from app.knowledge.documents.downloads import DocumentFileController
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval.services import Retriever
from app.logging import configure_logging
from app.middleware import request_id_middleware
from app.routers import guarded_routers
from app.settings import Settings
from app.state import DEPENDENCIES, SluiceState
from app.stores import PostgresStore, SharedRateLimitMiddleware
from app.tenancy import services as tenancy
from app.wiring import extensions
from app.workflows.events import RunEventHub
from app.workflows.openapi import document_streams
from app.workflows.ports import make_llm
from app.workflows.streams import StreamSlots
from db import engines, migrate, urls

log = structlog.get_logger()

RATE_LIMIT_STORE = "rate_limit"

#: Routes anyone may call (signed links and form tokens check themselves); the guarded routes are in
#: ``app/routers.py``.
PUBLIC_ROUTES: list[Any] = [HealthController, DocumentFileController, SignedFileController]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Sluice",
        version="0.1.0",
        description="Dify-compatible Service API and console API. Errors are `{code, message, status}`.",
        path="/openapi",
        render_plugins=[SwaggerRenderPlugin(path="/"), ScalarRenderPlugin(path="/scalar")],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="http", scheme="bearer", description="`app-...` or `dataset-...` Service API key"
                ),
                "AdminToken": SecurityScheme(type="http", scheme="bearer", description="SLUICE_ADMIN_TOKEN"),
            }
        ),
        use_handler_docstrings=True,
        create_examples=False,
    )


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Litestar:
    settings = runtime.resolve(settings or Settings.from_env())
    assert settings.database_url is not None
    if configure_logs:
        configure_logging(settings)
    alchemy = SQLAlchemyAsyncConfig(
        connection_string=urls.asyncpg(settings.database_url),
        engine_config=EngineConfig(pool_size=10, max_overflow=10),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        before_send_handler="autocommit",
        create_all=False,
    )

    engines.apply_statement_timeout(alchemy.get_engine(), settings.db_statement_timeout)
    engines.ping_idle_connections(alchemy.get_engine())
    hub = RunEventHub(settings.database_url)
    stream_slots = StreamSlots(alchemy.get_engine(), settings.max_event_streams_per_key)

    async def on_startup(app: Litestar) -> None:
        await hub.start()
        await stream_slots.start()
        try:
            async with alchemy.get_session() as session:
                await tenancy.ensure_default_workspace(session)
                await session.commit()
        except ProgrammingError:
            log.warning("database_not_migrated", hint="run `just migrate` (or `python -m app migrate`)")

    async def on_shutdown(app: Litestar) -> None:
        await stream_slots.stop()
        await hub.stop()

    public_forms = Router(
        path="/",
        route_handlers=[PublicFormController, FormPageController],
        middleware=[
            RateLimitConfig(
                rate_limit=("minute", settings.form_rate_limit_per_minute),
                middleware_class=SharedRateLimitMiddleware,
                store=RATE_LIMIT_STORE,
            ).middleware
        ],
    )
    return Litestar(
        route_handlers=[*PUBLIC_ROUTES, *guarded_routers(settings), public_forms],
        plugins=[SQLAlchemyPlugin(config=alchemy)],
        middleware=[request_id_middleware],
        exception_handlers={Exception: handle_exception},
        request_class=SluiceRequest,
        # One rate-limit window per client across every API process (app/stores.py).
        stores={RATE_LIMIT_STORE: PostgresStore(alchemy.get_engine(), RATE_LIMIT_STORE)},
        request_max_body_size=body_limits.json_routes(settings),
        openapi_config=openapi_config(),
        dependencies=DEPENDENCIES,
        state=SluiceState(
            {
                "settings": settings,
                "alchemy": alchemy,
                "migration_head": migrate.head_revision(),
                "hub": hub,
                "extensions": extensions(settings),
                "stream_slots": stream_slots,
                "retriever": Retriever(Embedders(settings)),
                "llm": make_llm(settings),
                # The run event stream of apps whose runs are not plain workflow runs (a chat turn's envelope).
                "run_event_streams": {"advanced-chat": chat.run_events},
            }
        ),
        on_startup=[on_startup, document_streams],
        on_shutdown=[on_shutdown],
        logging_config=None,
        debug=False,
    )
