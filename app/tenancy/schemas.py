"""Request and response bodies of the console API for workspaces, apps and keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from app.schemas import Name, text_field, unix
from db.models import ApiKey, App, Workspace


class WorkspaceCreate(msgspec.Struct):
    name: Name


class WorkspaceOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    is_default: bool
    created_at: int

    @classmethod
    def of(cls, w: Workspace) -> WorkspaceOut:
        return cls(id=w.id, name=w.name, is_default=w.is_default, created_at=unix(w.created_at) or 0)


class AppCreate(msgspec.Struct):
    name: Name
    mode: Literal["workflow", "advanced-chat", "completion"] = "workflow"
    description: Annotated[str, text_field(0, 4000)] = ""
    workspace_id: uuid.UUID | None = None


class AppOut(msgspec.Struct):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    mode: str
    description: str
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, a: App) -> AppOut:
        return cls(
            id=a.id,
            workspace_id=a.workspace_id,
            name=a.name,
            mode=a.mode,
            description=a.description,
            created_at=unix(a.created_at) or 0,
            updated_at=unix(a.updated_at) or 0,
        )


class DatasetKeyCreate(msgspec.Struct):
    workspace_id: uuid.UUID | None = None


class ApiKeyOut(msgspec.Struct):
    """A key without its secret: ``token`` is only a hint of it."""

    id: uuid.UUID
    type: str
    token: str
    workspace_id: uuid.UUID
    app_id: uuid.UUID | None
    last_used_at: int | None
    created_at: int

    @classmethod
    def of(cls, k: ApiKey, token: str | None = None) -> ApiKeyOut:
        return cls(
            id=k.id,
            type=k.type,
            token=token or k.token_hint,
            workspace_id=k.workspace_id,
            app_id=k.app_id,
            last_used_at=unix(k.last_used_at),
            created_at=unix(k.created_at) or 0,
        )
