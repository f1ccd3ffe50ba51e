"""What every SQLAlchemy engine of the API and the workers shares: a statement timeout and stale-connection checks.

* ``statement_timeout`` (``SLUICE_DB_STATEMENT_TIMEOUT``) is set with ``SET`` on each new connection, not as a
  startup parameter, so that it also works through PgBouncer (which refuses unknown startup parameters). A query
  stuck behind a lock, or one that would run for minutes, is cancelled by PostgreSQL and becomes an error
  (503 ``database_timeout`` in the API, a failed job in a worker that the recovery sweep takes up again) instead
  of a request or job that hangs.
* A ping for connections that sat idle: after PostgreSQL restarts (or a proxy drops idle connections), pooled
  connections are dead. SQLAlchemy's ``pool_pre_ping`` pings at every checkout, which with asyncpg costs three
  round trips (BEGIN, ``;``, ROLLBACK) per request or job: more than the work of a trivial run. Instead a
  connection is pinged only when it comes out of the pool after ``IDLE_PING_SECONDS`` unused; a busy pool never
  pings. A connection that broke while in steady use fails its statement once; SQLAlchemy then sees the
  disconnect and replaces every connection of the pool, so the next request gets a fresh one.
  ``idle_checked_pool`` does the same for procrastinate's psycopg pool (which checks at every checkout too), and
  makes its connections autocommit.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import psycopg
import psycopg_pool
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

#: A pooled connection unused for this long is pinged before it is handed out.
IDLE_PING_SECONDS = 2.0


def statement_timeout_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def apply_statement_timeout(engine: AsyncEngine, seconds: float) -> None:
    """Every new connection of ``engine`` gets ``statement_timeout`` (``seconds`` 0: none)."""
    milliseconds = statement_timeout_ms(seconds)
    if not milliseconds:
        return

    @event.listens_for(engine.sync_engine, "connect")
    def set_timeout(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {int(milliseconds)}")
        cursor.close()


def ping_idle_connections(engine: AsyncEngine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """``engine``'s pool pings a connection at checkout only when it was idle for ``idle_seconds`` or more; a dead
    one is replaced before anyone uses it (``DisconnectionError`` makes the pool retry with a new connection)."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"idle connection is gone: {error}") from error


def idle_checked_pool(idle_seconds: float = IDLE_PING_SECONDS) -> Any:
    """A ``pool_factory`` for procrastinate's ``PsycopgConnector``: its pool checks a connection at checkout only
    when it was idle for ``idle_seconds`` or more (procrastinate's own pool checks every time)."""
    returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def mark_returned(connection: psycopg.AsyncConnection[Any]) -> None:
        returned_at[connection] = time.monotonic()

    async def autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.set_autocommit(True)
        returned_at[connection] = time.monotonic()  # new: as good as just used, no ping on its first checkout

    async def check(connection: psycopg.AsyncConnection[Any]) -> None:
        since = returned_at.pop(connection, None)
        if since is not None and time.monotonic() - since < idle_seconds:
            return
        await psycopg_pool.AsyncConnectionPool.check_connection(connection)

    def factory(**options: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
        # Autocommit too: each of procrastinate's statements (fetch, finish, defer) is one function call, atomic on
        # its own; without it psycopg wraps each in BEGIN ... COMMIT, two more round trips per job step.
        options = {**options, "configure": autocommit, "check": check, "reset": mark_returned}
        return psycopg_pool.AsyncConnectionPool(**options)

    return factory
