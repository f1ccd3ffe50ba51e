"""The workflow graph: nodes, edges by source handle, and the checks an import must pass."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from app.workflows.engine.errors import GraphError

#: Canvas-only nodes (sticky notes) carry no behaviour and are dropped.
NOTE_TYPES = {"", "custom-note"}
DEFAULT_HANDLE = "source"


class NodeSpec(msgspec.Struct, frozen=True):
    id: str
    type: str
    title: str
    data: dict[str, Any]


class Edge(msgspec.Struct, frozen=True):
    id: str
    source: str
    target: str
    source_handle: str = DEFAULT_HANDLE


class Graph:
    def __init__(self, nodes: Iterable[NodeSpec], edges: Iterable[Edge]) -> None:
        self.nodes: dict[str, NodeSpec] = {}
        for node in nodes:
            if node.id in self.nodes:
                raise GraphError(f"duplicate node id {node.id!r}")
            self.nodes[node.id] = node
        self.edges: dict[str, Edge] = {}
        #: What others derive from the graph once (it never changes), by name.
        self.cache: dict[str, Any] = {}
        self.outgoing: dict[str, list[Edge]] = defaultdict(list)
        self.incoming: dict[str, list[Edge]] = defaultdict(list)
        for edge in edges:
            for end in (edge.source, edge.target):
                if end not in self.nodes:
                    raise GraphError(f"edge {edge.id!r} connects unknown node {end!r}")
            if edge.id in self.edges:
                continue  # the canvas sometimes repeats an edge; it means the same thing
            self.edges[edge.id] = edge
            self.outgoing[edge.source].append(edge)
            self.incoming[edge.target].append(edge)

    @classmethod
    def from_dsl(cls, graph: Mapping[str, Any]) -> Graph:
        """Build from a DSL ``workflow.graph`` (``{nodes: [...], edges: [...]}``), dropping note nodes."""
        raw_nodes = graph.get("nodes") or []
        raw_edges = graph.get("edges") or []
        if not isinstance(raw_nodes, list) or not isinstance(raw_edges, list):
            raise GraphError("graph.nodes and graph.edges must be lists")
        nodes = []
        for raw in raw_nodes:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("data"), Mapping) or "id" not in raw:
                raise GraphError("every node needs an id and a data mapping")
            data = dict(raw["data"])
            node_type = str(data.get("type") or "")
            if raw.get("type") == "custom-note" or node_type in NOTE_TYPES:
                continue
            node_id = str(raw["id"])
            nodes.append(
                NodeSpec(id=node_id, type=node_type, title=str(data.get("title") or node_id), data=data)
            )
        known = {n.id for n in nodes}
        edges = []
        for raw in raw_edges:
            if not isinstance(raw, Mapping) or "source" not in raw or "target" not in raw:
                raise GraphError("every edge needs a source and a target")
            source, target = str(raw["source"]), str(raw["target"])
            handle = str(raw.get("sourceHandle") or DEFAULT_HANDLE)
            edge_id = str(raw.get("id") or f"{source}-{handle}-{target}")
            if source not in known and target not in known:
                continue
            edges.append(Edge(id=edge_id, source=source, target=target, source_handle=handle))
        return cls(nodes, edges)

    def start_node(self) -> NodeSpec:
        starts = [n for n in self.nodes.values() if n.type == "start"]
        if not starts:
            raise GraphError("the graph has no start node")
        if len(starts) > 1:
            raise GraphError(f"the graph has {len(starts)} start nodes; exactly one is allowed")
        return starts[0]

    def check_acyclic(self) -> None:
        """Refuse cycles (iteration and loop bodies are their own sub-graphs, not cycles here)."""
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        for root in self.nodes:
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path: list[str] = []
            while stack:
                node, i = stack.pop()
                if i == 0:
                    state[node] = 1
                    path.append(node)
                children = [e.target for e in self.outgoing.get(node, [])]
                if i < len(children):
                    stack.append((node, i + 1))
                    child = children[i]
                    if state.get(child) == 1:
                        cycle = [*path[path.index(child) :], child]
                        raise GraphError(f"the graph has a cycle: {' -> '.join(cycle)}")
                    if child not in state:
                        stack.append((child, 0))
                else:
                    state[node] = 2
                    path.pop()

    def reachable_from(self, node_id: str) -> set[str]:
        seen, todo = {node_id}, [node_id]
        while todo:
            for edge in self.outgoing.get(todo.pop(), []):
                if edge.target not in seen:
                    seen.add(edge.target)
                    todo.append(edge.target)
        return seen
