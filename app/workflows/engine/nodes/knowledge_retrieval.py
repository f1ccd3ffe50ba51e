"""`knowledge-retrieval`: searches the node's datasets for the query variable; ``result`` feeds an LLM's context.

The node only reads its config and the query; the search itself goes through ``ports.retriever`` (see
``app/knowledge/retrieval/port.py``). ``multiple`` mode searches every dataset with its own search method and
fuses the hits under the node's ``multiple_retrieval_config`` (top_k, score threshold, weights). ``single``
mode in Dify asks an LLM to route the query to one dataset; Sluice searches them all and keeps the hits of the
dataset whose best hit scores highest — no model call, the same answer when the router would pick the dataset
that holds the answer. Dataset ids that do not exist in the app's workspace are skipped, as Dify skips
unavailable datasets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert, selector
from app.workflows.engine.variables import to_text


class RetrieverPort(Protocol):
    async def retrieve(
        self,
        *,
        app_id: str,
        dataset_ids: list[str],
        query: str,
        mode: str,
        overrides: Mapping[str, Any],
        metadata_filter: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]: ...


class MultipleRetrievalConfig(msgspec.Struct, kw_only=True):
    top_k: int | None = None
    score_threshold: float | None = None
    reranking_enable: bool | None = None
    reranking_mode: str | None = None
    weights: dict[str, Any] | None = None
    reranking_model: dict[str, Any] | None = None


class KnowledgeRetrievalConfig(msgspec.Struct, kw_only=True):
    query_variable_selector: list[str] | None = None
    dataset_ids: list[str] = msgspec.field(default_factory=list)
    retrieval_mode: Literal["single", "multiple"] = "multiple"
    multiple_retrieval_config: MultipleRetrievalConfig | None = None
    single_retrieval_config: dict[str, Any] | None = None
    metadata_filtering_mode: Literal["disabled", "automatic", "manual"] = "disabled"
    metadata_filtering_conditions: dict[str, Any] | None = None


class KnowledgeRetrievalNode(Node):
    type = "knowledge-retrieval"
    performs_io: ClassVar[bool] = True
    only_asks: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.config: KnowledgeRetrievalConfig = convert(data, KnowledgeRetrievalConfig, self)
        self.query_selector = selector(self.config.query_variable_selector)
        if self.query_selector is None:
            raise self.fail("query_variable_selector is required")

    def overrides(self) -> dict[str, Any]:
        multiple = self.config.multiple_retrieval_config
        if self.config.retrieval_mode != "multiple" or multiple is None:
            return {}
        values: dict[str, Any] = {
            "top_k": multiple.top_k,
            "score_threshold": multiple.score_threshold,
            "score_threshold_enabled": multiple.score_threshold is not None,
            "reranking_enable": multiple.reranking_enable,
            "reranking_mode": multiple.reranking_mode,
            "weights": multiple.weights,
        }
        return {k: v for k, v in values.items() if v is not None}

    async def run(self, ctx: NodeContext) -> NodeResult:
        assert self.query_selector is not None
        query = to_text(ctx.pool.get(self.query_selector)).strip()
        inputs = {"query": query}
        if not query:
            raise NodeRunError("Query is required.", "ValueError")
        if ctx.ports.retriever is None:
            raise NodeRunError("Knowledge retrieval is not available in this process.", "RetrieverMissing")
        port: RetrieverPort = ctx.ports.retriever
        metadata_filter = (
            self.config.metadata_filtering_conditions
            if self.config.metadata_filtering_mode == "manual"
            else None
        )
        result = await port.retrieve(
            app_id=ctx.run.app_id,
            dataset_ids=self.config.dataset_ids,
            query=query,
            mode=self.config.retrieval_mode,
            overrides=self.overrides(),
            metadata_filter=metadata_filter,
        )
        return NodeResult(inputs=inputs, outputs={"result": result})
