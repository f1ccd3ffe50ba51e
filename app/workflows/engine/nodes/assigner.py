"""`assigner`: writes conversation variables. Version 1 has one target and a write mode; version 2 a list of
operations (over-write, clear, append, extend, set, +=, -=, *=, /=, remove-first, remove-last).

The pool holds plain values, so a variable's type is read off its current value (a string, a number, an
array of strings...) and checked the way Dify checks the declared type. The node has no outputs; the new
values are in ``process_data`` (by name, and as Dify's ``__updated_variables`` list).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine import conditions
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert
from app.workflows.engine.variables import CONVERSATION, ENVIRONMENT, SYSTEM, VariablePool

NUMBER_OPS = {"+=", "-=", "*=", "/="}
ARRAY_OPS = {"append", "extend", "remove-first", "remove-last"}
NO_VALUE_OPS = {"clear", "remove-first", "remove-last"}
OPERATIONS = {"over-write", "clear", "set", *NUMBER_OPS, *ARRAY_OPS}
#: operations whose value may not come from a variable (Dify: only a constant)
CONSTANT_ONLY = {"set", *NUMBER_OPS}
UPDATED_VARIABLES = "__updated_variables"
_ZERO: dict[str, Any] = {"string": "", "number": 0, "boolean": False, "object": {}}
_ELEMENT_TYPES: dict[str, Any] = {
    "array[string]": str,
    "array[number]": (int, float),
    "array[object]": dict,
    "array[file]": dict,
    "array[boolean]": bool,
    "array[any]": (str, int, float, dict),
}


class Item(msgspec.Struct, kw_only=True):
    variable_selector: list[str]
    operation: str = "over-write"
    input_type: str = "variable"
    value: Any = None


class V1Config(msgspec.Struct, kw_only=True):
    assigned_variable_selector: list[str] = msgspec.field(default_factory=list)
    input_variable_selector: list[str] = msgspec.field(default_factory=list)
    write_mode: str = "over-write"


class V2Config(msgspec.Struct, kw_only=True):
    items: list[Item] = msgspec.field(default_factory=list)


class AssignerNode(Node):
    type = "assigner"

    def configure(self, data: Mapping[str, Any]) -> None:
        version = str(data.get("version") or "")
        self.version = "2" if version == "2" or (not version and "items" in data) else "1"
        if self.version == "1":
            v1: V1Config = convert(data, V1Config, self)
            if v1.write_mode not in ("over-write", "append", "clear"):
                raise self.fail(f"unknown write_mode {v1.write_mode!r}")
            if v1.write_mode != "clear" and len(v1.input_variable_selector) < 2:
                raise self.fail("input_variable_selector needs a node and a variable")
            source = v1.input_variable_selector if v1.write_mode != "clear" else None
            self.items = [
                Item(variable_selector=v1.assigned_variable_selector, operation=v1.write_mode, value=source)
            ]
        else:
            self.items = convert(data, V2Config, self).items
        for i, item in enumerate(self.items):
            where = "assigned_variable_selector" if self.version == "1" else f"items[{i}]"
            target = item.variable_selector
            if len(target) != 2:
                raise self.fail(
                    f"{where}: the variable to assign needs a node and a variable name, like conversation.name"
                )
            if target[0] in (SYSTEM, ENVIRONMENT):
                raise self.fail(f"{where}: {'.'.join(target)} is read-only")
            if item.operation not in OPERATIONS:
                raise self.fail(f"{where}: unknown operation {item.operation!r}")
            if item.input_type not in ("variable", "constant"):
                raise self.fail(f"{where}: input_type must be 'variable' or 'constant'")
            if item.operation in NO_VALUE_OPS:
                continue
            if item.input_type == "variable":
                if item.operation in CONSTANT_ONLY:
                    raise self.fail(f"{where}: operation {item.operation!r} takes a constant, not a variable")
                if not (isinstance(item.value, list) and len(item.value) >= 2):
                    raise self.fail(f"{where}: value must be a variable selector")
                item.value = [str(part) for part in item.value]

    def conversation_writes(self) -> set[str]:
        return {i.variable_selector[1] for i in self.items if i.variable_selector[0] == CONVERSATION}

    async def run(self, ctx: NodeContext) -> NodeResult:
        updated: dict[tuple[str, ...], Any] = {}
        v1_input: Any = None
        for item in self.items:
            assigned = self._assign(ctx.pool, item)
            if assigned is None:
                continue  # Dify skips an item whose source variable is empty
            v1_input, new = assigned
            ctx.pool.set(item.variable_selector[0], item.variable_selector[1], new)
            updated[tuple(item.variable_selector)] = new
        process_data: dict[str, Any] = {sel[1]: new for sel, new in updated.items()}
        process_data[UPDATED_VARIABLES] = [
            {"name": sel[1], "selector": list(sel), "value_type": value_type(new), "new_value": new}
            for sel, new in updated.items()
        ]
        if self.version == "1":
            inputs: dict[str, Any] = {"value": v1_input}
        else:
            inputs = {"version": "2", "items": msgspec.to_builtins(self.items)}
        return NodeResult(inputs=inputs, process_data=process_data, outputs={})

    def _assign(self, pool: VariablePool, item: Item) -> tuple[Any, Any] | None:
        """(input value, new value) for one item, or None to skip it; NodeRunError when it cannot apply."""
        name, op = ".".join(item.variable_selector), item.operation
        if not pool.has(item.variable_selector):
            raise NodeRunError(f"variable {name} not found")
        current = pool.get(item.variable_selector)
        kind = value_type(current)
        if not _supported(kind, op):
            raise NodeRunError(f"operation {op!r} is not supported for {name} ({kind})")
        value: Any = None
        if op not in NO_VALUE_OPS:
            if item.input_type == "variable":
                if not pool.has(item.value):
                    raise NodeRunError(f"variable {'.'.join(item.value)} not found")
                value = pool.get(item.value)
                if value is None and self.version == "2":
                    return None
            elif not _constant_allowed(kind, op):
                raise NodeRunError(f"operation {op!r} on {name} ({kind}) cannot take a constant value")
            else:
                value = item.value
            if op == "set" and kind == "object" and isinstance(value, str):
                value = _json_object(value)
            # version 1 writes whatever it is given, as Dify's did
            if self.version == "2" and not _valid_input(kind, op, value):
                raise NodeRunError(f"invalid value {value!r} for {op!r} on {name} ({kind})")
        return value, _apply(op, kind, current, value)


def value_type(value: Any) -> str:
    """Dify's segment type of a plain value; ``none`` when it holds nothing yet."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "file" if conditions.is_file(value) else "object"
    if isinstance(value, list) and value:
        for kind in ("array[boolean]", "array[string]", "array[number]"):
            if all(_element_ok(kind, v) for v in value):
                return kind
        if all(conditions.is_file(v) for v in value):
            return "array[file]"
        if all(isinstance(v, Mapping) for v in value):
            return "array[object]"
    return "array[any]" if isinstance(value, list) else "object"


def _element_ok(kind: str, value: Any) -> bool:
    if kind != "array[boolean]" and isinstance(value, bool):
        return False
    return isinstance(value, _ELEMENT_TYPES[kind])


def _supported(kind: str, op: str) -> bool:
    if op in ("over-write", "clear"):
        return True
    if op == "set":
        return kind in ("object", "string", "number", "boolean", "none")
    if op in NUMBER_OPS:
        return kind == "number"
    return kind.startswith("array") or kind == "none"


def _constant_allowed(kind: str, op: str) -> bool:
    if kind in ("string", "object", "boolean", "none"):
        return op in ("over-write", "set")
    if kind == "number":
        return op in ("over-write", "set", *NUMBER_OPS)
    return False


def _valid_input(kind: str, op: str, value: Any) -> bool:
    if kind == "none":
        return op != "extend" or isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return not (op == "/=" and value == 0)
    if kind in ("object", "file"):
        return isinstance(value, Mapping)
    if op == "append":
        return _element_ok(kind, value)
    return isinstance(value, list) and all(_element_ok(kind, v) for v in value)


def _apply(op: str, kind: str, current: Any, value: Any) -> Any:
    if op in ("over-write", "set"):
        return value
    if op == "clear":
        return [] if kind.startswith("array") else _ZERO.get(kind)
    if op == "+=":
        return current + value
    if op == "-=":
        return current - value
    if op == "*=":
        return current * value
    if op == "/=":
        return current / value
    items = list(current or [])
    if op == "append":
        return [*items, value]
    if op == "extend":
        return [*items, *value]
    if op == "remove-first":
        return items[1:]
    return items[:-1]  # remove-last


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise NodeRunError(f"invalid value {text!r}: not a JSON object") from None
