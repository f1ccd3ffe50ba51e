"""End users: the Service API's ``user`` strings of an app as rows (Dify's ``end_users``), created on first sight.

Everything a user creates (conversations, messages, feedback) points at their row; another ``user`` of the same
app sees none of it. Reads never create a row: a ``user`` never seen simply owns nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.errors import EndUserNotFound
from db.models import EndUser

#: The end user of requests whose ``user`` is optional and absent (Dify's shared anonymous user).
ANONYMOUS = "DEFAULT-USER"


async def ensure(
    session: AsyncSession, app_id: uuid.UUID, workspace_id: uuid.UUID, user: str | None
) -> EndUser:
    """The end user ``user`` of the app, created if new (race-free: the unique (app, session) index)."""
    found = await find(session, app_id, user)
    if found is not None:
        return found
    session_id = user or ANONYMOUS
    await session.execute(
        insert(EndUser)
        .values(
            id=uuid.uuid4(),
            app_id=app_id,
            workspace_id=workspace_id,
            session_id=session_id,
            type="service_api",
            is_anonymous=user is None,
            created_at=func.now(),
            updated_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["app_id", "session_id"])
    )
    found = await find(session, app_id, session_id)
    assert found is not None
    return found


#: Built once (every turn and conversation request reads it; building costs more CPU than running it).
_FIND = select(EndUser).where(EndUser.app_id == bindparam("app_id"), EndUser.session_id == bindparam("user"))


async def find(session: AsyncSession, app_id: uuid.UUID, user: str | None) -> EndUser | None:
    """The end user ``user`` of the app, or None when never seen."""
    return await session.scalar(_FIND, {"app_id": app_id, "user": user or ANONYMOUS})


async def get(session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID) -> EndUser:
    end_user = await session.scalar(
        select(EndUser).where(EndUser.id == end_user_id, EndUser.app_id == app_id)
    )
    if end_user is None:
        raise EndUserNotFound
    return end_user
