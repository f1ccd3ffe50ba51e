"""Schema pieces shared by every feature: timestamps as Unix seconds (like Dify), paginated lists, and the
``{"result": "success"}`` body."""

from __future__ import annotations

import datetime
from typing import Annotated, Generic, Literal, TypeVar

import msgspec
from litestar.params import Parameter

T = TypeVar("T")

#: PostgreSQL text cannot hold NUL characters: refuse them at the edge, with the field named.
NO_NUL = r"^[^\x00]*$"


def text_field(min_length: int = 0, max_length: int | None = None) -> msgspec.Meta:
    return msgspec.Meta(min_length=min_length, max_length=max_length, pattern=NO_NUL)


#: A name: some visible character, no NUL.
#: Pagination query parameters, Dify's bounds (``limit`` at most 100).
PageNumber = Annotated[int, Parameter(ge=1, le=100000)]
Limit = Annotated[int, Parameter(ge=1, le=100)]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*\S[^\x00]*$")]


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


class Success(msgspec.Struct):
    """Dify's ``{"result": "success"}``: the body of an action that has nothing else to report."""

    result: Literal["success"] = "success"
