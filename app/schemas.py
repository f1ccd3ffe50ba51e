"""Schema pieces shared by every feature: timestamps as Unix seconds (like Dify) and paginated lists."""

from __future__ import annotations

import datetime
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


def unix(value: datetime.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


class Page(msgspec.Struct, Generic[T]):
    """A page of results, Dify style."""

    data: list[T]
    page: int
    limit: int
    total: int
    has_more: bool

    @classmethod
    def of(cls, data: list[T], page: int, limit: int, total: int) -> Page[T]:
        return cls(data=data, page=page, limit=limit, total=total, has_more=page * limit < total)


class Listing(msgspec.Struct, Generic[T]):
    data: list[T]
