"""Node types that exist only for tests (a node that pauses, a node that takes its time)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from app.workflows.engine import nodes as node_registry
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult


class PauseNode(Node):
    """Test-only node type ``test-pause``: pauses with ``{"reason": ...}``; resolved by the test."""

    type = "test-pause"
    branching: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.reason = str(data.get("reason", "waiting"))

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(pause={"reason": ctx.pool.render(self.reason)})


class SlowNode(Node):
    """Test-only node type ``test-slow``: sleeps ``seconds`` then outputs ``{"done": true}``."""

    type = "test-slow"

    def configure(self, data: Mapping[str, Any]) -> None:
        self.seconds = float(data.get("seconds", 1))

    async def run(self, ctx: NodeContext) -> NodeResult:
        await asyncio.sleep(self.seconds)
        return NodeResult(outputs={"done": True})


def register() -> None:
    """Make the test node types importable in DSL files of this process (a test worker process)."""
    node_registry.NODE_TYPES.update({PauseNode.type: PauseNode, SlowNode.type: SlowNode})
