"""The variable pool: every node's outputs, ``sys.*``, ``env.*`` and ``conversation.*``, addressed by selectors.

A selector is a list ``[node_id, variable, *path]``; templates reference it as ``{{#node_id.variable.path#}}``.
The pool holds plain JSON values so that it snapshots as-is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: ``{{#node.var#}}`` and deeper paths, as Dify spells them (node ids may be digits or ``sys``/``env``...).
TEMPLATE = re.compile(r"\{\{#([a-zA-Z0-9_]{1,50}(?:\.[a-zA-Z0-9_][a-zA-Z0-9_\-]{0,49}){1,10})#\}\}")

SYSTEM = "sys"
ENVIRONMENT = "env"
CONVERSATION = "conversation"


def to_text(value: Any) -> str:
    """How a value reads inside a template: strings as-is, numbers plainly, objects and arrays as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


class VariablePool:
    """Works on the dict it is given (no copy): the engine's run state holds the same dict.

    With a ``parent``, the pool is a layer over it (an iteration round): reads of a variable the layer does not
    hold go to the parent, writes stay in the layer, so rounds never see each other's outputs and the state of a
    round stores only what the round produced."""

    def __init__(
        self, values: dict[str, dict[str, Any]] | None = None, parent: VariablePool | None = None
    ) -> None:
        self.values: dict[str, dict[str, Any]] = values if values is not None else {}
        self.parent = parent

    def _variable(self, node_id: str, name: str) -> tuple[bool, Any]:
        node = self.values.get(node_id)
        if node is not None and name in node:
            return True, node[name]
        if self.parent is not None:
            return self.parent._variable(node_id, name)
        return False, None

    def get(self, selector: Sequence[str], default: Any = None) -> Any:
        if len(selector) < 2:
            return default
        found, value = self._variable(selector[0], selector[1])
        if not found:
            return default
        for key in selector[2:]:
            if isinstance(value, Mapping) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return default
        return value

    def has(self, selector: Sequence[str]) -> bool:
        sentinel = object()
        return self.get(selector, sentinel) is not sentinel

    def set(self, node_id: str, name: str, value: Any) -> None:
        self.values.setdefault(node_id, {})[name] = value

    def set_outputs(self, node_id: str, outputs: Mapping[str, Any]) -> None:
        self.values.setdefault(node_id, {}).update(outputs)

    def node(self, node_id: str) -> dict[str, Any]:
        inherited = self.parent.node(node_id) if self.parent is not None else {}
        return {**inherited, **self.values.get(node_id, {})}

    def render(self, template: str) -> str:
        """Replace every ``{{#node.var#}}`` with the variable's text (missing variables become empty)."""
        return TEMPLATE.sub(lambda m: to_text(self.get(m.group(1).split("."))), template)

    def references(self, template: str) -> list[list[str]]:
        return [m.group(1).split(".") for m in TEMPLATE.finditer(template)]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.values.items()}


def segment_type(value: Any) -> str | None:
    """Dify's ``SegmentType.infer_segment_type`` of a JSON value (what validation messages call its type): an
    empty list is ``array[number]`` there (the empty set of element types counts as numerical); None for a value
    JSON does not have."""
    if isinstance(value, list):
        kinds = set()
        for item in value:
            kind = segment_type(item)
            if kind is None:
                return None
            kinds.add(kind)
        if len(kinds) != 1:
            return "array[number]" if kinds <= {"number", "integer", "float"} else "array[any]"
        kind = kinds.pop()
        if kind.startswith("array["):
            return "array[any]"
        return {
            "string": "array[string]",
            "integer": "array[number]",
            "float": "array[number]",
            "object": "array[object]",
            "boolean": "array[boolean]",
            "none": "array[any]",
        }.get(kind)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return None
