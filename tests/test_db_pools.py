"""Pooled connections that died while idle are replaced before use, without a ping per checkout (db/engines.py):
the SQLAlchemy pools of the API and the workers, and procrastinate's psycopg pool."""

from __future__ import annotations

import asyncio

import procrastinate
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from db import engines, urls


async def _terminate(database_url: str, pid: int) -> None:
    killer = await psycopg.AsyncConnection.connect(urls.libpq(database_url), autocommit=True)
    async with killer:
        await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(database_url: str) -> None:
    engine = create_async_engine(urls.asyncpg(database_url), pool_size=1, max_overflow=0)
    engines.ping_idle_connections(engine, idle_seconds=0.05)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        await _terminate(database_url, first)
        await asyncio.sleep(0.1)  # idle past the threshold: the checkout pings, finds it dead, connects again
        async with engine.connect() as conn:
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()


async def test_a_busy_connection_is_not_pinged(database_url: str) -> None:
    engine = create_async_engine(urls.asyncpg(database_url), pool_size=1, max_overflow=0)
    engines.ping_idle_connections(engine, idle_seconds=60)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        await _terminate(database_url, pid)
        # back from the pool at once: no ping, so the statement itself meets the dead connection
        failed = False
        try:
            async with engine.connect() as conn:
                await conn.scalar(text("SELECT 1"))
        except Exception:
            failed = True
        assert failed
        async with engine.connect() as conn:  # the pool replaced it after the disconnect
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_procrastinate_pool_is_autocommit_and_replaces_dead_idle_connections(database_url: str) -> None:
    connector = procrastinate.PsycopgConnector(
        conninfo=urls.libpq(database_url),
        pool_factory=engines.idle_checked_pool(idle_seconds=0.05),
        min_size=1,
        max_size=1,
    )
    await connector.open_async()
    try:
        row = await connector.execute_query_one_async("SELECT pg_backend_pid() AS pid")  # type: ignore[arg-type]
        async with connector.pool.connection() as conn:
            assert conn.autocommit  # procrastinate's statements need no BEGIN/COMMIT around them
        await _terminate(database_url, row["pid"])
        await asyncio.sleep(0.1)
        again = await connector.execute_query_one_async("SELECT pg_backend_pid() AS pid")  # type: ignore[arg-type]
        assert again["pid"] != row["pid"]
    finally:
        await connector.close_async()
