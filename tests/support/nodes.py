"""Node types that exist only for tests (a node that pauses, a node that takes its time)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import wiring
from app.settings import Settings
from app.workflows.engine import nodes as node_registry
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult
from app.workflows.runs.pause_rows import Pause
from app.workflows.runs.pauses import PausedNode
from app.workflows.runs.store import Event, EventRow


class PauseNode(Node):
    """Test-only node type ``test-pause``: pauses with ``{"reason": ...}``; resolved by the test."""

    type = "test-pause"
    branching: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.reason = str(data.get("reason", "waiting"))

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(pause={"kind": ManualPauses.name, "reason": ctx.pool.render(self.reason)})


class ManualPauses:
    """Test-only pause kind: nothing to open or close; the test resolves the pause itself."""

    name = "test-manual"

    def __init__(self, settings: Settings) -> None:
        pass

    async def open(
        self, session: AsyncSession, app_ids: Mapping[uuid.UUID, uuid.UUID], pauses: Sequence[Pause]
    ) -> dict[tuple[uuid.UUID, str], list[Event]]:
        return {}

    async def describe(
        self, session: AsyncSession, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PausedNode]]:
        return {}

    async def describe_events(self, session: AsyncSession, rows: list[EventRow]) -> list[EventRow]:
        return rows

    async def close(self, session: AsyncSession, pauses: Sequence[Pause]) -> None:
        return None


class SlowNode(Node):
    """Test-only node type ``test-slow``: sleeps ``seconds`` then outputs ``{"done": true}``."""

    type = "test-slow"
    performs_io: ClassVar[bool] = True  # it stands for a node waiting on the outside world

    def configure(self, data: Mapping[str, Any]) -> None:
        self.seconds = float(data.get("seconds", 1))

    async def run(self, ctx: NodeContext) -> NodeResult:
        await asyncio.sleep(self.seconds)
        return NodeResult(outputs={"done": True})


class BusyNode(Node):
    """Test-only node type ``test-busy``: a pure node (no I/O) that keeps the CPU busy for ``ms`` milliseconds,
    then outputs its ``value`` rendered (``{{#start.x#}}`` works). Long segments of pure nodes are made of it."""

    type = "test-busy"

    def configure(self, data: Mapping[str, Any]) -> None:
        self.ms, self.value = float(data.get("ms", 25)), str(data.get("value", ""))

    async def run(self, ctx: NodeContext) -> NodeResult:
        until = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < until:
            pass
        return NodeResult(outputs={"output": ctx.pool.render(self.value)})


class HogNode(Node):
    """Test-only node type ``test-hog``: blocks its worker's event loop for ``seconds`` (as a long stretch of pure
    nodes or a document parsed in process would), then outputs ``{"done": true}``."""

    type = "test-hog"

    def configure(self, data: Mapping[str, Any]) -> None:
        self.seconds = float(data.get("seconds", 1))

    async def run(self, ctx: NodeContext) -> NodeResult:
        time.sleep(self.seconds)  # on purpose: nothing else of this worker's loop runs meanwhile
        return NodeResult(outputs={"done": True})


def register() -> None:
    """Make the test node types importable in DSL files of this process (a test worker process), and their
    pause kind known to its runs."""
    node_registry.NODE_TYPES.update(
        {PauseNode.type: PauseNode, SlowNode.type: SlowNode, BusyNode.type: BusyNode, HogNode.type: HogNode}
    )
    if ManualPauses not in wiring.KIND_FACTORIES:
        wiring.KIND_FACTORIES.append(ManualPauses)
