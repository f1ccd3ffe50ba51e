"""Which embedder a dataset uses: its recorded provider and model, resolved against the settings once per process,
and which ones a dataset key may choose at all.

The operator decides which models tenants may use (``SLUICE_EMBEDDING_MODELS``): a dataset key that names any
other gets 400 ``embedding_model_not_allowed`` listing the allowed ones. Without the setting, the allowed ones are
the local models (they run in the worker, send nothing anywhere and are few, so they add few HNSW indexes) and
the configured default (``EMBEDDING_PROVIDER``/``EMBEDDING_MODEL``). So a tenant can never make Sluice send its
texts to the operator's OpenAI-compatible endpoint under a model the operator did not choose. Datasets that
recorded a model before the operator narrowed the list keep it.
"""

from __future__ import annotations

from app.knowledge.embeddings.embedders import (
    E5_MODEL,
    LOCAL_EMBEDDERS,
    LOCAL_MODEL_NAMES,
    Embedder,
    make_embedder,
)
from app.knowledge.errors import EmbeddingModelNotAllowed, ProviderNotInitialized
from app.settings import Settings
from db.models import Dataset

ANY_MODEL = "*"


def provider_kind(provider: str | None) -> str:
    """Dify names providers like ``langgenius/openai/openai``; anything naming openai uses the OpenAI API."""
    return "openai" if provider and "openai" in provider.lower() else "local"


def allowed_models(settings: Settings) -> list[tuple[str, str]]:
    """``(provider kind, model)`` pairs a dataset may choose; model ``*`` allows every model of the provider."""
    if settings.embedding_models_allowed:
        pairs = []
        for entry in settings.embedding_models_allowed:
            provider, _, model = entry.partition(":")
            pairs.append((provider.strip().lower(), _canonical(provider.strip().lower(), model.strip())))
        return pairs
    pairs = [("local", name) for name in LOCAL_EMBEDDERS]
    default_model = settings.embedding_model or (E5_MODEL if settings.embedding_provider == "local" else None)
    if default_model and (settings.embedding_provider, default_model) not in pairs:
        pairs.append((settings.embedding_provider, _canonical(settings.embedding_provider, default_model)))
    return pairs


def _canonical(kind: str, model: str) -> str:
    return LOCAL_MODEL_NAMES.get(model, model) if kind == "local" else model


def check_embedding_choice(settings: Settings, provider: str, model: str) -> None:
    """Raise 400 ``embedding_model_not_allowed`` unless ``provider``/``model`` is one the operator allows."""
    kind = provider_kind(provider)
    canonical = _canonical(kind, model)
    allowed = allowed_models(settings)
    known_locally = kind != "local" or canonical in LOCAL_EMBEDDERS
    if known_locally and any(k == kind and m in (canonical, ANY_MODEL) for k, m in allowed):
        return
    raise EmbeddingModelNotAllowed(
        f"The embedding model {provider[:64]}:{model[:128]} is not offered here; choose one of: "
        + ", ".join(f"{k}:{m}" for k, m in allowed)
        + " (SLUICE_EMBEDDING_MODELS)."
    )


class Embedders:
    """Embedders by (provider, model), built on first use and kept for the process (models load once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._made: dict[tuple[str, str | None], Embedder] = {}

    def default_choice(self) -> tuple[str, str | None]:
        """``(provider, model)`` recorded on a new high-quality dataset that names none."""
        return self.settings.embedding_provider, self.settings.embedding_model

    def get(self, provider: str | None, model: str | None) -> Embedder:
        key = (provider_kind(provider), model or None)
        if key not in self._made:
            try:
                self._made[key] = make_embedder(
                    key[0],
                    key[1],
                    api_base=self.settings.embedding_api_base,
                    api_key=self.settings.embedding_api_key,
                )
            except ValueError as exc:
                raise ProviderNotInitialized(str(exc)) from None
        return self._made[key]

    def for_dataset(self, dataset: Dataset) -> Embedder | None:
        """The dataset's embedder, or None for an economy dataset (full text and keywords only)."""
        if dataset.indexing_technique != "high_quality":
            return None
        return self.get(dataset.embedding_model_provider, dataset.embedding_model)
