"""The PostgreSQL store behind the form rate limit: Litestar's store contract, and updates of one key from several
engines (stand-ins for API processes) counted one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.stores import PostgresStore, delete_expired
from db import urls


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    made = [create_async_engine(urls.asyncpg(database_url), pool_size=10) for _ in range(2)]
    yield made
    for engine in made:
        await engine.dispose()


async def test_the_store_contract(engines: list[AsyncEngine]) -> None:
    store = PostgresStore(engines[0], "contract")
    await store.delete_all()
    assert await store.get("a") is None
    assert not await store.exists("a")
    await store.set("a", "one")
    assert await store.get("a") == b"one"
    assert await store.expires_in("a") is None
    await store.set("b", b"two", expires_in=60)
    assert 55 <= (await store.expires_in("b") or 0) <= 60
    await store.set("gone", b"x", expires_in=1)
    await asyncio.sleep(1.2)
    assert await store.get("gone") is None
    assert not await store.exists("gone")
    await store.set("c", b"three", expires_in=2)
    assert await store.get("c", renew_for=100) == b"three"
    assert (await store.expires_in("c") or 0) > 90
    other = store.with_namespace("inner")
    await other.set("a", b"inner")
    assert await store.get("a") == b"one"
    assert await other.get("a") == b"inner"
    await store.delete("a")
    assert await store.get("a") is None
    await store.delete_all()  # the namespace and the ones below it
    assert await other.get("a") is None
    assert await store.get("b") is None
    async with engines[0].begin() as conn:
        await conn.execute(
            text("INSERT INTO store_entries VALUES ('contract:old', 'x', now() - interval '1 minute')")
        )
        assert await delete_expired(conn, 100) >= 1


async def test_updates_of_one_key_from_several_processes_are_serialised(engines: list[AsyncEngine]) -> None:
    stores = [PostgresStore(engine, "counter") for engine in engines]
    await stores[0].delete_all()

    def increment(raw: bytes | None) -> tuple[bytes, int | None]:
        return str(int(raw or b"0") + 1).encode(), 60

    await asyncio.gather(*(stores[i % 2].update("hits", increment) for i in range(40)))
    assert await stores[1].get("hits") == b"40"
