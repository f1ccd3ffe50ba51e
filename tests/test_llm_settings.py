"""The LLM settings: endpoint, key, model map and timeout, read from the environment."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError


def test_llm_defaults() -> None:
    s = Settings.from_env({})
    assert s.openai_api_base == "http://127.0.0.1:11434/v1"
    assert s.openai_api_key is None
    assert s.llm_model_map == {}
    assert s.llm_timeout_seconds == 120
    assert s.llm_no_tool_models == ()


def test_llm_environment_is_read() -> None:
    s = Settings.from_env(
        {
            "OPENAI_API_BASE": "https://llm.example/v1/",
            "OPENAI_API_KEY": "sk-secret",
            "SLUICE_LLM_MODEL_MAP": " gpt-4o = llama3.2:1b ,text-embedding-3-small=nomic-embed-text,",
            "SLUICE_LLM_TIMEOUT_SECONDS": "7.5",
            "SLUICE_LLM_NO_TOOL_MODELS": " llama3.2:1b, ,qwen2.5 ",
        }
    )
    assert s.openai_api_base == "https://llm.example/v1"
    assert s.openai_api_key == "sk-secret"
    assert s.llm_model_map == {"gpt-4o": "llama3.2:1b", "text-embedding-3-small": "nomic-embed-text"}
    assert s.llm_timeout_seconds == 7.5
    assert s.llm_no_tool_models == ("llama3.2:1b", "qwen2.5")


@pytest.mark.parametrize(
    "env",
    [
        {"SLUICE_LLM_MODEL_MAP": "gpt-4o"},
        {"SLUICE_LLM_MODEL_MAP": "gpt-4o=llama,=x"},
        {"SLUICE_LLM_MODEL_MAP": "gpt-4o="},
        {"SLUICE_LLM_TIMEOUT_SECONDS": "soon"},
        {"SLUICE_LLM_TIMEOUT_SECONDS": "0"},
    ],
)
def test_bad_llm_values_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
