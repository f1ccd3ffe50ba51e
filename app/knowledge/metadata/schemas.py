"""Metadata bodies, shaped like Dify's (``MetadataArgs``, ``MetadataOperationData``, ``dataset_metadata_fields``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from app.schemas import Name, text_field

MetadataType = Literal["string", "number", "time"]
#: A value as a client sends it; checked against the field's type by the service.
MetadataValue = Annotated[str, text_field(0, 10_000)] | int | float | None


class MetadataCreate(msgspec.Struct, kw_only=True):
    type: MetadataType
    name: Name


class MetadataRename(msgspec.Struct, kw_only=True):
    name: Name


class MetadataOut(msgspec.Struct):
    id: uuid.UUID
    type: str
    name: str


class MetadataFieldOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    type: str
    #: Documents of the dataset holding a (non-null) value for the field.
    count: int


class MetadataList(msgspec.Struct):
    doc_metadata: list[MetadataFieldOut]
    built_in_field_enabled: bool


class BuiltInField(msgspec.Struct):
    name: str
    type: str


class BuiltInFields(msgspec.Struct):
    fields: list[BuiltInField]


class MetadataDetail(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    #: Accepted for Dify compatibility; the value is stored under the field's current name (looked up by id).
    name: Annotated[str, text_field(0, 255)] = ""
    value: MetadataValue = None


class DocumentMetadataOperation(msgspec.Struct, kw_only=True):
    document_id: uuid.UUID
    metadata_list: Annotated[list[MetadataDetail], msgspec.Meta(max_length=100)]
    #: False (Dify's default): the list replaces the document's values; true: merged into them.
    partial_update: bool = False


class DocumentsMetadataUpdate(msgspec.Struct, kw_only=True):
    operation_data: Annotated[list[DocumentMetadataOperation], msgspec.Meta(max_length=1000)]
