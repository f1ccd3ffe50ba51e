"""What an engine is built from: a graph's nodes (built once per workflow version, shared by its runs), the
answer-streaming plan of a chat graph, and the state a new run starts from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes import build_node
from app.workflows.engine.nodes.base import FAIL_BRANCH, ContainerNode, Node
from app.workflows.engine.response import CONTAINER_TYPES, ResponsePlan
from app.workflows.engine.state import RunState
from app.workflows.engine.variables import VariablePool


def response_plan(graph: Graph, nodes: Mapping[str, Node]) -> ResponsePlan:
    """The graph's answer-streaming plan, built once per graph (graphs are cached per workflow version)."""
    plan = graph.cache.get("response_plan")
    if plan is None:
        branching = {
            node_id: node.branching or node.type in CONTAINER_TYPES or node.error_strategy == FAIL_BRANCH
            for node_id, node in nodes.items()
        }
        writes = {node_id: set(node.conversation_writes()) for node_id, node in nodes.items()}
        plan = graph.cache["response_plan"] = ResponsePlan(graph, branching, writes)
    assert isinstance(plan, ResponsePlan)
    return plan


def build_nodes(graph: Graph, registry: Mapping[str, type[Node]] | None = None) -> dict[str, Node]:
    """Every node of the graph and of its containers' sub-graphs, by id (node ids are unique in a DSL)."""
    nodes = {node_id: build_node(spec, registry) for node_id, spec in graph.all_nodes().items()}
    _mark_io(graph, nodes)
    return nodes


def _mark_io(graph: Graph, nodes: Mapping[str, Node]) -> bool:
    """Tell each container whether a node inside it waits on the outside world; whether ``graph`` has one."""
    any_io = False
    for node_id in graph.nodes:
        node = nodes[node_id]
        if isinstance(node, ContainerNode):
            node.inner_io(_mark_io(graph.subgraphs[node_id], nodes))
        any_io = any_io or node.performs_io
    return any_io


def initial_state(
    start_inputs: Mapping[str, Any], system: Mapping[str, Any], start_id: str, **pools: Any
) -> RunState:
    """The state of a new run: the start node's validated inputs and the ``sys``/``env``/... variables."""
    pool = VariablePool({"sys": dict(system), **{k: dict(v) for k, v in pools.items()}})
    pool.set_outputs(start_id, start_inputs)
    return RunState(pool=pool.values)
