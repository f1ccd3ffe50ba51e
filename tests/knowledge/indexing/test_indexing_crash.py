"""A worker killed with `kill -9` in the middle of indexing a large document: after a new worker recovers the
stalled job, the document completes with exactly the segments the splitter makes — none doubled, none missing,
every one with its vector."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.knowledge.indexing.cleaning import clean
from app.knowledge.indexing.pipeline import EMBED_BATCH
from app.knowledge.indexing.splitting import ProcessRule, split_document
from db import urls
from db.models import Segment
from tests.conftest import new_database
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.rows import make_dataset, make_workspace
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import spawn, stop

LINES = [
    f"Line {i}: a sentence about item {i * 13 % 997} so every segment differs from the rest."
    for i in range(3000)
]


async def test_indexing_survives_a_killed_worker(server_url: str, tmp_path: Path) -> None:
    database_url = new_database(server_url)
    engine = create_async_engine(urls.asyncpg(database_url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    fake = FakeOpenAI().start()
    fake.queue_delay(0.1, times=10_000)  # slow embeddings: the kill lands mid-document
    env = {
        "DATABASE_URL": database_url,
        "SLUICE_WORKER_POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        "EMBEDDING_API_BASE": fake.base_url,
    }
    doomed = spawn(["-m", "tests.support.worker"], env, tmp_path / "doomed.log")
    survivor = None
    try:
        async with sessions() as session:
            dataset = await make_dataset(
                session,
                await make_workspace(session),
                technique="high_quality",
                embedding=("openai", "fake-crash"),
            )
        text = "\n".join(LINES)
        document = await add_document(sessions, dataset, text, name="large.txt")
        rule = ProcessRule.from_api("automatic", None)
        expected = [c.content for c in split_document(clean(text, rule.pre_processing), rule)]
        assert len(expected) > 300

        async def embedded() -> int:
            async with sessions() as session:
                return int(
                    await session.scalar(
                        select(func.count()).where(
                            Segment.document_id == document.id, Segment.embedding_space_id.is_not(None)
                        )
                    )
                    or 0
                )

        for _ in range(600):
            if await embedded() >= 100:
                break
            await asyncio.sleep(0.05)
        done_before_kill = await embedded()
        assert 0 < done_before_kill < len(expected)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

        survivor = spawn(
            ["-m", "tests.support.worker"],
            {**env, "SLUICE_STALLED_JOB_SECONDS": "1"},
            tmp_path / "survivor.log",
        )
        done = await wait_for_status(sessions, document.id, timeout=120)
        assert done.indexing_status == "completed", done.error
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(Segment.position, Segment.content, Segment.embedding_space_id, Segment.status)
                    .where(Segment.document_id == document.id)
                    .order_by(Segment.position)
                )
            ).all()
        assert [r.content for r in rows] == expected  # none doubled, none missing, in order
        assert [r.position for r in rows] == list(range(1, len(expected) + 1))
        assert all(r.embedding_space_id is not None and r.status == "completed" for r in rows)
        # only the batch in flight at the kill was embedded twice
        embedded_inputs = sum(len(b["input"]) for b in fake.bodies("/v1/embeddings"))
        assert len(expected) <= embedded_inputs <= len(expected) + EMBED_BATCH
    finally:
        stop(doomed)
        if survivor is not None:
            stop(survivor)
        fake.stop()
        await engine.dispose()
