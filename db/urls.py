"""One database URL, spelled for each driver that needs it.

Sluice talks to PostgreSQL through three drivers: asyncpg (the app's SQLAlchemy engine), psycopg
(procrastinate and Alembic) and libpq itself (psql). Users give one URL in any of the usual spellings.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


class DatabaseUrlError(ValueError):
    """DATABASE_URL is not a PostgreSQL URL."""


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"DATABASE_URL is not a valid URL: {exc}") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(f"DATABASE_URL must be a PostgreSQL URL, got {parsed.get_backend_name()!r}")
    return parsed


def _render(url: URL, driver: str) -> str:
    return url.set(drivername=driver).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    """The URL as libpq, psycopg and psql read it (``postgresql://``)."""
    return _render(_parse(url), "postgresql")


def asyncpg(url: str) -> str:
    """The SQLAlchemy URL for the asyncpg driver."""
    return _render(_parse(url), "postgresql+asyncpg")


def psycopg(url: str) -> str:
    """The SQLAlchemy URL for the psycopg (v3) driver."""
    return _render(_parse(url), "postgresql+psycopg")


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parsed = _parse(url)
    return _render(parsed.set(database=database), parsed.drivername)


def database_name(url: str) -> str:
    return _parse(url).database or "postgres"
