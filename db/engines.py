"""What every SQLAlchemy engine of the API and the workers shares: a statement timeout and stale-connection checks.

* ``statement_timeout`` (``SLUICE_DB_STATEMENT_TIMEOUT``) is set with ``SET`` on each new connection, not as a
  startup parameter, so that it also works through PgBouncer (which refuses unknown startup parameters). A query
  stuck behind a lock, or one that would run for minutes, is cancelled by PostgreSQL and becomes an error
  (503 ``database_timeout`` in the API, a failed job in a worker that the recovery sweep takes up again) instead
  of a request or job that hangs.
* ``pool_pre_ping``: after PostgreSQL restarts, every pooled connection is dead; the ping (one round trip per
  checkout) replaces it before a request or a job uses it, so the first requests after a restart do not fail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


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
