"""`loop` (with `loop-start` and `loop-end`): runs its sub-graph again and again on the same pool until a break
condition holds, a `loop-end` node runs, or ``loop_count`` rounds are done (nodes spec §4).

The configuration is checked here; the rounds are run by ``engine.containers``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from app.workflows.engine import conditions
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import (
    ContainerNode,
    ContainerStartNode,
    Node,
    NodeContext,
    NodeResult,
    convert,
)
from app.workflows.engine.variables import VariablePool

VAR_TYPES = (
    "string",
    "number",
    "object",
    "boolean",
    "array[string]",
    "array[number]",
    "array[object]",
    "array[boolean]",
)


class LoopVariable(msgspec.Struct, kw_only=True):
    label: str
    var_type: str = "string"
    value_type: Literal["constant", "variable"] = "constant"
    value: Any = None


class LoopConfig(msgspec.Struct, kw_only=True):
    loop_count: int = 10
    break_conditions: list[conditions.Condition] = msgspec.field(default_factory=list)
    logical_operator: str | None = "and"
    loop_variables: list[LoopVariable] | None = None
    start_node_id: str = ""


class LoopNode(ContainerNode):
    type = "loop"

    def configure(self, data: Mapping[str, Any]) -> None:
        config: LoopConfig = convert(data, LoopConfig, self)
        if config.loop_count < 0:
            raise self.fail("loop_count must not be negative")
        problem = conditions.check_conditions(config.break_conditions, "break_conditions")
        if problem:
            raise self.fail(problem)
        labels = [v.label for v in config.loop_variables or []]
        if len(set(labels)) != len(labels):
            raise self.fail("loop variable labels must be unique")
        for var in config.loop_variables or []:
            if var.var_type not in VAR_TYPES:
                raise self.fail(f"loop variable {var.label!r}: unsupported type {var.var_type!r}")
        self.loop_count = config.loop_count
        self.break_conditions = config.break_conditions
        self.logical_operator = config.logical_operator or "and"
        self.variables = config.loop_variables or []
        self.start_node_id = config.start_node_id

    def initial_values(self, pool: VariablePool) -> dict[str, Any]:
        """Each loop variable's first value (Dify's rules: constants typed by ``var_type``, JSON-parsed once more
        when they do not fit; variables copied from the pool)."""
        values = {}
        for var in self.variables:
            if var.value_type == "variable":
                path = var.value if isinstance(var.value, list) else None
                if not path or not pool.has([str(p) for p in path]):
                    raise NodeRunError(f"Invalid value for loop variable {var.label}")
                values[var.label] = pool.get([str(p) for p in path])
            else:
                values[var.label] = _constant(var)
        return values

    def broken(self, pool: VariablePool) -> bool:
        """Whether the break conditions hold (no conditions: never)."""
        if not self.break_conditions:
            return False
        return conditions.evaluate(pool, self.break_conditions, self.logical_operator).final


def _constant(var: LoopVariable) -> Any:
    value = var.value
    if var.var_type.startswith("array"):
        if value in (None, ""):
            return []
        if isinstance(value, str):
            value = _json(var, value)
        if not isinstance(value, list):
            raise NodeRunError(f"Invalid value for loop variable {var.label}")
        return value
    if var.var_type == "object":
        if isinstance(value, str):
            value = _json(var, value) if value.strip() else {}
        if not isinstance(value, dict):
            raise NodeRunError(f"Invalid value for loop variable {var.label}")
        return value
    if var.var_type == "number":
        if isinstance(value, str):
            value = _json(var, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NodeRunError(f"Invalid value for loop variable {var.label}")
        return value
    if var.var_type == "boolean":
        if isinstance(value, str):
            value = _json(var, value.lower())
        if not isinstance(value, bool):
            raise NodeRunError(f"Invalid value for loop variable {var.label}")
        return value
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json(var: LoopVariable, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise NodeRunError(f"Invalid value for loop variable {var.label}") from None


class LoopStartNode(ContainerStartNode):
    type = "loop-start"


class LoopEndNode(Node):
    """Ends its loop after the current round (a "break" node); does nothing else."""

    type = "loop-end"

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult()
