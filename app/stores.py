"""A Litestar store on the application's PostgreSQL (table ``store_entries``), shared by every API process, and
the rate-limit middleware that counts on it atomically.

Litestar's ``RateLimitMiddleware`` keeps each client's window in a store; its default store lives in one
process's memory, so N API processes each allowed the full rate. With :class:`PostgresStore` every process reads
and writes the same entry. Litestar's middleware reads the entry, decides, then writes it back: two processes
doing that at once would both count from the same old value. :class:`SharedRateLimitMiddleware` instead counts
inside :meth:`PostgresStore.update`, which holds the entry's row lock from read to write (``SELECT ... FOR
UPDATE`` in one transaction), so concurrent requests from any process are counted one after the other and the
limit holds exactly across processes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from time import time

from litestar.middleware.rate_limit import DURATION_VALUES, CacheObject, RateLimitMiddleware
from litestar.serialization import decode_json, encode_json
from litestar.stores.base import NamespacedStore, Store
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: ``(new value, seconds until it expires or None)`` from the current value (None: missing or expired).
Change = Callable[[bytes | None], tuple[bytes, int | None]]


def _seconds(value: int | datetime.timedelta | None) -> int | None:
    if value is None:
        return None
    return int(value.total_seconds()) if isinstance(value, datetime.timedelta) else int(value)


class PostgresStore(NamespacedStore):
    """Thread- and process-safe key/value store with expiry; keys live under ``namespace`` (``a:b:key``)."""

    __slots__ = ("engine",)

    def __init__(self, engine: AsyncEngine, namespace: str = "store") -> None:
        self.engine = engine
        self.namespace = namespace

    def with_namespace(self, namespace: str) -> PostgresStore:
        return PostgresStore(self.engine, f"{self.namespace}:{namespace}")

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def set(
        self, key: str, value: str | bytes, expires_in: int | datetime.timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO store_entries (key, value, expires_at) VALUES (:key, :value, "
                    "now() + make_interval(secs => CAST(:ttl AS float8))) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
                ),
                {"key": self._key(key), "value": data, "ttl": _seconds(expires_in)},
            )

    async def get(self, key: str, renew_for: int | datetime.timedelta | None = None) -> bytes | None:
        async with self.engine.begin() as conn:
            if renew_for is not None:
                row = (
                    await conn.execute(
                        text(
                            "UPDATE store_entries SET expires_at = now() + make_interval(secs => :ttl) "
                            "WHERE key = :key AND expires_at IS NOT NULL AND expires_at > now() RETURNING value"
                        ),
                        {"key": self._key(key), "ttl": float(_seconds(renew_for) or 0)},
                    )
                ).first()
                if row is not None:
                    return bytes(row.value)
            row = (
                await conn.execute(
                    text(
                        "SELECT value FROM store_entries WHERE key = :key "
                        "AND (expires_at IS NULL OR expires_at > now())"
                    ),
                    {"key": self._key(key)},
                )
            ).first()
        return bytes(row.value) if row is not None else None

    async def update(self, key: str, change: Change) -> bytes:
        """Replace the value with ``change(current)`` while holding the entry's row lock: concurrent updates of
        one key, from any process, run one after the other. Returns the new value."""
        async with self.engine.begin() as conn:
            current = await self._locked(conn, self._key(key))
            value, ttl = change(current)
            await conn.execute(
                text(
                    "UPDATE store_entries SET value = :value, "
                    "expires_at = now() + make_interval(secs => CAST(:ttl AS float8)) WHERE key = :key"
                ),
                {"key": self._key(key), "value": value, "ttl": ttl},
            )
        return value

    @staticmethod
    async def _locked(conn: AsyncConnection, key: str) -> bytes | None:
        # The placeholder row makes a missing key lockable; a concurrent first insert waits on the unique index.
        await conn.execute(
            text(
                "INSERT INTO store_entries (key, value, expires_at) VALUES (:key, '', now()) ON CONFLICT DO NOTHING"
            ),
            {"key": key},
        )
        row = (
            await conn.execute(
                text(
                    "SELECT value, expires_at > now() AS live FROM store_entries WHERE key = :key FOR UPDATE"
                ),
                {"key": key},
            )
        ).one()
        return bytes(row.value) if row.live is not False and row.value else None

    async def delete(self, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM store_entries WHERE key = :key"), {"key": self._key(key)})

    async def delete_all(self) -> None:
        """Delete every entry of this namespace (and of the namespaces below it)."""
        prefix = self.namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM store_entries WHERE key LIKE :prefix"), {"prefix": prefix})

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self.engine.connect() as conn:
            seconds = await conn.scalar(
                text(
                    "SELECT extract(epoch FROM expires_at - now()) FROM store_entries "
                    "WHERE key = :key AND expires_at > now()"
                ),
                {"key": self._key(key)},
            )
        return int(seconds) if seconds is not None else None


async def delete_expired(conn: AsyncConnection, limit: int) -> int:
    """Remove up to ``limit`` expired entries (the retention job calls this); returns how many."""
    result = await conn.execute(
        text(
            "DELETE FROM store_entries WHERE key IN (SELECT key FROM store_entries WHERE expires_at < now() "
            "ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
        ),
        {"limit": limit},
    )
    return int(result.rowcount or 0)


class SharedRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's fixed-window rate limit, counted atomically in a :class:`PostgresStore` (any other store: as
    Litestar does it). The request is counted while the window's row is locked; the middleware then sees the
    window as it was before this request, exactly as Litestar's own flow expects."""

    async def retrieve_cached_history(self, key: str, store: Store) -> CacheObject:
        if not isinstance(store, PostgresStore):
            return await super().retrieve_cached_history(key, store)
        duration, limit = DURATION_VALUES[self.unit], self.max_requests
        before: list[CacheObject] = []

        def count(raw: bytes | None) -> tuple[bytes, int | None]:
            now = int(time())
            window = CacheObject(**decode_json(raw)) if raw else None
            if window is None or window.reset <= now:
                window = CacheObject(history=[], reset=now + duration)
            before.append(CacheObject(history=list(window.history), reset=window.reset))
            if len(window.history) < limit:
                window.history = [now, *window.history]
            return encode_json(window), max(1, window.reset - now)

        await store.update(key, count)
        return before[-1]

    async def set_cached_history(self, key: str, cache_object: CacheObject, store: Store) -> None:
        if not isinstance(store, PostgresStore):
            await super().set_cached_history(key, cache_object, store)
            return
        cache_object.history = [int(time()), *cache_object.history]  # already counted in the store


__all__ = ["PostgresStore", "SharedRateLimitMiddleware", "delete_expired"]
