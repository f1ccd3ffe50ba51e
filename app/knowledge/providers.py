"""Which embedder a dataset uses: its recorded provider and model, resolved against the settings once per process."""

from __future__ import annotations

from app.knowledge.embeddings import Embedder, make_embedder
from app.knowledge.errors import ProviderNotInitialized
from app.settings import Settings
from db.models import Dataset


def provider_kind(provider: str | None) -> str:
    """Dify names providers like ``langgenius/openai/openai``; anything naming openai uses the OpenAI API."""
    return "openai" if provider and "openai" in provider.lower() else "local"


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
