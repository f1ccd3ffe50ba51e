"""``GET /v1/workspaces/current/models/model-types/{model_type}`` (dataset key): the models Sluice can use, in
Dify's provider-with-models shape.

Two providers exist: ``local`` (the embedding models shipped in Python packages, always available) and the
configured OpenAI-compatible endpoint, named ``langgenius/openai_api_compatible/openai_api_compatible`` (a name
Sluice's embedder resolves to that endpoint). The endpoint's ``GET /models`` lists ids without types, so a model
is sorted by its name: ``embed`` → text-embedding, ``rerank`` → rerank, ``whisper``/``transcri`` → speech2text,
``tts`` → tts, ``moderation`` → moderation, anything else → llm; the configured ``EMBEDDING_MODEL``,
``AUDIO_STT_MODEL`` and ``AUDIO_TTS_MODEL`` are listed for their type whatever their names. Which endpoint is
asked depends on the type: OPENAI_API_BASE (llm, rerank, moderation), EMBEDDING_API_BASE (text-embedding, only
with ``EMBEDDING_PROVIDER=openai``), AUDIO_API_BASE (tts, speech2text, only when set). An endpoint that cannot be
reached is a 503 naming the setting, never the address.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import msgspec
import structlog
from litestar import Controller, get

from app.errors import InvalidParam, SluiceError, responses
from app.knowledge.embeddings.embedders import E5_MODEL, STATIC_MODEL
from app.settings import Settings
from app.tenancy.services import KeyContext

log = structlog.get_logger()

MODEL_TYPES = ("llm", "text-embedding", "rerank", "speech2text", "tts", "moderation")
REMOTE_PROVIDER = "langgenius/openai_api_compatible/openai_api_compatible"
TIMEOUT_SECONDS = 10.0
#: At most this many models are read from an endpoint's list (a hostile or huge list stays bounded).
MAX_MODELS = 1000


class ModelEndpointUnavailable(SluiceError):
    """The model endpoint could not be reached."""

    status, code = 503, "model_provider_unavailable"


class Label(msgspec.Struct):
    en_US: str
    zh_Hans: str

    @classmethod
    def of(cls, text: str) -> Label:
        return cls(en_US=text, zh_Hans=text)


class ModelOut(msgspec.Struct):
    model: str
    label: Label
    model_type: str
    features: list[str] | None
    fetch_from: str
    model_properties: dict[str, Any]
    status: str
    deprecated: bool
    load_balancing_enabled: bool
    has_invalid_load_balancing_configs: bool


class ProviderOut(msgspec.Struct):
    provider: str
    label: Label
    icon_small: Label | None
    status: str
    models: list[ModelOut]
    tenant_id: str
    icon_small_dark: Label | None


class ModelList(msgspec.Struct):
    data: list[ProviderOut]


def model_type_of(name: str) -> str:
    lowered = name.lower()
    for marker, kind in (
        ("embed", "text-embedding"),
        ("rerank", "rerank"),
        ("whisper", "speech2text"),
        ("transcri", "speech2text"),
        ("tts", "tts"),
        ("moderation", "moderation"),
    ):
        if marker in lowered:
            return kind
    return "llm"


def _model(name: str, model_type: str, fetch_from: str) -> ModelOut:
    return ModelOut(
        model=name,
        label=Label.of(name),
        model_type=model_type,
        features=None,
        fetch_from=fetch_from,
        model_properties={},
        status="active",
        deprecated=False,
        load_balancing_enabled=False,
        has_invalid_load_balancing_configs=False,
    )


def _endpoint(settings: Settings, model_type: str) -> tuple[str, str | None, str | None, str | None]:
    """(setting name, base URL or None when not in use, API key, the configured model of that type)."""
    if model_type == "text-embedding":
        base = settings.embedding_api_base if settings.embedding_provider == "openai" else None
        return "EMBEDDING_API_BASE", base, settings.embedding_api_key, settings.embedding_model
    if model_type in ("tts", "speech2text"):
        configured = settings.audio_tts_model if model_type == "tts" else settings.audio_stt_model
        return "AUDIO_API_BASE", settings.audio_api_base, settings.audio_api_key, configured
    return "OPENAI_API_BASE", settings.openai_api_base, settings.openai_api_key, None


async def listed_models(setting: str, base: str, api_key: str | None) -> list[str]:
    """The ids the endpoint's ``GET /models`` lists."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.get(f"{base}/models", headers=headers)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("model_list_unavailable", setting=setting, error=type(exc).__name__)
        raise ModelEndpointUnavailable(
            f"The model endpoint configured by {setting} could not be reached or did not answer a model list."
        ) from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ModelEndpointUnavailable(
            f"The model endpoint configured by {setting} did not answer a model list."
        )
    return [str(m["id"]) for m in data[:MAX_MODELS] if isinstance(m, dict) and isinstance(m.get("id"), str)]


async def models_of_type(settings: Settings, workspace_id: uuid.UUID, model_type: str) -> ModelList:
    providers: list[ProviderOut] = []

    def provider(name: str, label: str, models: list[ModelOut]) -> ProviderOut:
        return ProviderOut(
            provider=name,
            label=Label.of(label),
            icon_small=None,
            status="active",
            models=models,
            tenant_id=str(workspace_id),
            icon_small_dark=None,
        )

    if model_type == "text-embedding":
        local = [_model(name, model_type, "predefined-model") for name in (E5_MODEL, STATIC_MODEL)]
        providers.append(provider("local", "Local (in-process)", local))
    setting, base, api_key, configured = _endpoint(settings, model_type)
    if base:
        names = [n for n in await listed_models(setting, base, api_key) if model_type_of(n) == model_type]
        if configured and configured not in names:
            names.insert(0, configured)
        models = [_model(n, model_type, "customizable-model") for n in dict.fromkeys(names)]
        if models:
            providers.append(provider(REMOTE_PROVIDER, "OpenAI-API-compatible", models))
    return ModelList(data=providers)


class ModelTypeController(Controller):
    path = "/v1/workspaces/current/models"
    tags = ["service api: models"]

    @get("/model-types/{model_type:str}", responses=responses(400, 401, 503))
    async def available_models(self, settings: Settings, key: KeyContext, model_type: str) -> ModelList:
        """The models of one type (`text-embedding`, `rerank`, `llm`, `tts`, `speech2text`, `moderation`)."""
        if model_type not in MODEL_TYPES:
            raise InvalidParam(f"invalid model type {model_type[:40]!r}: one of {', '.join(MODEL_TYPES)}")
        return await models_of_type(settings, key.workspace_id, model_type)
