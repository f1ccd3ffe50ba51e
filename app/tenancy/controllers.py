"""Console API (admin token): workspaces, apps, app keys and dataset keys. Paths follow Dify's console API."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.schemas import Limit, Listing, Page, PageNumber
from app.tenancy import services
from app.tenancy.schemas import ApiKeyOut, AppCreate, AppOut, DatasetKeyCreate, WorkspaceCreate, WorkspaceOut


class WorkspaceController(Controller):
    path = "/console/api/workspaces"
    tags = ["console"]

    @post("/", responses=responses(400, 401))
    async def create_workspace(self, db_session: AsyncSession, data: WorkspaceCreate) -> WorkspaceOut:
        return WorkspaceOut.of(await services.create_workspace(db_session, data.name))

    @get("/", responses=responses(401))
    async def list_workspaces(self, db_session: AsyncSession) -> Listing[WorkspaceOut]:
        await services.ensure_default_workspace(db_session)
        return Listing(data=[WorkspaceOut.of(w) for w in await services.list_workspaces(db_session)])


class AppController(Controller):
    path = "/console/api/apps"
    tags = ["console"]

    @post("/", responses=responses(400, 401, 404))
    async def create_app(self, db_session: AsyncSession, data: AppCreate) -> AppOut:
        app = await services.create_app(db_session, data.name, data.mode, data.workspace_id, data.description)
        return AppOut.of(app)

    @get("/", responses=responses(400, 401))
    async def list_apps(
        self,
        db_session: AsyncSession,
        page: PageNumber = 1,
        limit: Limit = 20,
        workspace_id: uuid.UUID | None = None,
    ) -> Page[AppOut]:
        apps, total = await services.list_apps(db_session, page, limit, workspace_id)
        return Page.of([AppOut.of(a) for a in apps], page, limit, total)

    @get("/{app_id:uuid}", responses=responses(401, 404))
    async def get_app(self, db_session: AsyncSession, app_id: uuid.UUID) -> AppOut:
        return AppOut.of(await services.get_app(db_session, app_id))

    @delete("/{app_id:uuid}", responses=responses(401, 404))
    async def delete_app(self, db_session: AsyncSession, app_id: uuid.UUID) -> None:
        await services.delete_app(db_session, app_id)

    @post("/{app_id:uuid}/api-keys", responses=responses(401, 404))
    async def create_app_key(self, db_session: AsyncSession, app_id: uuid.UUID) -> ApiKeyOut:
        created = await services.create_key(db_session, "app", app_id=app_id)
        return ApiKeyOut.of(created.key, created.token)

    @get("/{app_id:uuid}/api-keys", responses=responses(401, 404))
    async def list_app_keys(self, db_session: AsyncSession, app_id: uuid.UUID) -> Listing[ApiKeyOut]:
        await services.get_app(db_session, app_id)
        return Listing(
            data=[ApiKeyOut.of(k) for k in await services.list_keys(db_session, "app", app_id=app_id)]
        )

    @delete("/{app_id:uuid}/api-keys/{key_id:uuid}", responses=responses(401, 404))
    async def revoke_app_key(self, db_session: AsyncSession, app_id: uuid.UUID, key_id: uuid.UUID) -> None:
        await services.revoke_key(db_session, key_id, key_type="app", app_id=app_id)


class DatasetKeyController(Controller):
    path = "/console/api/datasets/api-keys"
    tags = ["console"]

    @post("/", responses=responses(400, 401, 404))
    async def create_dataset_key(
        self, db_session: AsyncSession, data: DatasetKeyCreate | None = None
    ) -> ApiKeyOut:
        workspace_id = data.workspace_id if data else None
        created = await services.create_key(db_session, "dataset", workspace_id=workspace_id)
        return ApiKeyOut.of(created.key, created.token)

    @get("/", responses=responses(400, 401))
    async def list_dataset_keys(
        self, db_session: AsyncSession, workspace_id: uuid.UUID | None = None
    ) -> Listing[ApiKeyOut]:
        keys = await services.list_keys(db_session, "dataset", workspace_id=workspace_id)
        return Listing(data=[ApiKeyOut.of(k) for k in keys])

    @delete("/{key_id:uuid}", responses=responses(401, 404))
    async def revoke_dataset_key(self, db_session: AsyncSession, key_id: uuid.UUID) -> None:
        await services.revoke_key(db_session, key_id, key_type="dataset")
