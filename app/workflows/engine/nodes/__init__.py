"""Node types, one module each. ``NODE_TYPES`` is what a DSL may use; anything else is refused at import."""

from __future__ import annotations

from collections.abc import Mapping

from app.workflows.engine.errors import GraphError
from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes.answer import AnswerNode
from app.workflows.engine.nodes.base import Node
from app.workflows.engine.nodes.end import EndNode
from app.workflows.engine.nodes.start import StartNode

NODE_TYPES: dict[str, type[Node]] = {cls.type: cls for cls in (StartNode, EndNode, AnswerNode)}


def build_node(spec: NodeSpec, registry: Mapping[str, type[Node]] | None = None) -> Node:
    cls = (registry or NODE_TYPES).get(spec.type)
    if cls is None:
        raise GraphError(f"node {spec.id}: unsupported node type {spec.type!r}")
    return cls(spec)
