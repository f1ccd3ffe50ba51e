"""Which nodes may run (Dify's edge semantics): an edge is unknown until its source finishes, then *taken* (its
handle is the one the node chose) or *skipped*. A node is ready when all its incoming edges are known and one is
taken; when all are skipped the node is skipped too, and the skip propagates down its edges."""

from __future__ import annotations

from app.workflows.engine.graph import Graph
from app.workflows.engine.state import NodeState, RunState
from app.workflows.engine.statuses import SKIPPED, TAKEN, NodeStatus


def ready_nodes(graph: Graph, state: RunState, start_id: str) -> list[str]:
    """Nodes whose incoming edges are all known with one taken, in a stable order. Resolves skips."""
    ready: list[str] = []
    start = state.nodes.get(start_id)
    if start is None or start.status == NodeStatus.PENDING:
        state.nodes[start_id] = start or NodeState()
        return [start_id]
    changed = True
    while changed:
        changed = False
        for node_id in graph.nodes:
            node_state = state.nodes.get(node_id)
            if node_id == start_id or (node_state is not None and node_state.status != NodeStatus.PENDING):
                continue
            incoming = graph.incoming.get(node_id, [])
            marks = [state.edges.get(e.id) for e in incoming]
            if not incoming or any(m is None for m in marks):
                continue
            if TAKEN in marks:
                if node_state is None:
                    state.nodes[node_id] = NodeState()
                if node_id not in ready:
                    ready.append(node_id)
            else:
                state.nodes[node_id] = NodeState(status=NodeStatus.SKIPPED)
                for edge in graph.outgoing.get(node_id, []):
                    state.edges[edge.id] = SKIPPED
                changed = True
    return ready
