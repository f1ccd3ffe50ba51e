"""Tag bodies, shaped like Dify's (``tag_fields``; ``binding_count`` is a string there, and here)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^\x00]*\S[^\x00]*$")]


class TagCreate(msgspec.Struct, kw_only=True):
    name: TagName


class TagUpdate(msgspec.Struct, kw_only=True):
    tag_id: uuid.UUID
    name: TagName


class TagDelete(msgspec.Struct, kw_only=True):
    tag_id: uuid.UUID


class TagBinding(msgspec.Struct, kw_only=True):
    tag_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=100)]
    target_id: uuid.UUID


class TagUnbinding(msgspec.Struct, kw_only=True):
    tag_id: uuid.UUID
    target_id: uuid.UUID


class TagOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    type: str
    #: How many datasets carry the tag, as a decimal string (Dify marshals it with ``fields.String``).
    binding_count: str


class DatasetTag(msgspec.Struct):
    id: uuid.UUID
    name: str


class DatasetTags(msgspec.Struct):
    data: list[DatasetTag]
    total: int
