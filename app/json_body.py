"""JSON from clients, with a cap on nesting: a few thousand ``[`` must be a 400, never a ``RecursionError``.

Every JSON request body goes through :class:`SluiceRequest` (the app's ``request_class``); JSON found inside other
bodies (the ``data`` field of a multipart upload) goes through :func:`decode`. The depth is measured on the raw
bytes before decoding, in linear time: strings are cut out with one regex, the remaining brackets counted.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from app.errors import InvalidParam

T = TypeVar("T")

#: Deeper than any Dify request needs (run inputs, metadata filters, DSL graphs travel as YAML text).
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


class TooDeep(InvalidParam):
    """The JSON body is nested too deeply."""


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in ``raw`` (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)))


def check_depth(raw: bytes) -> None:
    # Fewer brackets than the cap cannot nest deeper than it: the common case costs one count.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nesting_depth(raw) > MAX_JSON_DEPTH:
        raise TooDeep(f"JSON is nested more than {MAX_JSON_DEPTH} levels deep.")


def decode(raw: bytes, type: type[T]) -> T:
    """``msgspec.json.decode`` with the depth cap (ValidationError/DecodeError pass through to the caller)."""
    check_depth(raw)
    return msgspec.json.decode(raw, type=type)


class SluiceRequest(Request[Any, Any, Any]):
    """Litestar's request with the depth cap on JSON bodies (``data`` parameters are decoded here)."""

    async def json(self) -> Any:
        check_depth(await self.body())
        return await super().json()
