"""Schema migrations: Alembic through advanced-alchemy, scripts in ``migrations/``.

procrastinate's tables live in the same database but belong to procrastinate: revisions install them
(``procrastinate_sql``) and autogenerate never looks at them (``include_name``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.config import AlembicSyncConfig, SQLAlchemySyncConfig
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from db import urls

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version"


#: The per-embedding-space HNSW indexes are made at run time (app/knowledge/embeddings/vectors.py), not by migrations.
_RUNTIME_INDEX = re.compile(r"^(segments|child_chunks)_embedding_space_\d+_hnsw$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Hide procrastinate's objects (and pgvector's) from autogenerate so it never tries to drop them, and
    the HNSW indexes each embedding space creates for itself."""
    if type_ == "index" and _RUNTIME_INDEX.match(name or ""):
        return False
    return not (name or "").startswith("procrastinate_")


@contextlib.contextmanager
def commands(database_url: str, stdout: io.TextIOBase | None = None) -> Iterator[AlembicCommands]:
    config = SQLAlchemySyncConfig(
        connection_string=urls.psycopg(database_url),
        engine_config=_engine_config(),
        alembic_config=AlembicSyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name=VERSION_TABLE,
            template_path=str(MIGRATIONS_DIR),
        ),
    )
    try:
        cmds = AlembicCommands(sqlalchemy_config=config)
        if stdout is not None:
            cmds.config.stdout = stdout  # type: ignore[assignment]
        yield cmds
    finally:
        config.get_engine().dispose()


def _engine_config() -> Any:
    from advanced_alchemy.config import EngineConfig

    return EngineConfig(poolclass=NullPool)


def upgrade(database_url: str, revision: str = "head") -> None:
    with commands(database_url) as cmds:
        cmds.upgrade(revision)


def downgrade(database_url: str, revision: str) -> None:
    with commands(database_url) as cmds:
        cmds.downgrade(revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


async def current_revision(conn: Any) -> str | None:
    """The revision the database is at (``conn``: an SQLAlchemy AsyncConnection), None before any."""
    exists = await conn.scalar(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": VERSION_TABLE})
    if not exists:
        return None
    return await conn.scalar(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608


def procrastinate_sql(name: str, expected_version: str | None = None) -> str:
    """The text of one of procrastinate's SQL files: ``schema.sql`` or ``migrations/<file>.sql``.

    The first revision installs ``schema.sql`` of the pinned procrastinate version; when the pin moves, a new
    revision runs the migration files procrastinate ships for the versions in between.
    """
    if expected_version is not None:
        installed = importlib.metadata.version("procrastinate")
        if not (installed == expected_version or installed.startswith(expected_version + ".")):
            raise RuntimeError(
                f"this revision installs procrastinate {expected_version}'s schema but {installed} is installed"
            )
    return resources.files("procrastinate").joinpath("sql", name).read_text()


def run_sql(bind: sa.Connection, script: str) -> None:
    """Run a multi-statement SQL script on the migration's connection (psycopg's simple query protocol)."""
    bind.connection.driver_connection.execute(script)  # type: ignore[union-attr]


# Drops every table, routine and type whose name starts with procrastinate_ (tables first: their row types
# and triggers go with them). Used by the first revision's downgrade.
_DROP_PROCRASTINATE = r"""
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'procrastinate\_%'
  LOOP EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.relname); END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\_%'
  LOOP EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig); END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\_%' AND t.typtype IN ('e', 'c')
  LOOP EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname); END LOOP;
END $$;
"""


def drop_procrastinate(bind: sa.Connection) -> None:
    run_sql(bind, _DROP_PROCRASTINATE)
