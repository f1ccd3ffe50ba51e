"""`answer` (advanced-chat): renders its template and streams it as the reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult


class AnswerNode(Node):
    type = "answer"

    def configure(self, data: Mapping[str, Any]) -> None:
        answer = data.get("answer", "")
        if not isinstance(answer, str):
            raise self.fail("answer must be a string")
        self.template = answer

    async def run(self, ctx: NodeContext) -> NodeResult:
        text = ctx.pool.render(self.template)
        if text:
            await ctx.stream(text, [self.id, "answer"])
        return NodeResult(outputs={"answer": text})
