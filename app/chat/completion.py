"""Completion apps' Service API routes (chatflow spec 6.1): Sluice imports workflow and advanced-chat apps only, so
every app a key can reach answers these as Dify answers an app of another mode: 400 ``app_unavailable``."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import Provide

from app.auth import app_key_guard, provide_key
from app.chat.schemas import CompletionRequest, Result, UserBody
from app.errors import responses
from app.tenancy.modes import require_completion_app
from app.tenancy.services import KeyContext


class CompletionController(Controller):
    path = "/v1"
    guards = [app_key_guard]
    dependencies = {"key": Provide(provide_key, sync_to_thread=False)}
    tags = ["service api: completion"]
    security = [{"ApiKey": []}]

    @post("/completion-messages", status_code=200, responses=responses(400, 401))
    async def completion(self, key: KeyContext, data: CompletionRequest) -> Result:
        """Send a completion message (completion apps only; Sluice runs none: 400 `app_unavailable`)."""
        require_completion_app(key)
        return Result()  # pragma: no cover - no completion app can exist

    @post("/completion-messages/{task_id:str}/stop", status_code=200, responses=responses(400, 401))
    async def stop(self, key: KeyContext, task_id: str, data: UserBody) -> Result:
        """Stop a completion (completion apps only)."""
        require_completion_app(key)
        return Result()  # pragma: no cover - no completion app can exist
