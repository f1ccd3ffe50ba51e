"""`end` (workflow mode): the run's outputs, each from a selector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert


class EndOutput(msgspec.Struct, kw_only=True):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class EndConfig(msgspec.Struct, kw_only=True):
    outputs: list[EndOutput] = msgspec.field(default_factory=list)


class EndNode(Node):
    type = "end"

    def configure(self, data: Mapping[str, Any]) -> None:
        self.config: EndConfig = convert(data, EndConfig, self)

    async def run(self, ctx: NodeContext) -> NodeResult:
        outputs = {o.variable: ctx.pool.get(o.value_selector) for o in self.config.outputs}
        return NodeResult(inputs=outputs, outputs=outputs)
