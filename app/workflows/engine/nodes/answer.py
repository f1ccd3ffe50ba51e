"""`answer` (advanced-chat): renders its template as the reply. Its text reaches the client through the run's
response coordinator (``engine/response.py``), which streams every Answer node in Dify's order; the node itself
only outputs the rendered ``answer`` (variables as Dify's markdown) and the ``files`` its template references."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult
from app.workflows.engine.response import referenced_files, render, split_template


class AnswerNode(Node):
    type = "answer"

    def configure(self, data: Mapping[str, Any]) -> None:
        answer = data.get("answer", "")
        if not isinstance(answer, str):
            raise self.fail("answer must be a string")
        self.template = answer
        self.segments = split_template(answer)

    async def run(self, ctx: NodeContext) -> NodeResult:
        text = render(ctx.pool, self.template)
        return NodeResult(outputs={"answer": text, "files": referenced_files(ctx.pool, self.segments)})
