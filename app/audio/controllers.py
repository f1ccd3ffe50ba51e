"""``POST /v1/audio-to-text`` and ``POST /v1/text-to-audio`` (app key), with Dify's checks and error codes.

As in Dify (``services/audio_service.py``) the app's published workflow must enable the feature
(``features.speech_to_text`` / ``features.text_to_speech``; otherwise 400 ``invalid_param``), an audio upload is
one ``file`` of at most 30 MB with an ``audio/*`` type Dify accepts, and the voice is the request's, else the
app's ``text_to_speech.voice``, else ``AUDIO_TTS_VOICE``. ``message_id`` (voicing a chat answer) needs chat
messages, which exist only once chat apps do; until then only ``text`` is voiced.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from app.audio import client
from app.errors import InvalidParam, NotFound, SluiceError, responses
from app.knowledge.documents import uploads
from app.knowledge.errors import FileTooLarge
from app.schemas import text_field
from app.settings import Settings
from app.tenancy.services import AppKey
from app.workflows import services

MAX_AUDIO_MB = 30
AUDIO_TYPES = {f"audio/{ext}" for ext in ("mp3", "mp4", "mpeg", "mpga", "m4a", "wav", "webm", "amr")}
MAX_TEXT = 10_000


class NoAudioUploaded(InvalidParam):
    """Please upload your audio."""

    code = "no_audio_uploaded"


class AudioTooLarge(SluiceError):
    """Audio size exceeded."""

    status, code = 413, "audio_too_large"


class UnsupportedAudioType(SluiceError):
    """Audio type not allowed."""

    status, code = 415, "unsupported_audio_type"


class TranscriptOut(msgspec.Struct):
    text: str


class SpeechRequest(msgspec.Struct, kw_only=True):
    message_id: uuid.UUID | None = None
    text: Annotated[str, text_field(0, MAX_TEXT)] | None = None
    voice: Annotated[str, text_field(1, 64)] | None = None
    user: Annotated[str, text_field(0, 255)] | None = None
    streaming: bool | None = None


async def _feature(session: AsyncSession, app_id: uuid.UUID, name: str, refusal: str) -> dict[str, Any]:
    """The app's ``features.<name>`` when enabled; Dify's ValueError text otherwise."""
    try:
        workflow = await services.published(session, app_id)
    except NotFound:
        raise InvalidParam(refusal) from None
    feature = ((workflow.dsl.get("workflow") or {}).get("features") or {}).get(name) or {}
    if not isinstance(feature, dict) or not feature.get("enabled"):
        raise InvalidParam(refusal)
    return feature


class AudioController(Controller):
    path = "/v1"
    tags = ["service api: audio"]

    @post(
        "/audio-to-text",
        status_code=200,
        responses=responses(400, 401, 413, 415),
        request_max_body_size=None,  # read by uploads.read_form, bounded at 30 MB
    )
    async def audio_to_text(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings, key: AppKey
    ) -> TranscriptOut:
        """Transcribe one audio `file` (multipart; mp3, mp4, mpeg, mpga, m4a, wav, webm or amr, at most 30 MB)."""
        await _feature(db_session, key.app_id, "speech_to_text", "Speech to text is not enabled")
        try:
            form = await uploads.read_form(request, MAX_AUDIO_MB)
        except FileTooLarge:
            raise AudioTooLarge(f"Audio size larger than {MAX_AUDIO_MB} mb") from None
        part = next((f for f in form.files if f.field == "file"), None)
        if part is None:
            raise NoAudioUploaded()
        if (part.content_type or "").split(";")[0].strip().lower() not in AUDIO_TYPES:
            raise UnsupportedAudioType()
        filename = part.filename.replace("\\", "/").rsplit("/", 1)[-1] or "audio"
        return TranscriptOut(text=await client.transcribe(settings, filename, part.data, part.content_type))

    @post("/text-to-audio", status_code=200, responses=responses(400, 401), media_type="audio/mpeg")
    async def text_to_audio(
        self, db_session: AsyncSession, settings: Settings, key: AppKey, data: SpeechRequest
    ) -> Stream:
        """Speak `text` (MP3, streamed) with `voice`, the app's voice or the configured default."""
        feature = await _feature(db_session, key.app_id, "text_to_speech", "TTS is not enabled")
        if data.message_id is not None and not data.text:
            raise NotFound("Message Not Exists.")  # no chat messages in this app (workflow apps have none)
        if not data.text or not data.text.strip():
            raise InvalidParam("Text is required")
        voice = data.voice or str(feature.get("voice") or "") or settings.audio_tts_voice
        audio = await client.speak(settings, data.text, voice)
        return Stream(audio, media_type="audio/mpeg")
