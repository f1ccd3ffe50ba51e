"""Tenancy operations, shared by the console API and the command line. Services never commit."""

from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid

import msgspec
from sqlalchemy import bindparam, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from db.models import AnnotationSetting, ApiKey, App, Workspace
from db.models.workflows import latest_version

DEFAULT_WORKSPACE_NAME = "Default"
KEY_PREFIXES = {"app": "app-", "dataset": "dataset-"}
APP_MODES = ("workflow", "advanced-chat", "completion")
#: ``last_used_at`` is written at most this often per key, so a busy key does not write on every request.
LAST_USED_RESOLUTION = datetime.timedelta(seconds=60)


class KeyContext(msgspec.Struct, frozen=True):
    """What an authenticated Service API key may reach."""

    key_id: uuid.UUID
    type: str
    workspace_id: uuid.UUID
    app_id: uuid.UUID | None
    #: the app's mode (``workflow``, ``advanced-chat``) for app keys
    app_mode: str | None = None
    #: the app's latest workflow version when the key was read (app keys; None: nothing published), read with
    #: the key so that starting a run or a turn needs no statement of its own for it
    latest_workflow_id: uuid.UUID | None = None
    #: the app's annotation reply is on (read with the key: a chat turn reads the reply setting only then)
    annotation_reply: bool = False


class AppKey(KeyContext, frozen=True):
    """An authenticated app key (``app-...``): always bound to an app, so ``app_id`` is never None."""

    app_id: uuid.UUID


class CreatedKey(msgspec.Struct, frozen=True):
    key: ApiKey
    token: str


def hash_token(token: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash is enough: nobody can brute-force the preimage.
    return hashlib.sha256(token.encode()).digest()


# --- workspaces ---------------------------------------------------------------------------------


async def ensure_default_workspace(session: AsyncSession) -> Workspace:
    """The default workspace, created on first use. Race-free: the partial unique index on is_default."""
    await session.execute(
        insert(Workspace)
        .values(
            id=uuid.uuid4(),
            name=DEFAULT_WORKSPACE_NAME,
            is_default=True,
            created_at=func.now(),
            updated_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["is_default"], index_where=text("is_default"))
    )
    return (await session.execute(select(Workspace).where(Workspace.is_default))).scalar_one()


async def create_workspace(session: AsyncSession, name: str) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidParam("name: must not be empty")
    workspace = Workspace(name=name)
    session.add(workspace)
    await session.flush()
    return workspace


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    return list((await session.execute(select(Workspace).order_by(Workspace.created_at))).scalars())


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID | None) -> Workspace:
    """A workspace by id, or the default one when ``workspace_id`` is None."""
    if workspace_id is None:
        return await ensure_default_workspace(session)
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace


# --- apps ---------------------------------------------------------------------------------------


async def create_app(
    session: AsyncSession, name: str, mode: str, workspace_id: uuid.UUID | None = None, description: str = ""
) -> App:
    if mode not in APP_MODES:
        raise InvalidParam(f"mode: must be one of {', '.join(APP_MODES)}")
    if not name.strip():
        raise InvalidParam("name: must not be empty")
    workspace = await get_workspace(session, workspace_id)
    app = App(workspace_id=workspace.id, name=name.strip(), mode=mode, description=description)
    session.add(app)
    await session.flush()
    return app


async def list_apps(
    session: AsyncSession, page: int = 1, limit: int = 20, workspace_id: uuid.UUID | None = None
) -> tuple[list[App], int]:
    query = select(App)
    if workspace_id is not None:
        query = query.where(App.workspace_id == workspace_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(App.created_at.desc()).offset((page - 1) * limit).limit(limit)
    )
    return list(rows.scalars()), total


async def get_app(session: AsyncSession, app_id: uuid.UUID) -> App:
    app = await session.get(App, app_id)
    if app is None:
        raise NotFound("App not found.")
    return app


async def delete_app(session: AsyncSession, app_id: uuid.UUID) -> None:
    await session.delete(await get_app(session, app_id))
    await session.flush()


# --- keys ---------------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession,
    key_type: str,
    *,
    app_id: uuid.UUID | None = None,
    workspace_id: uuid.UUID | None = None,
) -> CreatedKey:
    """A new key; its secret is returned here once and never stored."""
    if key_type == "app":
        if app_id is None:
            raise InvalidParam("app_id: an app key needs an app")
        workspace_id = (await get_app(session, app_id)).workspace_id
    elif key_type == "dataset":
        app_id = None
        workspace_id = (await get_workspace(session, workspace_id)).id
    else:
        raise InvalidParam("type: must be 'app' or 'dataset'")
    token = KEY_PREFIXES[key_type] + secrets.token_urlsafe(32)
    key = ApiKey(
        type=key_type,
        workspace_id=workspace_id,
        app_id=app_id,
        token_hash=hash_token(token),
        token_hint=f"{token[: len(KEY_PREFIXES[key_type]) + 4]}...{token[-4:]}",
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key=key, token=token)


async def list_keys(
    session: AsyncSession,
    key_type: str,
    *,
    app_id: uuid.UUID | None = None,
    workspace_id: uuid.UUID | None = None,
) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.type == key_type, ApiKey.revoked_at.is_(None))
    if app_id is not None:
        query = query.where(ApiKey.app_id == app_id)
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    return list((await session.execute(query.order_by(ApiKey.created_at))).scalars())


async def revoke_key(
    session: AsyncSession, key_id: uuid.UUID, *, key_type: str | None = None, app_id: uuid.UUID | None = None
) -> None:
    """Revoke a key (kept for audit with ``revoked_at``). Unknown or already revoked: NotFound."""
    query = (
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=func.now())
    )
    if key_type is not None:
        query = query.where(ApiKey.type == key_type)
    if app_id is not None:
        query = query.where(ApiKey.app_id == app_id)
    result = await session.execute(query.returning(ApiKey.id))
    if result.first() is None:
        raise NotFound("API key not found.")


#: Built once (every Service API request runs it; building the expression costs more than running it).
_LATEST_WORKFLOW = latest_version(ApiKey.app_id).correlate(ApiKey).scalar_subquery()
_ANNOTATION_REPLY = (
    exists()
    .where(AnnotationSetting.app_id == ApiKey.app_id, AnnotationSetting.enabled.is_(True))
    .correlate(ApiKey)
)
_LIVE_KEY = (
    select(
        ApiKey.id,
        ApiKey.type,
        ApiKey.workspace_id,
        ApiKey.app_id,
        ApiKey.last_used_at,
        App.mode,
        _LATEST_WORKFLOW.label("latest_workflow_id"),
        _ANNOTATION_REPLY.label("annotation_reply"),
    )
    .outerjoin(App, App.id == ApiKey.app_id)
    .where(ApiKey.token_hash == bindparam("token_hash"), ApiKey.revoked_at.is_(None))
)


async def authenticate(session: AsyncSession, token: str) -> KeyContext | None:
    """The live key behind ``token``, or None. Lookup is by hash (unique index), so no secret is compared."""
    row = (await session.execute(_LIVE_KEY, {"token_hash": hash_token(token)})).first()
    if row is None:
        return None
    now = datetime.datetime.now(datetime.UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=func.now()))
    return KeyContext(
        key_id=row.id,
        type=row.type,
        workspace_id=row.workspace_id,
        app_id=row.app_id,
        app_mode=row.mode,
        latest_workflow_id=row.latest_workflow_id,
        annotation_reply=row.annotation_reply,
    )
