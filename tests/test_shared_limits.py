"""Limits that hold across API processes: two real ``python -m app api`` processes on one database share the form
rate limit (one window per client, counted in PostgreSQL) and the per-key cap on open event streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.tenancy import services as tenancy
from app.workflows import services
from app.workflows.streams import StreamSlots, TooManyStreams
from db import urls
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Tenant
from tests.support.processes import free_port, spawn, stop, wait_until

RATE = 5
STREAMS = 2

ECHO = """
version: 0.5.0
kind: app
app: {name: Echo, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: end, data: {type: end, title: End, outputs: []}}
    edges:
      - {id: e1, source: start, target: end}
"""


class Cluster:
    def __init__(self, database_url: str, logs: Path) -> None:
        self.database_url = database_url
        self.ports = [free_port(), free_port()]
        self.procs = [
            spawn(
                ["-m", "app", "api"],
                {
                    "DATABASE_URL": database_url,
                    "SLUICE_PORT": str(port),
                    "SLUICE_ADMIN_TOKEN": ADMIN_TOKEN,
                    "SLUICE_SECRET_KEY": SECRET_KEY,
                    "SLUICE_FORM_RATE_LIMIT": str(RATE),
                    "SLUICE_MAX_EVENT_STREAMS_PER_KEY": str(STREAMS),
                    "LOG_FORMAT": "json",
                },
                logs / f"api-{port}.log",
            )
            for port in self.ports
        ]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]

        def healthy() -> bool:
            try:
                return all(httpx.get(u + "/healthz", timeout=1).status_code == 200 for u in self.urls)
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, interval=0.2)


@pytest.fixture(scope="module")
def cluster(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(module_database, tmp_path_factory.mktemp("two-apis"))
    yield made
    for proc in made.procs:
        stop(proc)


@pytest.fixture
async def running_run(cluster: Cluster) -> AsyncIterator[tuple[str, uuid.UUID]]:
    """An app key and a run that stays ``running`` (no worker here), so its event stream stays open."""
    engine = create_async_engine(urls.asyncpg(cluster.database_url))
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            app = await services.import_app(session, ECHO, None)
            key = await tenancy.create_key(session, "app", app_id=app.id)
            run = await services.start_run(session, app.id, {}, "u")
            await session.commit()
        yield key.token, run.id
    finally:
        await engine.dispose()


async def test_the_form_rate_limit_is_one_window_across_processes(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        answers = await asyncio.gather(
            *(http.get(f"{cluster.urls[i % 2]}/api/form/human_input/{'t' * 43}") for i in range(3 * RATE))
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(429) == 2 * RATE, statuses  # exactly RATE got through, whichever process they hit
    assert all(s == 404 for s in statuses if s != 429)
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["code"] == "too_many_requests"
    assert limited.json()["status"] == 429


class Following:
    """An open event stream read line by line. The line iterator is kept: an abandoned one is closed when it is
    garbage-collected, and closing it closes the connection (the server then frees the stream's slot)."""

    def __init__(self, stream: httpx.Response) -> None:
        self.stream, self.lines = stream, stream.aiter_lines()

    async def first_event(self) -> str:
        async for line in self.lines:
            if line.startswith("data: "):
                return line
        raise AssertionError("the stream ended before its first event")


async def first_event(stream: httpx.Response) -> tuple[Following, str]:
    following = Following(stream)
    return following, await following.first_event()


async def test_the_stream_cap_counts_streams_of_every_process(
    cluster: Cluster, running_run: tuple[str, uuid.UUID]
) -> None:
    token, run_id = running_run
    headers = {"Authorization": f"Bearer {token}"}
    a, b = cluster.urls
    path = f"/workflow/{run_id}/events"
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        async with http.stream("GET", f"{a}/v1{path}") as first:
            assert first.status_code == 200
            kept_first, event = await first_event(first)
            assert "workflow_started" in event
            async with http.stream("GET", f"{b}/v1{path}") as second:
                assert second.status_code == 200
                kept_second, event = await first_event(second)
                assert "workflow_started" in event
                third = await http.get(f"{a}/v1{path}")
                assert third.status_code == 429, third.text
                assert third.json()["code"] == "too_many_streams", third.text
                # A streaming run over the cap is refused before it starts: no run is created.
                engine = create_async_engine(urls.asyncpg(cluster.database_url))
                try:
                    async with engine.connect() as conn:
                        before = await conn.scalar(text("SELECT count(*) FROM workflow_runs"))
                    streaming = await http.post(
                        f"{b}/v1/workflows/run",
                        json={"inputs": {}, "response_mode": "streaming", "user": "u"},
                    )
                    assert streaming.status_code == 429, streaming.text
                    async with engine.connect() as conn:
                        assert await conn.scalar(text("SELECT count(*) FROM workflow_runs")) == before
                finally:
                    await engine.dispose()
            del kept_second
        del kept_first
        # Both closed: their slots are free again, on either process.
        for _ in range(50):
            async with http.stream("GET", f"{b}/v1{path}") as again:
                if again.status_code == 200:
                    assert "workflow_started" in (await first_event(again))[1]
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed stream kept its slot")


async def test_a_dead_process_slots_stop_counting(
    cluster: Cluster, running_run: tuple[str, uuid.UUID]
) -> None:
    """Rows a process stopped refreshing (it was killed) no longer count once stale."""
    token, run_id = running_run
    engine = create_async_engine(urls.asyncpg(cluster.database_url))
    try:
        async with engine.begin() as conn:
            key_id = await conn.scalar(
                text("SELECT id FROM api_keys WHERE token_hash = :h"), {"h": tenancy.hash_token(token)}
            )
            await conn.execute(
                text(
                    "INSERT INTO event_streams (id, key_id, seen_at) "
                    "SELECT gen_random_uuid(), :k, now() - interval '10 minutes' FROM generate_series(1, 5)"
                ),
                {"k": key_id},
            )
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with http.stream("GET", f"{cluster.urls[0]}/v1/workflow/{run_id}/events") as stream:
                assert stream.status_code == 200
        for _ in range(50):  # the closed stream's own row goes as soon as the server notices the disconnect
            async with engine.connect() as conn:
                left = await conn.scalar(
                    text("SELECT count(*) FROM event_streams WHERE key_id = :k"), {"k": key_id}
                )
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0  # the five stale rows were dropped when the stream opened
    finally:
        await engine.dispose()


#: One take of a slot of ``key_id`` by a keeper of its own engine: (keeper, engine, key_id) -> the slot.
Take = Callable[[StreamSlots, AsyncEngine, uuid.UUID], Awaitable[uuid.UUID]]


async def forty_takes_at_once(database_url: str, tenant: Tenant, take: Take) -> None:
    """Forty takes of one key's slots at the same moment through two processes' slot keepers (two engines, two
    pools) admit exactly the cap (3), and leave exactly the cap's rows."""
    cap = 3
    engines = [create_async_engine(urls.asyncpg(database_url), pool_size=25) for _ in range(2)]
    keepers = [StreamSlots(engine, cap) for engine in engines]
    async with engines[0].connect() as conn:
        key_id = await conn.scalar(
            text("SELECT id FROM api_keys WHERE token_hash = :h"), {"h": tenancy.hash_token(tenant.app_key)}
        )
    try:
        outcomes = await asyncio.gather(
            *(take(keepers[i % 2], engines[i % 2], key_id) for i in range(40)), return_exceptions=True
        )
        taken = [o for o in outcomes if isinstance(o, uuid.UUID)]
        refused = [o for o in outcomes if isinstance(o, TooManyStreams)]
        assert (len(taken), len(refused)) == (cap, 40 - cap), outcomes
        async with engines[0].connect() as conn:
            rows = await conn.scalar(
                text("SELECT count(*) FROM event_streams WHERE key_id = :k"), {"k": key_id}
            )
        assert rows == cap
        for keeper in keepers:
            await keeper.stop()  # drops its slots
    finally:
        for engine in engines:
            await engine.dispose()


async def test_slots_taken_at_once_by_two_processes_never_exceed_the_cap(
    database_url: str, tenant: Tenant
) -> None:
    """Streams of events only: each take is a statement of its own (``StreamSlots.acquire``). It counts the key's
    live slots under the key's lock, so none counts before another's insert is committed."""

    async def take(keeper: StreamSlots, _engine: AsyncEngine, key_id: uuid.UUID) -> uuid.UUID:
        return await keeper.acquire(key_id)

    await forty_takes_at_once(database_url, tenant, take)


async def test_slots_taken_in_the_runs_transactions_never_exceed_the_cap(
    database_url: str, tenant: Tenant
) -> None:
    """A run's or a turn's slot is taken in its own transaction, last before the commit (``StreamSlots.take_in``),
    here each transaction held open a moment after the take. The key's lock is held to each commit, so none
    counts before another's slot is committed; those refused roll back and leave no row."""

    async def take(keeper: StreamSlots, engine: AsyncEngine, key_id: uuid.UUID) -> uuid.UUID:
        async with AsyncSession(engine) as session, session.begin():
            slot = await keeper.take_in(session, key_id)
            await asyncio.sleep(0.02)  # the run's other statements, its commit
            return slot

    await forty_takes_at_once(database_url, tenant, take)
