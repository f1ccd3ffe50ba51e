"""The workflow graph: nodes, edges by source handle, and the checks an import must pass.

Iteration and loop nodes are containers: the nodes inside one (``parentId``, or ``data.iteration_id`` /
``data.loop_id``) form a sub-graph of their own, entered at the container's ``start_node_id``, and are not part of
the graph around it. Containers nest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from app.workflows.engine.errors import GraphError

#: Canvas-only nodes (sticky notes) carry no behaviour and are dropped.
NOTE_TYPES = {"", "custom-note"}
DEFAULT_HANDLE = "source"
CONTAINER_TYPES = {"iteration", "loop"}


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
    def __init__(
        self,
        nodes: Iterable[NodeSpec],
        edges: Iterable[Edge],
        *,
        entry: str | None = None,
        subgraphs: Mapping[str, Graph] | None = None,
    ) -> None:
        #: where a sub-graph starts (a container's ``start_node_id``); None: the graph's ``start`` node
        self.entry = entry
        #: the sub-graph of each container node of this graph
        self.subgraphs: dict[str, Graph] = dict(subgraphs or {})
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
        """Build from a DSL ``workflow.graph`` (``{nodes: [...], edges: [...]}``), dropping note nodes; the
        nodes inside containers go to the containers' sub-graphs."""
        raw_nodes = graph.get("nodes") or []
        raw_edges = graph.get("edges") or []
        if not isinstance(raw_nodes, list) or not isinstance(raw_edges, list):
            raise GraphError("graph.nodes and graph.edges must be lists")
        nodes: list[NodeSpec] = []
        parent_of: dict[str, str | None] = {}
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
            parent = raw.get("parentId") or data.get("iteration_id") or data.get("loop_id")
            parent_of[node_id] = str(parent) if parent else None
        known = {n.id for n in nodes}
        for node_id, parent in parent_of.items():
            if parent is not None and parent not in known:
                raise GraphError(f"node {node_id} is inside {parent!r}, which is not a node of the graph")
        edges = []
        for raw in raw_edges:
            if not isinstance(raw, Mapping) or "source" not in raw or "target" not in raw:
                raise GraphError("every edge needs a source and a target")
            source, target = str(raw["source"]), str(raw["target"])
            handle = str(raw.get("sourceHandle") or DEFAULT_HANDLE)
            edge_id = str(raw.get("id") or f"{source}-{handle}-{target}")
            if source not in known and target not in known:
                continue
            for end in (source, target):
                if end not in known:
                    raise GraphError(f"edge {edge_id!r} connects unknown node {end!r}")
            edges.append(Edge(id=edge_id, source=source, target=target, source_handle=handle))
        return cls._nest(nodes, edges, parent_of, None, None)

    @classmethod
    def _nest(
        cls,
        nodes: list[NodeSpec],
        edges: list[Edge],
        parent_of: Mapping[str, str | None],
        container: NodeSpec | None,
        entry: str | None,
    ) -> Graph:
        """The graph of the nodes whose container is ``container`` (None: the top level), with the sub-graph of
        each container inside it."""
        here = [n for n in nodes if parent_of.get(n.id) == (container.id if container else None)]
        ids = {n.id for n in here}
        for edge in edges:
            if (edge.source in ids) != (edge.target in ids) and (edge.source in ids or edge.target in ids):
                raise GraphError(
                    f"edge {edge.id!r} crosses the border of a container ({edge.source} -> {edge.target})"
                )
        subgraphs = {}
        for node in here:
            if node.type in CONTAINER_TYPES:
                start = str(node.data.get("start_node_id") or "")
                members = {n.id for n in nodes if parent_of.get(n.id) == node.id}
                if not start or start not in members:
                    raise GraphError(f"field start_node_id in {node.type} {node.id} not found")
                subgraphs[node.id] = cls._nest(nodes, edges, parent_of, node, start)
        own = [e for e in edges if e.source in ids and e.target in ids]
        return cls(here, own, entry=entry, subgraphs=subgraphs)

    def all_nodes(self) -> dict[str, NodeSpec]:
        """Every node of the graph and of its sub-graphs, by id."""
        found = dict(self.nodes)
        for sub in self.subgraphs.values():
            found.update(sub.all_nodes())
        return found

    def start_node(self) -> NodeSpec:
        if self.entry is not None:
            return self.nodes[self.entry]
        starts = [n for n in self.nodes.values() if n.type == "start"]
        if not starts:
            raise GraphError("the graph has no start node")
        if len(starts) > 1:
            raise GraphError(f"the graph has {len(starts)} start nodes; exactly one is allowed")
        return starts[0]

    def check_acyclic(self) -> None:
        """Refuse cycles, here and in every sub-graph (a loop repeats its body by running it again, not by an
        edge back)."""
        for sub in self.subgraphs.values():
            sub.check_acyclic()
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
