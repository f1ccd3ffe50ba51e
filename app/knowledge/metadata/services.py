"""Metadata fields (``dataset_metadata``) and their values (``documents.doc_metadata``, keyed by field name).

Values live in the documents, so renaming or deleting a field rewrites every document of the dataset that has
it: each is ONE set-based ``UPDATE`` with jsonb operators, in the same transaction as the field change.

Concurrency: changing a field (create, rename, delete, built-in toggles) locks the dataset row ``FOR NO KEY
UPDATE``; writing values locks it ``FOR SHARE``. So a rename never interleaves with a value write that looked up
the old name (Dify uses a Redis lock for this), value writes do not block each other, and neither lock blocks
inserting documents into the dataset (a foreign-key check only takes ``FOR KEY SHARE``). Services never commit.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.knowledge.errors import InvalidMetadata
from app.knowledge.metadata.schemas import DocumentMetadataOperation
from db.models import Dataset, DatasetMetadata, Document

#: Dify's built-in fields (``BuiltInField``), filled from the document itself when enabled on the dataset.
BUILT_IN_FIELDS: tuple[tuple[str, str], ...] = (
    ("document_name", "string"),
    ("uploader", "string"),
    ("upload_date", "time"),
    ("last_update_date", "time"),
    ("source", "string"),
)
BUILT_IN_NAMES = frozenset(name for name, _ in BUILT_IN_FIELDS)

#: The built-in values of document ``d``. Sluice has no user accounts, so ``uploader`` is null; dates are Unix
#: seconds; ``source`` maps the data source type as Dify's ``MetadataDataSource`` does.
_BUILT_IN_VALUES = """jsonb_build_object(
    'document_name', d.name,
    'uploader', NULL,
    'upload_date', floor(extract(epoch FROM d.created_at))::bigint,
    'last_update_date', floor(extract(epoch FROM d.updated_at))::bigint,
    'source', CASE d.data_source_type WHEN 'upload_file' THEN 'file_upload' WHEN 'website_crawl' THEN 'website'
              WHEN 'notion_import' THEN 'notion' ELSE d.data_source_type END)"""


async def _field(session: AsyncSession, dataset: Dataset, metadata_id: uuid.UUID) -> DatasetMetadata:
    field = await session.scalar(
        select(DatasetMetadata).where(
            DatasetMetadata.id == metadata_id, DatasetMetadata.dataset_id == dataset.id
        )
    )
    if field is None:
        raise NotFound("Metadata not found.")
    return field


async def _check_name_free(session: AsyncSession, dataset: Dataset, name: str) -> None:
    # Dify's checks and messages (a 400 there too).
    if name in BUILT_IN_NAMES:
        raise InvalidParam("Metadata name already exists in Built-in fields.")
    taken = await session.scalar(
        select(DatasetMetadata.id).where(
            DatasetMetadata.dataset_id == dataset.id, DatasetMetadata.name == name
        )
    )
    if taken is not None:
        raise InvalidParam("Metadata name already exists.")


# -- fields ----------------------------------------------------------------------------------------------------


async def create_field(session: AsyncSession, dataset: Dataset, type_: str, name: str) -> DatasetMetadata:
    await _check_name_free(session, dataset, name)
    field = DatasetMetadata(dataset_id=dataset.id, type=type_, name=name)
    try:
        async with session.begin_nested():
            session.add(field)
            await session.flush()
    except IntegrityError:  # created meanwhile by a transaction that did not hold the dataset lock
        raise InvalidParam("Metadata name already exists.") from None
    return field


async def list_fields(session: AsyncSession, dataset: Dataset) -> list[tuple[DatasetMetadata, int]]:
    """Every field with the number of documents holding a non-null value for it."""
    has_value = func.jsonb_typeof(Document.doc_metadata.op("->")(DatasetMetadata.name)) != "null"
    rows = await session.execute(
        select(DatasetMetadata, func.count(Document.id))
        .outerjoin(Document, (Document.dataset_id == DatasetMetadata.dataset_id) & has_value)
        .where(DatasetMetadata.dataset_id == dataset.id)
        .group_by(DatasetMetadata.id)
        .order_by(DatasetMetadata.created_at, DatasetMetadata.id)
    )
    return [(field, int(count)) for field, count in rows]


async def rename_field(
    session: AsyncSession, dataset: Dataset, metadata_id: uuid.UUID, name: str
) -> DatasetMetadata:
    """Rename the field and, in the same transaction, the key in every document of the dataset holding it."""
    field = await _field(session, dataset, metadata_id)
    if field.name == name:
        return field
    await _check_name_free(session, dataset, name)
    old = field.name
    await session.execute(
        text(
            "UPDATE documents SET doc_metadata = (doc_metadata - CAST(:old AS text)) "
            "|| jsonb_build_object(CAST(:new AS text), doc_metadata -> CAST(:old AS text)) "
            "WHERE dataset_id = :dataset_id AND doc_metadata ? CAST(:old AS text)"
        ),
        {"old": old, "new": name, "dataset_id": dataset.id},
    )
    field.name = name
    await session.flush()
    return field


async def delete_field(session: AsyncSession, dataset: Dataset, metadata_id: uuid.UUID) -> None:
    """Delete the field and its value from every document of the dataset."""
    field = await _field(session, dataset, metadata_id)
    await session.execute(
        text(
            "UPDATE documents SET doc_metadata = doc_metadata - CAST(:name AS text) "
            "WHERE dataset_id = :dataset_id AND doc_metadata ? CAST(:name AS text)"
        ),
        {"name": field.name, "dataset_id": dataset.id},
    )
    await session.delete(field)
    await session.flush()


async def set_built_in_fields(session: AsyncSession, dataset: Dataset, enabled: bool) -> None:
    """Enable (fill every document's built-in values) or disable (remove them); idempotent like Dify's."""
    if dataset.built_in_field_enabled == enabled:
        return
    if enabled:
        statement = f"UPDATE documents AS d SET doc_metadata = d.doc_metadata || {_BUILT_IN_VALUES} "  # noqa: S608
    else:
        statement = "UPDATE documents AS d SET doc_metadata = d.doc_metadata - CAST(:names AS text[]) "
    await session.execute(
        text(statement + "WHERE d.dataset_id = :dataset_id"),
        {"dataset_id": dataset.id, **({} if enabled else {"names": [n for n, _ in BUILT_IN_FIELDS]})},
    )
    dataset.built_in_field_enabled = enabled
    await session.flush()


# -- values ----------------------------------------------------------------------------------------------------


def _coerce(field: DatasetMetadata, value: Any) -> Any:
    """The value to store for ``field``, or InvalidMetadata. null clears a value of any type.

    ``string`` takes text (numbers are turned into text); ``number`` takes a number or numeric text;
    ``time`` takes a Unix timestamp in seconds (an integer, or integer text).
    """
    if value is None:
        return None
    if field.type == "string":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        try:
            number = float(value.strip()) if value.strip() else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InvalidMetadata(f"Metadata '{field.name}' must be a {field.type}, got {value!r}.")
        value = int(number) if number.is_integer() else number
    if field.type == "number":
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidMetadata(
                f"Metadata '{field.name}' must be an integer Unix timestamp, got {value!r}."
            )
        value = int(value)
    return value


async def update_document_values(
    session: AsyncSession, dataset: Dataset, operations: Sequence[DocumentMetadataOperation]
) -> None:
    """Dify's ``update_documents_metadata``: per document, replace its values (or merge, ``partial_update``).

    Operations are folded per document in request order first, then applied with one ``UPDATE``.
    """
    ids = {item.id for op in operations for item in op.metadata_list}
    fields = {
        f.id: f
        for f in await session.scalars(
            select(DatasetMetadata).where(
                DatasetMetadata.dataset_id == dataset.id, DatasetMetadata.id.in_(ids)
            )
        )
    }
    unknown = ids - fields.keys()
    if unknown:
        raise InvalidMetadata(f"Metadata not found in this dataset: {', '.join(sorted(map(str, unknown)))}.")
    document_ids = {op.document_id for op in operations}
    found = set(
        await session.scalars(
            select(Document.id).where(Document.dataset_id == dataset.id, Document.id.in_(document_ids))
        )
    )
    if document_ids - found:
        raise NotFound("Document not found.")
    folded: dict[uuid.UUID, tuple[bool, dict[str, Any]]] = {}
    for op in operations:
        values = {fields[item.id].name: _coerce(fields[item.id], item.value) for item in op.metadata_list}
        replace, merged = folded.get(op.document_id, (False, {}))
        folded[op.document_id] = (True, values) if not op.partial_update else (replace, {**merged, **values})
    if not folded:
        return
    built_in = f" || {_BUILT_IN_VALUES}" if dataset.built_in_field_enabled else ""
    await session.execute(
        text(
            "UPDATE documents AS d SET doc_metadata = (CASE WHEN v.replace THEN CAST(v.patch AS jsonb) "  # noqa: S608
            f"ELSE d.doc_metadata || CAST(v.patch AS jsonb) END){built_in} "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:patches AS text[]), CAST(:replace AS boolean[])) "
            "AS v(id, patch, replace) WHERE d.id = v.id AND d.dataset_id = :dataset_id"
        ),
        {
            "ids": list(folded),
            "patches": [msgspec.json.encode(values).decode() for _, values in folded.values()],
            "replace": [replace for replace, _ in folded.values()],
            "dataset_id": dataset.id,
        },
    )
