"""The OpenAI-compatible audio client: ``POST {AUDIO_API_BASE}/audio/transcriptions`` and ``/audio/speech``.

The endpoint is the operator's (a setting, never a user's URL), so it is called directly like the LLM endpoint.
Errors never show the endpoint's address: an unreachable or failing endpoint is a 400 ``completion_request_error``
(Dify's mapping of a model invocation error) with the server's own message when it gave one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import structlog

from app.errors import InvalidParam
from app.openai_compat import server_message
from app.settings import Settings

log = structlog.get_logger()

#: Longest wait for the speech endpoint (transcribing 30 MB can take a while).
TIMEOUT_SECONDS = 120.0


class SpeechNotConfigured(InvalidParam):
    """Speech is not configured: set AUDIO_API_BASE (or OPENAI_API_BASE) to an OpenAI-compatible endpoint with audio routes."""

    code = "provider_not_initialize"


class SpeechRequestFailed(InvalidParam):
    """The speech request failed."""

    code = "completion_request_error"


def _base(settings: Settings) -> str:
    if not settings.audio_api_base:
        raise SpeechNotConfigured()
    return settings.audio_api_base


def _headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.audio_api_key}"} if settings.audio_api_key else {}


def _failure(response: httpx.Response, what: str) -> SpeechRequestFailed:
    log.warning("speech_request_refused", what=what, status=response.status_code)
    return SpeechRequestFailed(
        f"The {what} request failed ({response.status_code}): {server_message(response)}"
    )


async def transcribe(settings: Settings, filename: str, data: bytes, content_type: str | None) -> str:
    """The text of an audio file."""
    base = _base(settings)
    files = {"file": (filename, data, content_type or "application/octet-stream")}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.post(
                f"{base}/audio/transcriptions",
                files=files,
                data={"model": settings.audio_stt_model},
                headers=_headers(settings),
            )
    except httpx.HTTPError as exc:
        log.warning("speech_unreachable", what="transcription", error=type(exc).__name__)
        raise SpeechRequestFailed("The speech-to-text service could not be reached.") from None
    if response.status_code >= 400:
        raise _failure(response, "speech-to-text")
    try:
        text = response.json().get("text")
    except (ValueError, AttributeError):
        text = None
    if not isinstance(text, str):
        raise SpeechRequestFailed("The speech-to-text service answered without text.")
    return text


async def speak(settings: Settings, text: str, voice: str) -> AsyncIterator[bytes]:
    """The speech of a text as MP3, streamed as the endpoint sends it. The request is made (and refused, if it
    fails) before the first chunk, so errors still get an error response."""
    base = _base(settings)
    client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
    body = {"model": settings.audio_tts_model, "input": text, "voice": voice, "response_format": "mp3"}
    try:
        request = client.build_request("POST", f"{base}/audio/speech", json=body, headers=_headers(settings))
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        log.warning("speech_unreachable", what="speech", error=type(exc).__name__)
        raise SpeechRequestFailed("The text-to-speech service could not be reached.") from None
    if response.status_code >= 400:
        await response.aread()
        await client.aclose()
        raise _failure(response, "text-to-speech")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()

    return chunks()
