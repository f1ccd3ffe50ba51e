"""`variable-aggregator`: the first of several variables that has a value (typically one per branch).

With groups enabled each group aggregates on its own: ``{group_name: {"output": value}}``. Old DSLs call this
node ``variable-assigner`` (the conversation-variable assigner is ``assigner``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert
from app.workflows.engine.variables import VariablePool


class Group(msgspec.Struct, kw_only=True):
    group_name: str
    output_type: str | None = None
    variables: list[list[str]] = msgspec.field(default_factory=list)
    group_id: str | None = msgspec.field(default=None, name="groupId")


class AdvancedSettings(msgspec.Struct, kw_only=True):
    group_enabled: bool = False
    groups: list[Group] = msgspec.field(default_factory=list)


class AggregatorConfig(msgspec.Struct, kw_only=True):
    output_type: str | None = None
    variables: list[list[str]] = msgspec.field(default_factory=list)
    advanced_settings: AdvancedSettings | None = None


class VariableAggregatorNode(Node):
    type = "variable-aggregator"

    def configure(self, data: Mapping[str, Any]) -> None:
        config: AggregatorConfig = convert(data, AggregatorConfig, self)
        settings = config.advanced_settings
        self.groups: list[Group] | None = settings.groups if settings and settings.group_enabled else None
        self.variables = config.variables
        if self.groups is None:
            self._check_selectors(self.variables, "variables")
            return
        seen: set[str] = set()
        for i, group in enumerate(self.groups):
            if not group.group_name:
                raise self.fail(f"advanced_settings.groups[{i}] has no group_name")
            if group.group_name in seen:
                raise self.fail(f"advanced_settings.groups: group_name {group.group_name!r} is used twice")
            seen.add(group.group_name)
            self._check_selectors(group.variables, f"advanced_settings.groups[{i}].variables")

    def _check_selectors(self, selectors: list[list[str]], where: str) -> None:
        for i, sel in enumerate(selectors):
            if len(sel) < 2:
                raise self.fail(f"{where}[{i}] needs a node and a variable")

    async def run(self, ctx: NodeContext) -> NodeResult:
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        if self.groups is None:
            found = _first(ctx.pool, self.variables)
            if found is not None:
                inputs[found[0]] = outputs["output"] = found[1]
            return NodeResult(inputs=inputs, outputs=outputs)
        for group in self.groups:
            found = _first(ctx.pool, group.variables)
            if found is not None:
                inputs[found[0]] = found[1]
                outputs[group.group_name] = {"output": found[1]}
        return NodeResult(inputs=inputs, outputs=outputs)


class LegacyVariableAssignerNode(VariableAggregatorNode):
    """The aggregator under its pre-0.6 name."""

    type = "variable-assigner"


def _first(pool: VariablePool, selectors: list[list[str]]) -> tuple[str, Any] | None:
    """The first selector with a value, as (``var.path`` for the inputs, value)."""
    for sel in selectors:
        value = pool.get(sel)
        if value is not None:
            return ".".join(sel[1:]), value
    return None
