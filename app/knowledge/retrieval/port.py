"""The workflow engine's ``retriever`` port: the ``knowledge-retrieval`` node's searches, in their own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.retrieval.model import MetadataFilter, RetrievalModel, parse_retrieval_model
from app.knowledge.retrieval.services import Hit, Ranked, Retriever, load
from db.models import App, Dataset


def _uuids(values: list[str]) -> list[uuid.UUID]:
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(str(value)))
        except ValueError:
            continue  # a Dify dataset id that cannot exist here
    return out


def node_result(hits: list[Hit]) -> list[dict[str, Any]]:
    """Hits in the shape Dify's node outputs (``result``), which the llm node's context understands."""
    return [
        {
            "metadata": {
                "_source": "knowledge",
                "position": position,
                "dataset_id": str(hit.dataset.id),
                "dataset_name": hit.dataset.name,
                "document_id": str(hit.document.id),
                "document_name": hit.document.name,
                "data_source_type": hit.document.data_source_type,
                "segment_id": str(hit.segment.id),
                "retriever_from": "workflow",
                "score": round(hit.score, 6),
                "segment_hit_count": hit.segment.hit_count,
                "segment_word_count": hit.segment.word_count,
                "segment_position": hit.segment.position,
                "segment_index_node_hash": hit.segment.content_hash.hex(),
                "doc_metadata": hit.document.doc_metadata or {},
                "child_chunks": [
                    {"id": str(c.id), "content": c.content, "position": c.position, "score": round(s, 6)}
                    for c, s in hit.child_chunks
                ],
            },
            "title": hit.document.name,
            "content": hit.segment.content,
            "files": [],
        }
        for position, hit in enumerate(hits, start=1)
    ]


class KnowledgePort:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], retriever: Retriever) -> None:
        self.sessions, self.retriever = sessions, retriever

    async def retrieve(
        self,
        *,
        app_id: str,
        dataset_ids: list[str],
        query: str,
        mode: str,
        overrides: Mapping[str, Any],
        metadata_filter: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        async with self.sessions() as session, session.begin():
            workspace_id = await session.scalar(
                sa.select(App.workspace_id).where(App.id == uuid.UUID(app_id))
            )
            datasets = list(
                await session.scalars(
                    sa.select(Dataset).where(
                        Dataset.id.in_(_uuids(dataset_ids)), Dataset.workspace_id == workspace_id
                    )
                )
            )
            filters = (
                msgspec.convert(dict(metadata_filter), MetadataFilter, strict=False)
                if metadata_filter
                else None
            )
            per_dataset: list[list[Ranked]] = []
            for dataset in datasets:
                model = self._model(dataset, overrides, filters)
                per_dataset.append(await self.retriever.rank(session, [dataset], query, model))
            if mode == "single":
                chosen = max(per_dataset, key=lambda ranked: ranked[0].score if ranked else -1.0, default=[])
            else:
                top_k = int(overrides.get("top_k") or 4)
                merged = sorted((r for ranked in per_dataset for r in ranked), key=lambda r: -r.score)
                chosen = merged[:top_k]
            # only what the node returns is loaded (and counted as a hit)
            return node_result(await load(session, chosen, datasets))

    @staticmethod
    def _model(
        dataset: Dataset, overrides: Mapping[str, Any], filters: MetadataFilter | None
    ) -> RetrievalModel:
        base = msgspec.to_builtins(parse_retrieval_model(dataset.retrieval_model))
        base.update({k: v for k, v in overrides.items() if v is not None})
        model = parse_retrieval_model(base)
        if filters is not None:
            model.metadata_filtering_conditions = filters
        return model
