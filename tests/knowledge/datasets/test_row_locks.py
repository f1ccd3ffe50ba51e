"""The row lock each knowledge operation takes on its dataset and document, as PostgreSQL receives it.

One ``get_dataset(lock=)`` and one ``get_document(lock=)`` serve every caller; the locks are what keeps
concurrent writers apart (document creation: FOR UPDATE; metadata field changes: FOR NO KEY UPDATE; metadata
value writes: FOR SHARE; deleting a dataset: FOR NO KEY UPDATE; segment writes: the document FOR UPDATE), so
each caller's lock is pinned here, statement by statement.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant
from tests.knowledge.api_helpers import make_document
from tests.knowledge.rows import make_dataset

_LOCK = re.compile(r"FOR (NO KEY UPDATE|UPDATE|SHARE)\s*$")


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def locks(seen: list[str], table: str, scoped_by: str) -> list[str]:
    """The lock clause (``"none"`` without one) of each SELECT of ``table`` rows scoped by ``scoped_by``."""
    found = []
    for statement in seen:
        if (
            statement.lstrip().startswith("SELECT")
            and f"FROM {table} " in statement
            and scoped_by in statement
        ):
            match = _LOCK.search(statement)
            found.append(match.group(1) if match else "none")
    return found


def dataset_locks(seen: list[str]) -> list[str]:
    return locks(seen, "datasets", "datasets.workspace_id =")


def document_locks(seen: list[str]) -> list[str]:
    return locks(seen, "documents", "documents.dataset_id =")


async def test_each_dataset_operation_takes_its_own_lock(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, uuid.UUID(tenant.workspace["id"]), technique="economy")
    document = await make_document(session, dataset)
    headers = tenant.dataset_headers
    base = f"/v1/datasets/{dataset.id}"

    with statements() as seen:
        assert (await client.get(base, headers=headers)).status_code == 200
    assert dataset_locks(seen) == ["none"]

    with statements() as seen:
        created = await client.post(
            f"{base}/document/create_by_text",
            json={"name": "notes", "text": "Bikes need air.", "indexing_technique": "economy"},
            headers=headers,
        )
        assert created.status_code == 200, created.text
    assert dataset_locks(seen) == ["UPDATE"]

    with statements() as seen:
        field = await client.post(
            f"{base}/metadata", json={"type": "string", "name": "author"}, headers=headers
        )
        assert field.status_code == 201, field.text
    assert dataset_locks(seen) == ["NO KEY UPDATE"]

    operation = {
        "document_id": str(document.id),
        "metadata_list": [{"id": field.json()["id"], "name": "author", "value": "Ada"}],
    }
    with statements() as seen:
        written = await client.post(
            f"{base}/documents/metadata", json={"operation_data": [operation]}, headers=headers
        )
        assert written.status_code == 200, written.text
    assert dataset_locks(seen) == ["SHARE"]

    with statements() as seen:
        assert (await client.delete(base, headers=headers)).status_code == 204
    assert dataset_locks(seen) == ["NO KEY UPDATE"]


async def test_segment_writes_lock_the_document_and_reads_do_not(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, uuid.UUID(tenant.workspace["id"]), technique="economy")
    document = await make_document(session, dataset)
    url = f"/v1/datasets/{dataset.id}/documents/{document.id}/segments"

    with statements() as seen:
        created = await client.post(
            url, json={"segments": [{"content": "first"}]}, headers=tenant.dataset_headers
        )
        assert created.status_code == 200, created.text
    assert dataset_locks(seen) == ["none"]
    assert document_locks(seen) == ["UPDATE"]

    with statements() as seen:
        assert (await client.get(url, headers=tenant.dataset_headers)).status_code == 200
    assert document_locks(seen) == ["none"]
