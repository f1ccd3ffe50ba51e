"""`if-else`: picks the first case whose conditions hold; its ``case_id`` is the branch taken, else ``false``.

Old DSLs (v0.1.x) put ``conditions`` and ``logical_operator`` directly in the node: one case with id ``true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from app.workflows.engine import conditions
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

ELSE_HANDLE = "false"
OLD_STYLE_CASE = "true"


class Case(msgspec.Struct, kw_only=True):
    case_id: str | None = None
    id: str | None = None
    logical_operator: str | None = "and"
    conditions: list[conditions.Condition] = msgspec.field(default_factory=list)


class IfElseConfig(msgspec.Struct, kw_only=True):
    cases: list[Case] | None = None
    conditions: list[conditions.Condition] | None = None
    logical_operator: str | None = "and"


class IfElseNode(Node):
    type = "if-else"
    branching: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        config: IfElseConfig = convert(data, IfElseConfig, self)
        self.old_style = not config.cases and config.conditions is not None
        if self.old_style:
            config.cases = [
                Case(
                    case_id=OLD_STYLE_CASE,
                    logical_operator=config.logical_operator,
                    conditions=config.conditions or [],
                )
            ]
        self.cases: list[Case] = config.cases or []
        for i, case in enumerate(self.cases):
            case.case_id = case.case_id or case.id
            if not case.case_id:
                raise self.fail(f"cases[{i}] has no case_id")
            if (case.logical_operator or "and") not in ("and", "or"):
                raise self.fail(f"cases[{i}].logical_operator must be 'and' or 'or'")
            problem = conditions.check_conditions(case.conditions, f"cases[{i}]")
            if problem:
                raise self.fail(problem)

    async def run(self, ctx: NodeContext) -> NodeResult:
        condition_results: list[dict[str, Any]] = []
        inputs: list[dict[str, Any]] = []
        selected: str | None = None
        final = False
        for case in self.cases:
            check = conditions.evaluate(ctx.pool, case.conditions, case.logical_operator)
            inputs, final = check.inputs, check.final
            group: Any = "default" if self.old_style else msgspec.to_builtins(case)
            condition_results.append({"group": group, "results": check.results, "final_result": final})
            if final:
                selected = case.case_id
                break
        return NodeResult(
            inputs={"conditions": inputs},
            process_data={"condition_results": condition_results},
            outputs={
                "result": final,
                "selected_case_id": selected or (ELSE_HANDLE if self.old_style else None),
            },
            edge_source_handle=selected or ELSE_HANDLE,
        )
