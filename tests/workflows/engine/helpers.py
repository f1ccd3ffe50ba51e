"""Building graphs and running the engine in tests, with a listener that records every step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.workflows.engine.building import initial_state
from app.workflows.engine.core import Engine
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes.base import Node, NodeResult, Ports, RunInfo
from app.workflows.engine.state import Limits, NodeRun, Outcome, RunState

RUN = RunInfo(run_id="run-1", app_id="app-1", workflow_id="wf-1", user_id="user-1")


def node(node_id: str, type_: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "data": {"type": type_, "title": data.pop("title", node_id), **data}}


def edge(source: str, target: str, handle: str = "source") -> dict[str, Any]:
    return {"id": f"{source}-{handle}-{target}", "source": source, "target": target, "sourceHandle": handle}


def graph(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> Graph:
    return Graph.from_dsl({"nodes": nodes, "edges": edges})


class Recorder:
    """A Listener that keeps everything; ``stop_after`` makes it report a stop after that many finishes."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.started: list[str] = []
        self.finished: list[NodeRun] = []
        self.chunks: list[tuple[str, str]] = []
        #: At each checkpoint, the nodes running (those about to wait on the outside world).
        self.checkpoints: list[list[str]] = []
        #: Container events (``iteration_next``...) in order, and every event name in order.
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.order: list[str] = []
        self.stop_after = stop_after

    async def node_started(self, run: NodeRun, state: RunState) -> bool:
        self.started.append(run.node.id)
        self.order.append(f"started:{run.node.id}")
        return True

    async def node_finished(self, run: NodeRun, state: RunState) -> bool:
        self.finished.append(run)
        self.order.append(f"finished:{run.node.id}")
        return self.stop_after is None or len(self.finished) < self.stop_after

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        self.chunks.append((node_id, text))

    async def event(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))
        self.order.append(name)

    async def checkpoint(self, state: RunState) -> bool:
        self.checkpoints.append([n for n, s in state.nodes.items() if s.status == "running"])
        return True

    def status(self, node_id: str) -> str | None:
        runs = [r for r in self.finished if r.node.id == node_id]
        return runs[-1].state.status if runs else None


async def run_graph(
    g: Graph,
    inputs: Mapping[str, Any] | None = None,
    *,
    ports: Ports | None = None,
    limits: Limits = Limits(),
    registry: Mapping[str, type[Node]] | None = None,
    state: RunState | None = None,
    recorder: Recorder | None = None,
    resolutions: Mapping[str, NodeResult] | None = None,
    pools: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Outcome, Recorder, RunState]:
    start = g.start_node()
    if state is None:
        engine_for_inputs = Engine(g, RunState(), ports or Ports(), RUN, limits, registry=registry)
        validated = engine_for_inputs.nodes[start.id].validate_inputs(inputs or {})  # type: ignore[attr-defined]
        state = initial_state(
            validated, {"user_id": RUN.user_id, "workflow_run_id": RUN.run_id}, start.id, **(pools or {})
        )
    recorder = recorder or Recorder()
    engine = Engine(g, state, ports or Ports(), RUN, limits, registry=registry)
    outcome = await engine.run(recorder, resolutions)
    return outcome, recorder, state
