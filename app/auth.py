"""Who is calling: the admin token for ``/console/api``, ``app-``/``dataset-`` keys for the Service API.

Each is a Litestar guard, so a route cannot forget it: the router of its kind (``app/routers.py``) declares the
guard and every handler in it is protected. Key guards put the key in the request scope, where the ``key``
dependency finds it: an :class:`~app.tenancy.services.AppKey` (its app always known) behind the app-key guard,
a :class:`~app.tenancy.services.KeyContext` behind the dataset-key guard.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Unauthorized
from app.state import state_of
from app.tenancy import services
from app.tenancy.services import AppKey, KeyContext

_SCOPE_KEY = "sluice_key"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be provided and start with 'Bearer'.")
    return token.strip()


def request_session(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncSession:
    """The request's own database session (the one handlers get as ``db_session``)."""
    state = state_of(connection.app)
    return state.alchemy.provide_session(state, connection.scope)


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings = state_of(connection.app).settings
    token = bearer_token(connection)
    if not settings.admin_token or not hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        raise Unauthorized("Admin token is invalid.")


async def _key_guard(connection: ASGIConnection[Any, Any, Any, Any], key_type: str) -> None:
    context = await services.authenticate(request_session(connection), bearer_token(connection))
    if context is None or context.type != key_type:
        raise Unauthorized("Access token is invalid.")
    if key_type == "app":  # the database ties every app key to its app (ck_api_keys_app_scope)
        context = AppKey(**msgspec.structs.asdict(context))
    connection.scope[_SCOPE_KEY] = context  # type: ignore[literal-required]


async def app_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await _key_guard(connection, "app")


async def dataset_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await _key_guard(connection, "dataset")


def provide_key(request: ASGIConnection[Any, Any, Any, Any]) -> KeyContext:
    return request.scope[_SCOPE_KEY]  # type: ignore[literal-required,no-any-return]


def provide_app_key(request: ASGIConnection[Any, Any, Any, Any]) -> AppKey:
    return request.scope[_SCOPE_KEY]  # type: ignore[literal-required,no-any-return]
