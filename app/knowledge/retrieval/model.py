"""Dify's ``retrieval_model``: how to search, with every optional field defaulted (never a 500 when one is missing)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

SearchMethod = Literal["semantic_search", "full_text_search", "hybrid_search", "keyword_search"]
ComparisonOperator = Literal[
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "=",
    "≠",
    "!=",
    ">",
    "<",
    "≥",
    ">=",
    "≤",
    "<=",
    "before",
    "after",
    "in",
    "not in",
]


class VectorSetting(msgspec.Struct, kw_only=True):
    vector_weight: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.7
    embedding_provider_name: str | None = None
    embedding_model_name: str | None = None


class KeywordSetting(msgspec.Struct, kw_only=True):
    keyword_weight: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.3


class Weights(msgspec.Struct, kw_only=True):
    vector_setting: VectorSetting = msgspec.field(default_factory=VectorSetting)
    keyword_setting: KeywordSetting = msgspec.field(default_factory=KeywordSetting)
    weight_type: str | None = None


class Condition(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    comparison_operator: ComparisonOperator
    value: str | int | float | list[str | int | float] | None = None


class MetadataFilter(msgspec.Struct, kw_only=True):
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[Condition] | None = None


class RetrievalModel(msgspec.Struct, kw_only=True, omit_defaults=False):
    search_method: SearchMethod = "semantic_search"
    reranking_enable: bool | None = False
    #: ``weighted_score`` fuses hybrid results by ``weights``; anything else (Sluice has no reranking model)
    #: fuses by reciprocal rank.
    reranking_mode: str | None = None
    reranking_model: dict[str, Any] | None = None
    weights: Weights | None = None
    top_k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4
    score_threshold_enabled: bool | None = False
    score_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    metadata_filtering_conditions: MetadataFilter | None = None

    @property
    def threshold(self) -> float | None:
        return self.score_threshold if self.score_threshold_enabled and self.score_threshold else None

    @property
    def fusion(self) -> Literal["weighted", "rrf"]:
        return "weighted" if self.reranking_mode == "weighted_score" and self.weights else "rrf"

    def to_dict(self) -> dict[str, Any]:
        """The dataset's ``retrieval_model_dict`` (Dify's shape, defaults filled)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["reranking_model"] = self.reranking_model or {
            "reranking_provider_name": "",
            "reranking_model_name": "",
        }
        data.pop("metadata_filtering_conditions", None)
        return data


def parse_retrieval_model(data: dict[str, Any] | None) -> RetrievalModel:
    """A stored or DSL ``retrieval_model`` (unknown keys ignored, nulls meaning 'default')."""
    clean = {k: v for k, v in (data or {}).items() if v is not None}
    return msgspec.convert(clean, RetrievalModel, strict=False)
