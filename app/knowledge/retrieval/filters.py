"""Metadata filters: Dify's conditions as SQL expressions over ``documents.doc_metadata``.

Every value reaches the database as a bound parameter (SQLAlchemy binds them); names index the JSONB with a
parameter too. Numeric and time comparisons only look at values stored as JSON numbers, so a string in a number
field never makes the cast fail: it simply does not match.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from app.errors import InvalidParam
from app.knowledge.retrieval.model import Condition, MetadataFilter
from db.models import Document

_NUMERIC = {"=": "eq", "≠": "ne", "!=": "ne", ">": "gt", "after": "gt", "<": "lt", "before": "lt"}
_NUMERIC |= {"≥": "ge", ">=": "ge", "≤": "le", "<=": "le"}


def _number(value: Any, condition: Condition) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidParam(
            f"metadata condition {condition.name!r} {condition.comparison_operator!r} needs a number"
        ) from None


def _values(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def condition_sql(condition: Condition) -> ColumnElement[bool]:
    op, value = condition.comparison_operator, condition.value
    field = Document.doc_metadata[literal(condition.name)]
    as_text = field.astext
    if op == "empty":
        return or_(as_text.is_(None), as_text == "")
    if op == "not empty":
        return and_(as_text.is_not(None), as_text != "")
    if op in _NUMERIC:
        number = func.jsonb_typeof(field) == "number"
        cast = as_text.cast(Numeric)
        target = _number(value, condition)
        compare = {
            "eq": cast == target,
            "ne": cast != target,
            "gt": cast > target,
            "lt": cast < target,
            "ge": cast >= target,
            "le": cast <= target,
        }[_NUMERIC[op]]
        return and_(number, compare)
    if op in ("in", "not in"):
        values = _values(value)
        inside = as_text.in_(values) if values else false()
        return inside if op == "in" else or_(as_text.is_(None), not_(inside))
    text_value = "" if value is None else str(value)
    if op == "contains":
        return as_text.contains(text_value, autoescape=True)
    if op == "not contains":
        return or_(as_text.is_(None), not_(as_text.contains(text_value, autoescape=True)))
    if op == "start with":
        return as_text.startswith(text_value, autoescape=True)
    if op == "end with":
        return as_text.endswith(text_value, autoescape=True)
    if op == "is":
        return as_text == text_value
    if op == "is not":
        return or_(as_text.is_(None), as_text != text_value)
    raise InvalidParam(f"unknown comparison operator {op!r}")


def filter_sql(metadata_filter: MetadataFilter | None) -> ColumnElement[bool]:
    if metadata_filter is None or not metadata_filter.conditions:
        return true()
    parts = [condition_sql(c) for c in metadata_filter.conditions]
    return and_(*parts) if metadata_filter.logical_operator == "and" else or_(*parts)
