"""Node types, one module each. ``NODE_TYPES`` is what a DSL may use; anything else is refused at import."""

from __future__ import annotations

from collections.abc import Mapping

from app.workflows.engine.errors import GraphError
from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes.answer import AnswerNode
from app.workflows.engine.nodes.assigner import AssignerNode
from app.workflows.engine.nodes.base import Node
from app.workflows.engine.nodes.code import CodeNode
from app.workflows.engine.nodes.document_extractor import DocumentExtractorNode
from app.workflows.engine.nodes.end import EndNode
from app.workflows.engine.nodes.http_request import HttpRequestNode
from app.workflows.engine.nodes.human_input import HumanInputNode
from app.workflows.engine.nodes.if_else import IfElseNode
from app.workflows.engine.nodes.iteration import IterationNode, IterationStartNode
from app.workflows.engine.nodes.knowledge_retrieval import KnowledgeRetrievalNode
from app.workflows.engine.nodes.list_operator import ListOperatorNode
from app.workflows.engine.nodes.llm import LLMNode
from app.workflows.engine.nodes.loop import LoopEndNode, LoopNode, LoopStartNode
from app.workflows.engine.nodes.parameter_extractor import ParameterExtractorNode
from app.workflows.engine.nodes.question_classifier import QuestionClassifierNode
from app.workflows.engine.nodes.start import StartNode
from app.workflows.engine.nodes.template_transform import TemplateTransformNode
from app.workflows.engine.nodes.variable_aggregator import LegacyVariableAssignerNode, VariableAggregatorNode

NODE_TYPES: dict[str, type[Node]] = {
    cls.type: cls
    for cls in (
        StartNode,
        EndNode,
        AnswerNode,
        IfElseNode,
        VariableAggregatorNode,
        LegacyVariableAssignerNode,
        AssignerNode,
        ListOperatorNode,
        TemplateTransformNode,
        LLMNode,
        HumanInputNode,
        KnowledgeRetrievalNode,
        HttpRequestNode,
        IterationNode,
        IterationStartNode,
        LoopNode,
        LoopStartNode,
        LoopEndNode,
        ParameterExtractorNode,
        QuestionClassifierNode,
        CodeNode,
        DocumentExtractorNode,
    )
}


def build_node(spec: NodeSpec, registry: Mapping[str, type[Node]] | None = None) -> Node:
    cls = (registry or NODE_TYPES).get(spec.type)
    if cls is None:
        raise GraphError(f"node {spec.id}: unsupported node type {spec.type!r}")
    return cls(spec)
