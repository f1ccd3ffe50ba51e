"""A statement that waits too long, or a database that is out of disk, gives an error — never a hang.

* ``SLUICE_DB_STATEMENT_TIMEOUT``: a request stuck behind a lock answers 503 ``database_timeout`` once the
  timeout passes; a worker's job stuck the same way fails, and the recovery sweep hands the run a new job once
  the lock is gone, so the run still finishes.
* A full disk, simulated with a tablespace on a 2 MiB tmpfs that holds the runs table (root only: mounting needs
  it): starting a run answers 503 ``database_full`` at once; once space is freed, runs start again.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.asgi import create_app
from app.settings import Settings
from app.workflows import services
from db import embedded, urls
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.faults.conftest import make_app
from tests.support.processes import ROOT
from tests.support.service import ThreadedWorker

ECHO = """
version: 0.5.0
kind: app
app: {name: Echo, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: text, type: paragraph, required: false}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: text, value_selector: [start, text]}]}}
    edges:
      - {id: e1, source: start, target: end}
"""


def limited_settings(database_url: str, tmp_path: Path, **changes: object) -> Settings:
    base = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        log_level="WARNING",
        worker_poll_seconds=0.1,
    )
    return msgspec.structs.replace(base, **changes)


@pytest.fixture
async def engine(private_database: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(urls.asyncpg(private_database))
    yield made
    await made.dispose()


async def new_run(engine: AsyncEngine, app_id: str) -> uuid.UUID:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        run = await services.start_run(session, uuid.UUID(app_id), {}, "u")
        await session.commit()
    return run.id


async def test_a_request_stuck_behind_a_lock_answers_503_after_the_statement_timeout(
    private_database: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    app_id, token = await make_app(private_database, ECHO)
    run_id = await new_run(engine, app_id)
    settings = limited_settings(private_database, tmp_path, db_statement_timeout=1.0)
    headers = {"Authorization": f"Bearer {token}"}
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        async with engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(text("SELECT 1 FROM workflow_runs WHERE id = :r FOR UPDATE"), {"r": run_id})
            started = time.perf_counter()
            stuck = await client.post(f"/v1/workflows/tasks/{run_id}/stop", json={}, headers=headers)
            waited = time.perf_counter() - started
            await transaction.rollback()
        assert stuck.status_code == 503, stuck.text
        assert stuck.json()["code"] == "database_timeout"
        assert stuck.headers["retry-after"]
        assert 0.9 < waited < 5
        stopped = await client.post(f"/v1/workflows/tasks/{run_id}/stop", json={}, headers=headers)
        assert stopped.status_code == 200, stopped.text


async def test_a_job_stuck_behind_a_lock_fails_and_its_run_is_recovered(
    private_database: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    app_id, _ = await make_app(private_database, ECHO)
    settings = limited_settings(
        private_database, tmp_path, db_statement_timeout=1.0, run_recovery_seconds=1.0
    )
    run_id = await new_run(engine, app_id)
    worker = ThreadedWorker(settings)
    async with engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text("SELECT 1 FROM workflow_runs WHERE id = :r FOR UPDATE"), {"r": run_id})
        worker.start()
        try:
            for _ in range(100):
                async with engine.connect() as conn:
                    job = await conn.scalar(
                        text(
                            "SELECT status::text FROM procrastinate_jobs WHERE lock = :l ORDER BY id LIMIT 1"
                        ),
                        {"l": f"run:{run_id}"},
                    )
                if job == "failed":
                    break
                await asyncio.sleep(0.1)
            assert job == "failed"  # an error within the timeout, not a job waiting forever
        finally:
            await transaction.rollback()
    try:
        for _ in range(300):  # the sweep runs every 15 s
            async with engine.connect() as conn:
                status = await conn.scalar(
                    text("SELECT status FROM workflow_runs WHERE id = :r"), {"r": run_id}
                )
            if status == "succeeded":
                break
            await asyncio.sleep(0.2)
        assert status == "succeeded"
    finally:
        worker.stop()


def _mount_tiny_tmpfs(where: Path, owner: str) -> bool:
    user = pwd.getpwnam(owner)
    where.mkdir(parents=True)
    mounted = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size=2m,mode=0700,uid={user.pw_uid},gid={user.pw_gid}",
            "tmpfs",
            str(where),
        ],
        capture_output=True,
    )
    return mounted.returncode == 0


@pytest.fixture
def tiny_tablespace(server_url: str, private_database: str) -> Iterator[str]:
    """A tablespace on a 2 MiB tmpfs holding the private database's ``workflow_runs`` (and its TOAST table)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("simulating a full disk mounts a tmpfs, which needs root")
    pgdata = embedded.pgdata(Path(os.environ.get("SLUICE_DATA_DIR") or ROOT / ".data"))
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name if pgdata.exists() else "root"
    where = pgdata.parent / f"tiny-{uuid.uuid4().hex[:8]}"
    if not _mount_tiny_tmpfs(where, owner):
        where.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    name = f"tiny_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(urls.libpq(server_url), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{where}'")
        with psycopg.connect(urls.libpq(private_database), autocommit=True) as conn:
            conn.execute(f"ALTER TABLE workflow_runs SET TABLESPACE {name}")
            conn.execute(f"CREATE TABLE filler (x text) TABLESPACE {name}")
        yield private_database
    finally:
        with psycopg.connect(urls.libpq(private_database), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS filler")
            conn.execute("ALTER TABLE workflow_runs SET TABLESPACE pg_default")
        with psycopg.connect(urls.libpq(server_url), autocommit=True) as conn:
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def fill(database_url: str) -> None:
    with psycopg.connect(urls.libpq(database_url), autocommit=True) as conn:
        for _ in range(200):
            try:
                # md5 text does not compress: every row takes its room
                conn.execute(
                    "INSERT INTO filler SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 2000)"
                )
            except psycopg.errors.DiskFull:
                return
    raise AssertionError("the tablespace never filled up")


async def test_a_full_disk_answers_503_and_recovers(tiny_tablespace: str, tmp_path: Path) -> None:
    database_url = tiny_tablespace
    app_id, token = await make_app(database_url, ECHO)
    fill(database_url)
    settings = limited_settings(database_url, tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"inputs": {"text": "y" * 100_000}, "response_mode": "blocking", "user": "u"}
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        started = time.perf_counter()
        full = await client.post("/v1/workflows/run", json=body, headers=headers)
        assert time.perf_counter() - started < 10
        assert full.status_code == 503, full.text
        assert full.json()["code"] == "database_full"
        assert full.json()["status"] == 503
    with psycopg.connect(urls.libpq(database_url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_runs").fetchone() == (0,)  # nothing half-written
        conn.execute("DROP TABLE filler")  # space freed (TRUNCATE would need a new file first)
    engine = create_async_engine(urls.asyncpg(database_url))
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            await services.start_run(session, uuid.UUID(app_id), {"text": "y" * 100_000}, "u")
            await session.commit()
    finally:
        await engine.dispose()
