"""Alembic environment, driven by db.migrate (advanced-alchemy's AlembicCommands on a psycopg engine).

Migrations run through psycopg rather than asyncpg because revisions execute procrastinate's multi-statement
SQL files, which only the simple query protocol accepts.
"""

from typing import Any

from alembic import context
from sqlalchemy import Engine

import db.models
from db.migrate import include_name

config: Any = context.config


def run_migrations_online() -> None:
    engine: Engine = config.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.models.Base.metadata,
            version_table=config.version_table_name,
            include_name=include_name,
            compare_type=True,
            compare_server_default=True,
            user_module_prefix="sa.",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.db_url,
        target_metadata=db.models.Base.metadata,
        version_table=config.version_table_name,
        include_name=include_name,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
