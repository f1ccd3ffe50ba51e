"""Service API (dataset key): ``/v1/datasets/{id}/metadata`` and ``/v1/datasets/{id}/documents/metadata``."""

from __future__ import annotations

import uuid
from typing import Literal

from litestar import Controller, delete, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.knowledge.datasets.services import get_dataset
from app.knowledge.metadata import services
from app.knowledge.metadata.schemas import (
    BuiltInField,
    BuiltInFields,
    DocumentsMetadataUpdate,
    MetadataCreate,
    MetadataFieldOut,
    MetadataList,
    MetadataOut,
    MetadataRename,
)
from app.schemas import Success
from app.tenancy.services import KeyContext
from db.models import DatasetMetadata

BUILT_IN = BuiltInFields(fields=[BuiltInField(name=n, type=t) for n, t in services.BUILT_IN_FIELDS])


def _out(field: DatasetMetadata) -> MetadataOut:
    return MetadataOut(id=field.id, type=field.type, name=field.name)


class MetadataController(Controller):
    path = "/v1/datasets"
    tags = ["service api: knowledge"]

    @post("/{dataset_id:uuid}/metadata", responses=responses(401, 404))
    async def create_metadata(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, data: MetadataCreate
    ) -> MetadataOut:
        """Declare a metadata field (201, like Dify); its name must be new and not a built-in field's."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id, lock="no_key_update")
        return _out(await services.create_field(db_session, dataset, data.type, data.name))

    @get("/{dataset_id:uuid}/metadata", responses=responses(401, 404))
    async def list_metadata(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID
    ) -> MetadataList:
        """The dataset's fields, each with how many documents hold a value for it."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id)
        fields = await services.list_fields(db_session, dataset)
        return MetadataList(
            doc_metadata=[MetadataFieldOut(id=f.id, name=f.name, type=f.type, count=n) for f, n in fields],
            built_in_field_enabled=dataset.built_in_field_enabled,
        )

    @patch("/{dataset_id:uuid}/metadata/{metadata_id:uuid}", responses=responses(401, 404))
    async def rename_metadata(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        metadata_id: uuid.UUID,
        data: MetadataRename,
    ) -> MetadataOut:
        """Rename a field; the documents' values move to the new name."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id, lock="no_key_update")
        return _out(await services.rename_field(db_session, dataset, metadata_id, data.name))

    @delete("/{dataset_id:uuid}/metadata/{metadata_id:uuid}", responses=responses(401, 404))
    async def delete_metadata(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, metadata_id: uuid.UUID
    ) -> None:
        """Delete a field and every document's value for it."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id, lock="no_key_update")
        await services.delete_field(db_session, dataset, metadata_id)

    @get("/{dataset_id:uuid}/metadata/built-in", responses=responses(401, 404))
    async def built_in_fields(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID
    ) -> BuiltInFields:
        """The built-in fields a dataset can enable."""
        await get_dataset(db_session, key.workspace_id, dataset_id)
        return BUILT_IN

    @get("/metadata/built-in", responses=responses(401))
    async def built_in_fields_legacy(self) -> BuiltInFields:
        """The built-in fields (the path older Dify versions serve)."""
        return BUILT_IN

    @post("/{dataset_id:uuid}/metadata/built-in/{action:str}", status_code=200, responses=responses(401, 404))
    async def toggle_built_in_fields(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        action: Literal["enable", "disable"],
    ) -> Success:
        """Enable (fill in every document) or disable (remove from every document) the built-in fields."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id, lock="no_key_update")
        await services.set_built_in_fields(db_session, dataset, action == "enable")
        return Success()

    @post("/{dataset_id:uuid}/documents/metadata", status_code=200, responses=responses(401, 404))
    async def update_documents_metadata(
        self, db_session: AsyncSession, key: KeyContext, dataset_id: uuid.UUID, data: DocumentsMetadataUpdate
    ) -> Success:
        """Set documents' metadata values; each value is checked against its field's type."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id, lock="share")
        await services.update_document_values(db_session, dataset, data.operation_data)
        return Success()
