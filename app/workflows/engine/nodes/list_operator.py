"""`list-operator`: filters, picks the n-th, sorts and truncates an array (strings, numbers, booleans or files).

Dify's order: filter, extract, order, limit. Outputs ``result``, ``first_record`` and ``last_record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine import conditions
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert
from app.workflows.engine.variables import VariablePool

#: file attributes compared as text, as a choice among values, and as a number
TEXT_KEYS = {"name", "extension", "mime_type", "url", "related_id"}
CHOICE_KEYS = {"type", "transfer_method"}


class FilterCondition(msgspec.Struct, kw_only=True):
    key: str = ""
    comparison_operator: str = "contains"
    value: Any = ""


class FilterBy(msgspec.Struct, kw_only=True):
    enabled: bool = False
    conditions: list[FilterCondition] = msgspec.field(default_factory=list)


class OrderBy(msgspec.Struct, kw_only=True):
    enabled: bool = False
    key: str = ""
    value: str = "asc"


class Limit(msgspec.Struct, kw_only=True):
    enabled: bool = False
    size: int = -1


class ExtractBy(msgspec.Struct, kw_only=True):
    enabled: bool = False
    serial: str | int = "1"


class ListOperatorConfig(msgspec.Struct, kw_only=True):
    variable: list[str] = msgspec.field(default_factory=list)
    filter_by: FilterBy = msgspec.field(default_factory=FilterBy)
    order_by: OrderBy = msgspec.field(default_factory=OrderBy)
    limit: Limit = msgspec.field(default_factory=Limit)
    extract_by: ExtractBy = msgspec.field(default_factory=ExtractBy)


class ListOperatorNode(Node):
    type = "list-operator"

    def configure(self, data: Mapping[str, Any]) -> None:
        config: ListOperatorConfig = convert(data, ListOperatorConfig, self)
        if len(config.variable) < 2:
            raise self.fail("variable needs a node and a variable")
        if config.filter_by.enabled:
            for i, cond in enumerate(config.filter_by.conditions):
                op = conditions.canonical(cond.comparison_operator)
                if op is None:
                    raise self.fail(
                        f"filter_by.conditions[{i}]: unknown comparison_operator {cond.comparison_operator!r}"
                    )
                cond.comparison_operator = op
        if config.order_by.enabled and config.order_by.value not in ("asc", "desc"):
            raise self.fail("order_by.value must be 'asc' or 'desc'")
        self.config = config

    async def run(self, ctx: NodeContext) -> NodeResult:
        config = self.config
        if not ctx.pool.has(config.variable):
            raise NodeRunError(f"Variable not found for selector: {'.'.join(config.variable)}")
        items = ctx.pool.get(config.variable)
        if not items:
            return NodeResult(
                inputs={"variable": []},
                process_data={"variable": []},
                outputs={"result": [], "first_record": None, "last_record": None},
            )
        if not isinstance(items, list):
            raise NodeRunError(f"Variable {'.'.join(config.variable)} is not an array")
        result = list(items)
        if config.filter_by.enabled:
            for cond in config.filter_by.conditions:
                result = [item for item in result if _keep(ctx.pool, cond, item)]
        if config.extract_by.enabled:
            result = [result[_serial(ctx.pool.render(str(config.extract_by.serial)), len(result)) - 1]]
        if config.order_by.enabled:
            result = _sorted(result, config.order_by)
        if config.limit.enabled and config.limit.size >= 0:
            result = result[: config.limit.size]
        return NodeResult(
            inputs={"variable": items},
            process_data={"variable": items},
            outputs={
                "result": result,
                "first_record": result[0] if result else None,
                "last_record": result[-1] if result else None,
            },
        )


def _keep(pool: VariablePool, cond: FilterCondition, item: Any) -> bool:
    expected = pool.render(cond.value) if isinstance(cond.value, str) else cond.value
    op = cond.comparison_operator
    if not isinstance(item, Mapping):
        return conditions.filter_match(op, item, expected)
    attr = _attr(item, cond.key)
    if cond.key in CHOICE_KEYS:
        if op not in ("in", "not in"):
            raise NodeRunError(f"filter on file {cond.key} needs 'in' or 'not in', got '{op}'")
        choices = expected if isinstance(expected, list) else [expected]
        return (attr in choices) is (op == "in")
    if cond.key == "size" or isinstance(attr, int | float):
        return conditions.filter_match(op, attr if isinstance(attr, int | float) else 0, expected)
    return conditions.filter_match(op, "" if attr is None else str(attr), expected)


def _attr(item: Mapping[str, Any], key: str) -> Any:
    if not key:
        raise NodeRunError("filtering or ordering objects needs a key")
    if key in conditions.FILE_KEYS:
        return conditions.file_attr(item, key)
    return item.get(key)


def _serial(text: str, length: int) -> int:
    try:
        serial = int(text.strip())
    except ValueError:
        raise NodeRunError(f"Invalid serial index: {text!r} is not a number") from None
    if serial < 1:
        raise NodeRunError(f"Invalid serial index: must be >= 1, got {serial}")
    if serial > length:
        raise NodeRunError(f"Invalid serial index: must be <= {length}, got {serial}")
    return serial


def _sorted(items: list[Any], order: OrderBy) -> list[Any]:
    reverse = order.value == "desc"
    try:
        if items and isinstance(items[0], Mapping):
            return sorted(items, key=lambda item: _sort_key(_attr(item, order.key)), reverse=reverse)
        return sorted(items, reverse=reverse)
    except TypeError:
        raise NodeRunError("cannot order an array whose elements are of different types") from None


def _sort_key(value: Any) -> tuple[int, Any]:
    """Missing attributes sort first; numbers by value, everything else as text."""
    if value is None:
        return (0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))
