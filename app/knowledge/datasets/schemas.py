"""Dataset bodies, shaped like Dify's Service API (``fields/dataset_fields.py``).

Sluice has no user accounts: the workspace stands in for Dify's owner account (``app.knowledge.accounts``), and
``updated_by`` stays null; external knowledge bases and RAG pipelines do not exist here, so their fields have
their empty values.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

from app.knowledge.accounts import creator_id
from app.knowledge.datasets.services import DatasetView
from app.knowledge.retrieval.model import RetrievalModel, parse_retrieval_model
from app.schemas import text_field, unix

DatasetName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")
]
Permission = Literal["only_me", "all_team_members", "partial_members"]
ModelName = Annotated[str, text_field(1, 255)]


class DatasetCreate(msgspec.Struct, kw_only=True):
    name: DatasetName
    description: Annotated[str, text_field(0, 400)] = ""
    indexing_technique: Literal["high_quality", "economy"] | None = None
    permission: Permission = "only_me"
    embedding_model: ModelName | None = None
    embedding_model_provider: ModelName | None = None
    retrieval_model: RetrievalModel | None = None
    #: Accepted for Dify clients and ignored: Sluice has no external knowledge bases.
    provider: str | None = None
    external_knowledge_api_id: str | None = None
    external_knowledge_id: str | None = None


class DatasetUpdate(msgspec.Struct, kw_only=True):
    """Only the fields given change. ``partial_member_list`` is accepted and ignored (no accounts here)."""

    name: DatasetName | None = None
    description: Annotated[str, text_field(0, 400)] | None = None
    indexing_technique: Literal["high_quality", "economy"] | None = None
    permission: Permission | None = None
    embedding_model: ModelName | None = None
    embedding_model_provider: ModelName | None = None
    retrieval_model: RetrievalModel | None = None
    partial_member_list: list[dict[str, Any]] | None = None


class RerankingModelOut(msgspec.Struct):
    reranking_provider_name: str
    reranking_model_name: str


class RetrievalModelOut(msgspec.Struct):
    """Dify's ``retrieval_model_dict``: the dataset's retrieval settings with every default filled in."""

    search_method: str
    reranking_enable: bool
    reranking_mode: str | None
    reranking_model: RerankingModelOut
    weights: dict[str, Any] | None
    top_k: int
    score_threshold_enabled: bool
    score_threshold: float | None

    @classmethod
    def of(cls, stored: dict[str, Any] | None, indexing_technique: str | None) -> RetrievalModelOut:
        try:
            model = parse_retrieval_model(stored)
        except (msgspec.ValidationError, TypeError):
            model = RetrievalModel()
        reranking = model.reranking_model or {}
        return cls(
            # An economy dataset has no vectors: Dify reports its search as keyword search.
            search_method="keyword_search" if indexing_technique == "economy" else model.search_method,
            reranking_enable=bool(model.reranking_enable),
            reranking_mode=model.reranking_mode,
            reranking_model=RerankingModelOut(
                reranking_provider_name=str(reranking.get("reranking_provider_name") or ""),
                reranking_model_name=str(reranking.get("reranking_model_name") or ""),
            ),
            weights=msgspec.to_builtins(model.weights) if model.weights else None,
            top_k=model.top_k,
            score_threshold_enabled=bool(model.score_threshold_enabled),
            score_threshold=model.score_threshold,
        )


class TagOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    type: str


class MetadataFieldOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    type: str


class DatasetOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    description: str
    provider: str
    permission: str
    data_source_type: str | None
    indexing_technique: str | None
    app_count: int
    document_count: int
    word_count: int
    created_by: str
    author_name: str
    created_at: int
    updated_by: str | None
    updated_at: int
    embedding_model: str | None
    embedding_model_provider: str | None
    embedding_available: bool
    retrieval_model_dict: RetrievalModelOut
    summary_index_setting: dict[str, Any] | None
    tags: list[TagOut]
    doc_form: str | None
    external_knowledge_info: dict[str, Any] | None
    external_retrieval_model: dict[str, Any] | None
    doc_metadata: list[MetadataFieldOut]
    built_in_field_enabled: bool
    pipeline_id: str | None
    runtime_mode: str
    chunk_structure: str | None
    icon_info: dict[str, Any] | None
    is_published: bool
    total_documents: int
    total_available_documents: int
    enable_api: bool
    is_multimodal: bool

    @classmethod
    def of(cls, view: DatasetView) -> DatasetOut:
        d = view.dataset
        return cls(
            id=d.id,
            name=d.name,
            description=d.description,
            provider="vendor",
            permission=d.permission,
            data_source_type="upload_file" if view.document_count else None,
            indexing_technique=d.indexing_technique,
            app_count=0,
            document_count=view.document_count,
            word_count=view.word_count,
            created_by=creator_id(d.workspace_id),
            author_name=view.author_name,
            created_at=unix(d.created_at) or 0,
            updated_by=None,
            updated_at=unix(d.updated_at) or 0,
            embedding_model=d.embedding_model,
            embedding_model_provider=d.embedding_model_provider,
            # The local model always works; a high-quality dataset is usable once it records a model.
            embedding_available=d.indexing_technique != "high_quality" or bool(d.embedding_model),
            retrieval_model_dict=RetrievalModelOut.of(d.retrieval_model, d.indexing_technique),
            summary_index_setting=None,
            tags=[TagOut(id=t.id, name=t.name, type=t.type) for t in view.tags],
            doc_form=d.doc_form,
            external_knowledge_info=None,
            external_retrieval_model=None,
            doc_metadata=[MetadataFieldOut(id=f.id, name=f.name, type=f.type) for f in view.metadata_fields],
            built_in_field_enabled=d.built_in_field_enabled,
            pipeline_id=None,
            runtime_mode="general",
            chunk_structure=None,
            icon_info=None,
            is_published=False,
            total_documents=view.document_count,
            total_available_documents=view.available_document_count,
            enable_api=True,
            is_multimodal=False,
        )
