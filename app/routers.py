"""The API's routes by who may call them: one router per credential, each declaring its guard, its OpenAPI
security and its ``key`` dependency once, so a controller added to a router cannot forget any of them.

- :func:`app_key_router`: the Service API of one app (``app-...`` key); handlers get ``key: AppKey``.
- :func:`dataset_key_router`: the knowledge API (``dataset-...`` key); handlers get ``key: KeyContext``.
- :func:`console_router`: ``/console/api`` (the admin token).

Routes that take larger bodies than small JSON sit in a nested router with their own limit
(``app/body_limits.py``). Public routes (health, signed links, human-input form pages) are in ``app/asgi.py``.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.di import Provide

from app import body_limits
from app.annotations.controllers import AnnotationController
from app.audio.controllers import AudioController
from app.auth import admin_guard, app_key_guard, dataset_key_guard, provide_app_key, provide_key
from app.chat.completion import CompletionController
from app.chat.controllers import ChatController
from app.chat.conversation_controllers import ConversationController
from app.files.controllers import FileController
from app.human_input.controllers import AppFormController
from app.knowledge.datasets.controllers import DatasetController
from app.knowledge.documents.controllers import DocumentController
from app.knowledge.documents.downloads import DocumentDownloadController
from app.knowledge.indexing.rag_pipeline import KnowledgePipelineController
from app.knowledge.metadata.controllers import MetadataController
from app.knowledge.retrieval.controllers import RetrieveController
from app.knowledge.segments.controllers import SegmentController
from app.knowledge.tags.controllers import DatasetTagController, TagController
from app.model_providers import ModelTypeController
from app.settings import Settings
from app.tenancy.controllers import AppController, DatasetKeyController, WorkspaceController
from app.tenancy.service_api import AppInfoController
from app.workflows.console import DslController
from app.workflows.controllers import WorkflowRunController
from app.workflows.site import AppSiteController

API_KEY: list[dict[str, list[str]]] = [{"ApiKey": []}]
ADMIN_TOKEN: list[dict[str, list[str]]] = [{"AdminToken": []}]


def app_key_router(settings: Settings) -> Router:
    runs = Router(
        path="/",
        route_handlers=[WorkflowRunController, ChatController],
        request_max_body_size=body_limits.run_routes(settings),
    )
    return Router(
        path="/",
        route_handlers=[
            AnnotationController,
            AppInfoController,
            AppSiteController,
            AudioController,
            ConversationController,
            CompletionController,
            AppFormController,
            FileController,
            runs,
        ],
        guards=[app_key_guard],
        security=API_KEY,
        dependencies={"key": Provide(provide_app_key, sync_to_thread=False)},
    )


def dataset_key_router(settings: Settings) -> Router:
    documents = Router(
        path="/",
        route_handlers=[DocumentController, SegmentController],
        request_max_body_size=body_limits.document_routes(settings),
    )
    return Router(
        path="/",
        route_handlers=[
            DatasetController,
            DocumentDownloadController,
            KnowledgePipelineController,
            ModelTypeController,
            RetrieveController,
            MetadataController,
            TagController,
            DatasetTagController,
            documents,
        ],
        guards=[dataset_key_guard],
        security=API_KEY,
        dependencies={"key": Provide(provide_key, sync_to_thread=False)},
    )


def console_router(settings: Settings) -> Router:
    dsl = Router(
        path="/", route_handlers=[DslController], request_max_body_size=body_limits.dsl_routes(settings)
    )
    return Router(
        path="/",
        route_handlers=[WorkspaceController, AppController, DatasetKeyController, dsl],
        guards=[admin_guard],
        security=ADMIN_TOKEN,
    )


def guarded_routers(settings: Settings) -> list[Any]:
    return [app_key_router(settings), dataset_key_router(settings), console_router(settings)]
