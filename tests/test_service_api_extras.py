"""The app and model routes that run no workflow: /meta, /site, the model list, audio-to-text and
text-to-audio (through the fake OpenAI-compatible server), and the knowledge-pipeline routes refused by name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from app.workflows.site import tool_icons
from tests.conftest import Tenant, make_tenant
from tests.support.fake_openai import SPEECH_PATH, TRANSCRIPTIONS_PATH, FakeOpenAI
from tests.workflows.conftest import AppUnderTest, import_app

SPEAKING_APP = """
version: 0.5.0
kind: app
app: {name: Speaker, mode: workflow, icon: "🦜", icon_background: "#E4FBCC", description: Talks}
workflow:
  features:
    speech_to_text: {enabled: true}
    text_to_speech: {enabled: true, voice: nova}
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: end, data: {type: end, title: End, outputs: []}}
    edges:
      - {id: e1, source: start, target: end}
"""
SILENT_APP = SPEAKING_APP.replace("enabled: true", "enabled: false").replace("Speaker", "Silent")
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
async def api(settings: Settings, fake: FakeOpenAI) -> AsyncIterator[AsyncTestClient[Litestar]]:
    configured = msgspec.structs.replace(
        settings, openai_api_base=fake.base_url, audio_api_base=fake.base_url
    )
    async with AsyncTestClient(app=create_app(configured, configure_logs=False)) as client:
        yield client


@pytest.fixture
async def speaker(api: AsyncTestClient[Litestar]) -> AppUnderTest:
    return await import_app(api, SPEAKING_APP)


async def test_meta_and_site(api: AsyncTestClient[Litestar], speaker: AppUnderTest) -> None:
    assert (await api.get("/v1/meta", headers=speaker.headers)).json() == {"tool_icons": {}}
    site = (await api.get("/v1/site", headers=speaker.headers)).json()
    assert site["title"] == "Speaker"
    assert site["description"] == "Talks"
    assert (site["icon_type"], site["icon"], site["icon_background"]) == ("emoji", "🦜", "#E4FBCC")
    assert site["default_language"] == "en-US"
    assert site["show_workflow_steps"] is True
    assert site["chat_color_theme"] is None
    assert site["icon_url"] is None
    assert (await api.get("/v1/site")).status_code == 401


def test_tool_icons_follow_dify() -> None:
    graph = {
        "nodes": [
            {
                "data": {
                    "type": "tool",
                    "tool_name": "dalle3",
                    "provider_type": "builtin",
                    "provider_id": "dalle",
                }
            },
            {"data": {"type": "tool", "tool_name": "calc", "provider_type": "api", "provider_id": "x"}},
            {"data": {"type": "llm"}},
        ]
    }
    assert tool_icons(graph, "http://h") == {
        "dalle3": "http://h/console/api/workspaces/current/tool-provider/builtin/dalle/icon",
        "calc": {"background": "#252525", "content": "😁"},
    }


async def test_model_lists(api: AsyncTestClient[Litestar], fake: FakeOpenAI, admin: dict[str, str]) -> None:
    tenant = await make_tenant(api, admin)
    url = "/v1/workspaces/current/models/model-types"
    embedding = (await api.get(f"{url}/text-embedding", headers=tenant.dataset_headers)).json()["data"]
    assert [p["provider"] for p in embedding] == ["local"]
    assert [m["model"] for m in embedding[0]["models"]] == ["multilingual-e5-small", "static-64"]
    llm = (await api.get(f"{url}/llm", headers=tenant.dataset_headers)).json()["data"]
    assert [m["model"] for m in llm[0]["models"]] == ["fake-chat"]
    assert llm[0]["provider"] == "langgenius/openai_api_compatible/openai_api_compatible"
    assert llm[0]["tenant_id"] == tenant.workspace["id"]
    tts = (await api.get(f"{url}/tts", headers=tenant.dataset_headers)).json()["data"]
    assert [m["model"] for m in tts[0]["models"]] == ["tts-1"]
    assert (await api.get(f"{url}/rerank", headers=tenant.dataset_headers)).json() == {"data": []}

    bad = await api.get(f"{url}/chat", headers=tenant.dataset_headers)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_param"
    assert (
        await api.get(f"{url}/llm", headers=tenant.app_headers)
    ).status_code == 401  # a dataset key's route

    fake.queue_error(500, "boom", path="/v1/models")
    down = await api.get(f"{url}/llm", headers=tenant.dataset_headers)
    assert down.status_code == 503
    assert down.json()["code"] == "model_provider_unavailable"
    assert "OPENAI_API_BASE" in down.json()["message"]
    assert "127.0.0.1" not in down.text


async def test_model_list_with_the_endpoint_down(settings: Settings, admin: dict[str, str]) -> None:
    nowhere = msgspec.structs.replace(settings, openai_api_base="http://127.0.0.1:9/v1")
    async with AsyncTestClient(app=create_app(nowhere, configure_logs=False)) as client:
        tenant = await make_tenant(client, admin)
        down = await client.get(
            "/v1/workspaces/current/models/model-types/llm", headers=tenant.dataset_headers
        )
    assert down.status_code == 503
    assert "127.0.0.1" not in down.text
    assert ":9" not in down.text


async def test_audio_to_text(api: AsyncTestClient[Litestar], fake: FakeOpenAI, speaker: AppUnderTest) -> None:
    ok = await api.post(
        "/v1/audio-to-text",
        files={"file": ("hello.wav", WAV, "audio/wav")},
        data={"user": "u"},
        headers=speaker.headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"text": f"transcript of hello.wav ({len(WAV)} bytes)"}
    sent = [r for r in fake.requests if r.path == TRANSCRIPTIONS_PATH][-1]
    assert sent.body == {"model": "whisper-1", "file": "hello.wav"}

    none = await api.post("/v1/audio-to-text", data={"user": "u"}, headers=speaker.headers)
    assert none.status_code == 400
    assert none.json()["code"] == "no_audio_uploaded"
    text_file = await api.post(
        "/v1/audio-to-text", files={"file": ("a.txt", b"hi", "text/plain")}, headers=speaker.headers
    )
    assert text_file.status_code == 415
    assert text_file.json()["code"] == "unsupported_audio_type"
    huge = await api.post(
        "/v1/audio-to-text",
        files={"file": ("big.wav", bytes(31 * 1024 * 1024), "audio/wav")},
        headers=speaker.headers,
    )
    assert huge.status_code == 413
    assert huge.json()["code"] == "audio_too_large"

    fake.queue_error(500, "model crashed", path=TRANSCRIPTIONS_PATH)
    failed = await api.post(
        "/v1/audio-to-text", files={"file": ("a.wav", WAV, "audio/wav")}, headers=speaker.headers
    )
    assert failed.status_code == 400
    assert failed.json()["code"] == "completion_request_error"
    assert "model crashed" in failed.json()["message"]
    assert "127.0.0.1" not in failed.text

    silent = await import_app(api, SILENT_APP)
    off = await api.post(
        "/v1/audio-to-text", files={"file": ("a.wav", WAV, "audio/wav")}, headers=silent.headers
    )
    assert off.status_code == 400
    assert off.json()["message"] == "Speech to text is not enabled"


async def test_text_to_audio(api: AsyncTestClient[Litestar], fake: FakeOpenAI, speaker: AppUnderTest) -> None:
    spoken = await api.post(
        "/v1/text-to-audio", json={"text": "Hello there", "user": "u"}, headers=speaker.headers
    )
    assert spoken.status_code == 200, spoken.text
    assert spoken.headers["content-type"].startswith("audio/mpeg")
    assert spoken.content == b"ID3|nova|Hello there"  # the app's voice
    chosen = await api.post(
        "/v1/text-to-audio", json={"text": "Hi", "voice": "echo"}, headers=speaker.headers
    )
    assert chosen.content == b"ID3|echo|Hi"
    assert [r.body["model"] for r in fake.requests if r.path == SPEECH_PATH][-1] == "tts-1"

    empty = await api.post("/v1/text-to-audio", json={"text": "  "}, headers=speaker.headers)
    assert empty.status_code == 400
    assert empty.json()["message"] == "Text is required"
    fake.queue_error(429, "slow down", path=SPEECH_PATH)
    limited = await api.post("/v1/text-to-audio", json={"text": "Hi"}, headers=speaker.headers)
    assert limited.status_code == 400
    assert limited.json()["code"] == "completion_request_error"


async def test_audio_without_a_speech_endpoint(settings: Settings, admin: dict[str, str]) -> None:
    """No AUDIO_API_BASE (nor OPENAI_API_BASE in the environment): a 400 naming the setting."""
    assert settings.audio_api_base is None
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        speaker = await import_app(client, SPEAKING_APP)
        response = await client.post("/v1/text-to-audio", json={"text": "Hi"}, headers=speaker.headers)
    assert response.status_code == 400
    assert response.json()["code"] == "provider_not_initialize"
    assert "AUDIO_API_BASE" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/datasets/pipeline/file-upload"),
        ("GET", "/v1/datasets/{id}/pipeline/datasource-plugins"),
        ("POST", "/v1/datasets/{id}/pipeline/datasource/nodes/n1/run"),
        ("POST", "/v1/datasets/{id}/pipeline/run"),
    ],
)
async def test_knowledge_pipeline_routes_are_refused_by_name(
    client: AsyncTestClient[Litestar], tenant: Tenant, method: str, path: str
) -> None:
    url = path.replace("{id}", "0193e0a6-3c3f-7a51-8000-000000000001")
    refused = await client.request(method, url, headers=tenant.dataset_headers, json={})
    assert refused.status_code == 400
    assert refused.json()["code"] == "pipeline_not_supported"
    assert "document endpoints" in refused.json()["message"]
    assert (await client.request(method, url, json={})).status_code == 401
