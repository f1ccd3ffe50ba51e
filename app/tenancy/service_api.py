"""Service API routes about the key's own app (app key)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.tenancy import services
from app.tenancy.services import AppKey


class AppInfo(msgspec.Struct):
    name: str
    description: str
    tags: list[str]
    mode: str
    author_name: str


class AppInfoController(Controller):
    path = "/v1"
    tags = ["service api: apps"]

    @get("/info", responses=responses(401))
    async def app_info(self, db_session: AsyncSession, key: AppKey) -> AppInfo:
        app = await services.get_app(db_session, key.app_id)
        return AppInfo(name=app.name, description=app.description, tags=[], mode=app.mode, author_name="")
