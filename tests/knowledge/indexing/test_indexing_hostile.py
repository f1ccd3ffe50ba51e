"""Hostile documents through the real pipeline (a worker with its sandbox): each ends in ``error`` with a readable
message, or completes, within its limits; pausing or deleting a document whose parse is running kills the child."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.documents import services as documents
from app.knowledge.indexing import lifecycle
from db.models import Document
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.hostile_files import (
    docx_of_empty_paragraphs,
    docx_zip_bomb,
    pdf_sharing_one_stream,
    pdf_slow,
)
from tests.knowledge.rows import make_dataset, make_workspace

pytestmark = pytest.mark.usefixtures("kb_worker")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
URLS_AND_EMAILS = {
    "mode": "custom",
    "rules": {
        "pre_processing_rules": [{"id": "remove_urls_emails", "enabled": True}],
        "segmentation": {"separator": "\n", "max_tokens": 500},
    },
}


def sandbox_children() -> dict[int, float]:
    """The children of this process's sandbox runners (the ThreadedWorker's), with their CPU seconds."""
    runners = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"app.sandbox.runner" in cmdline:
            runners.add(int(entry))
    children: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in runners:
            children[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return children


async def busy_children(window: float = 1.0) -> list[int]:
    """Children of the runner that used more than a fifth of a CPU during ``window`` seconds."""
    before = sandbox_children()
    await asyncio.sleep(window)
    after = sandbox_children()
    return [pid for pid, cpu in after.items() if cpu - before.get(pid, cpu) > window / 5]


async def job_status(sessions: async_sessionmaker[AsyncSession], document_id: object) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'index_document' "
                "AND args->>'document_id' = :d ORDER BY id"
            ),
            {"d": str(document_id)},
        )
    return [row[0] for row in rows]


async def test_a_docx_of_1_5_million_empty_paragraphs_ends_in_error(
    kb_sessions, kb_session, kb_workspace
) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    data = docx_of_empty_paragraphs()
    assert len(data) < 50_000
    began = time.monotonic()
    document = await add_document(kb_sessions, dataset, data, name="flood.docx")
    done = await wait_for_status(kb_sessions, document.id, timeout=30)
    assert done.indexing_status == "error"
    assert done.error is not None
    assert "SLUICE_INDEXING_MAX_COMPRESSION_RATIO" in done.error
    assert time.monotonic() - began < 10


async def test_a_pdf_whose_pages_share_one_big_stream_ends_in_error(
    kb_sessions, kb_session, kb_workspace
) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    began = time.monotonic()
    document = await add_document(kb_sessions, dataset, pdf_sharing_one_stream(200, 512), name="shared.pdf")
    done = await wait_for_status(kb_sessions, document.id, timeout=30)
    assert done.indexing_status == "error"
    assert done.error is not None
    assert "times its size" in done.error
    assert time.monotonic() - began < 10


async def test_a_docx_zip_bomb_ends_in_error(kb_sessions, kb_session, kb_workspace) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    document = await add_document(kb_sessions, dataset, docx_zip_bomb(120), name="bomb.docx")
    done = await wait_for_status(kb_sessions, document.id, timeout=30)
    assert done.indexing_status == "error"
    assert done.error is not None
    assert "more than 100 MB" in done.error


async def test_60000_brackets_with_remove_urls_emails_complete_quickly(
    kb_sessions, kb_session, kb_workspace
) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    began = time.monotonic()
    document = await add_document(
        kb_sessions, dataset, "[" * 60_000, name="brackets.txt", process_rule=URLS_AND_EMAILS
    )
    done = await wait_for_status(kb_sessions, document.id, timeout=30)
    assert done.indexing_status == "completed", done.error
    assert time.monotonic() - began < 10


async def _start_slow_parse(sessions: async_sessionmaker[AsyncSession]) -> Document:
    async with sessions() as session:
        dataset = await make_dataset(session, await make_workspace(session), technique="high_quality")
    document = await add_document(sessions, dataset, pdf_slow(30, 1024), name="slow.pdf")
    await wait_for_status(sessions, document.id, ("parsing",), timeout=30)
    for _ in range(20):
        if await busy_children(0.5):
            return document
    raise AssertionError("no sandbox child is parsing the slow PDF")


async def test_pausing_a_document_kills_its_parse(kb_sessions) -> None:
    document = await _start_slow_parse(kb_sessions)
    async with kb_sessions() as session, session.begin():
        row = await session.get(Document, document.id)
        assert row is not None
        await lifecycle.pause_indexing(session, row)
    began = time.monotonic()
    while await job_status(kb_sessions, document.id) != ["succeeded"]:
        assert time.monotonic() - began < 5, "the job did not stop"
        await asyncio.sleep(0.1)
    assert await busy_children() == []
    async with kb_sessions() as session:
        paused = await session.get(Document, document.id)
    assert paused is not None
    assert paused.indexing_status == "paused"
    assert paused.error is None


async def test_deleting_a_document_kills_its_parse(kb_sessions) -> None:
    document = await _start_slow_parse(kb_sessions)
    async with kb_sessions() as session, session.begin():
        dataset_id = (await session.get(Document, document.id)).dataset_id  # type: ignore[union-attr]
        from db.models import Dataset

        dataset = await session.get(Dataset, dataset_id)
        assert dataset is not None
        await documents.delete_document(session, dataset.workspace_id, dataset_id, document.id)
    began = time.monotonic()
    while await job_status(kb_sessions, document.id) != ["succeeded"]:
        assert time.monotonic() - began < 5, "the job did not stop"
        await asyncio.sleep(0.1)
    assert await busy_children() == []
