"""Conversation variables (chatflow spec 4.4, 4.5, 7.3): declared in the DSL, one row per conversation, seeded at
the start of every turn that reaches the graph, written back when a turn ends (``app/chat/turn_end.py``) or by
``PUT .../variables/{id}``.

Values are shown the way Dify shows them, with Python's ``str()`` (``"True"``, ``"{'a': 1}"``): Dify clients parse
that. Integer, float and number are one type; a JSON boolean is not a number (Dify lets it through).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.errors import BadRequest
from app.workflows.engine.variables import segment_type

#: Types as the API shows them: a declared integer or float is a ``number``.
_EXPOSED = {"integer": "number", "float": "number"}


class Declared(msgspec.Struct, frozen=True):
    id: str
    name: str
    value_type: str
    value: Any
    description: str
    position: int


def declared(dsl: Mapping[str, Any]) -> list[Declared]:
    """The conversation variables a workflow version declares, in order."""
    workflow = dsl.get("workflow") if isinstance(dsl, Mapping) else None
    found: list[Declared] = []
    for position, var in enumerate((workflow or {}).get("conversation_variables") or []):
        if not isinstance(var, Mapping) or not var.get("name"):
            continue
        found.append(
            Declared(
                id=str(var.get("id") or var["name"]),
                name=str(var["name"]),
                value_type=exposed_type(str(var.get("value_type") or "string")),
                value=var.get("value"),
                description=str(var.get("description") or ""),
                position=position,
            )
        )
    return found


def exposed_type(value_type: str) -> str:
    return _EXPOSED.get(value_type, value_type)


def shown(value: Any) -> str | None:
    """Dify's ``str(value)`` of a variable's value (null stays null)."""
    return None if value is None else str(value)


#: The declared variables a conversation lacks, inserted with their defaults, as CTEs for a statement of the
#: caller's (parameters ``:conversation``, ``:app``, ``:declared``; see :func:`seed_params`): afterwards
#: ``conversation_values`` holds every variable of the conversation as (name, value, position).
SEED_CTES = """
    seeded AS (
        INSERT INTO conversation_variables (id, conversation_id, app_id, variable_id, name, value_type, value,
                                            description, position, created_at, updated_at)
        SELECT gen_random_uuid(), :conversation, :app, d.id, d.name, d.value_type, d.value, d.description,
               d.position, now(), now()
        FROM jsonb_to_recordset(CAST(:declared AS jsonb))
             AS d(id text, name text, value_type text, value jsonb, description text, position int)
        ON CONFLICT (conversation_id, variable_id) DO NOTHING
        RETURNING name, value, position),
    conversation_values AS (
        SELECT name, value, position FROM conversation_variables WHERE conversation_id = :conversation
        UNION ALL SELECT name, value, position FROM seeded)
"""
_SEED = text(f"WITH {SEED_CTES} SELECT name, value FROM conversation_values ORDER BY position")  # noqa: S608


def seed_params(
    app_id: uuid.UUID, conversation_id: uuid.UUID, variables: Sequence[Declared]
) -> dict[str, Any]:
    return {
        "conversation": conversation_id,
        "app": app_id,
        "declared": msgspec.json.encode(variables).decode(),
    }


async def seed(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID, variables: Sequence[Declared]
) -> dict[str, Any]:
    """Create the rows of declared variables the conversation lacks (defaults), in one statement with reading
    them all; returns every variable's value by name (the ``conversation`` pool of the turn)."""
    rows = await session.execute(_SEED, seed_params(app_id, conversation_id, variables))
    return {row.name: row.value for row in rows}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def valid(value_type: str, value: Any) -> bool:
    """Whether ``value`` may be stored in a variable of ``value_type`` (files cannot be set through the API)."""
    checks: dict[str, Any] = {
        "number": _number,
        "string": lambda v: isinstance(v, str),
        "secret": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array[any]": lambda v: isinstance(v, list),
        "array[string]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "array[number]": lambda v: isinstance(v, list) and all(_number(i) for i in v),
        "array[object]": lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
        "array[boolean]": lambda v: isinstance(v, list) and all(isinstance(i, bool) for i in v),
        "array[file]": lambda v: v == [],
    }
    check = checks.get(exposed_type(value_type))
    return bool(check(value)) if check is not None else False


def check_value(name: str, value_type: str, value: Any) -> None:
    expected = exposed_type(value_type)
    if not valid(expected, value):
        raise BadRequest(
            f"Type mismatch: variable '{name}' expects {expected}, but got {segment_type(value)} type"
        )
