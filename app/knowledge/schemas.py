"""Dataset bodies, shaped like Dify's Service API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from app.schemas import text_field, unix
from db.models import Dataset


class DatasetCreate(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]*\S[^\x00]*$")]
    description: Annotated[str, text_field(0, 400)] = ""
    indexing_technique: Literal["high_quality", "economy"] | None = None
    permission: Literal["only_me", "all_team_members", "partial_members"] = "only_me"


class DatasetOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    description: str
    provider: str
    permission: str
    data_source_type: str | None
    indexing_technique: str | None
    app_count: int
    document_count: int
    word_count: int
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, d: Dataset) -> DatasetOut:
        return cls(
            id=d.id,
            name=d.name,
            description=d.description,
            provider="vendor",
            permission=d.permission,
            data_source_type=None,
            indexing_technique=d.indexing_technique,
            app_count=0,
            document_count=0,
            word_count=0,
            created_at=unix(d.created_at) or 0,
            updated_at=unix(d.updated_at) or 0,
        )
