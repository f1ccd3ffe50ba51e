from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import CONFINED_LIMITS, Settings, SettingsError
from db import urls


def test_defaults_match_dify_and_the_readme() -> None:
    s = Settings.from_env({})
    assert s.embedded
    assert s.database_url is None
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 5001, Path(".data"))
    assert s.public_url == "http://127.0.0.1:5001"
    assert s.human_input_global_timeout_seconds == 604800
    assert s.human_input_timeout_task_interval == 1
    assert s.log_format == "console"


def test_environment_is_read() -> None:
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u:p@db:5432/sluice",
            "SLUICE_PORT": "8080",
            "SLUICE_PUBLIC_URL": "https://sluice.example/",
            "LOG_FORMAT": "JSON",
            "LOG_LEVEL": "debug",
        }
    )
    assert not s.embedded
    assert s.port == 8080
    assert s.public_url == "https://sluice.example"
    assert s.log_format == "json"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize("env", [{"SLUICE_PORT": "eighty"}, {"LOG_FORMAT": "xml"}])
def test_bad_values_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_one_url_for_every_driver() -> None:
    url = "postgres://u:p%40ss@db:5432/sluice?sslmode=require"
    assert urls.asyncpg(url).startswith("postgresql+asyncpg://u:p%40ss@db:5432/sluice")
    assert urls.psycopg(url).startswith("postgresql+psycopg://")
    assert urls.libpq("postgresql+asyncpg://u@/x?host=/tmp/s") == "postgresql://u@/x?host=%2Ftmp%2Fs"
    assert urls.database_name(urls.with_database(url, "other")) == "other"
    with pytest.raises(urls.DatabaseUrlError):
        urls.libpq("mysql://u@h/db")


def test_http_request_and_ssrf_settings() -> None:
    s = Settings.from_env({})
    assert (s.http_request_max_connect_timeout, s.http_request_max_read_timeout) == (10.0, 600.0)
    assert s.http_request_max_write_timeout == 600.0
    assert s.http_request_node_ssl_verify is True
    assert (s.http_request_node_max_text_size, s.http_request_node_max_binary_size) == (1048576, 10485760)
    assert s.ssrf_proxy_allow_private_networks == ()
    assert s.ssrf_allowed_ports == ()
    s = Settings.from_env(
        {
            "HTTP_REQUEST_MAX_READ_TIMEOUT": "30",
            "HTTP_REQUEST_NODE_MAX_TEXT_SIZE": "2048",
            "HTTP_REQUEST_NODE_SSL_VERIFY": "False",
            "SSRF_PROXY_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/8, 192.168.1.7 ,fd00::/8",
            "SSRF_ALLOWED_PORTS": "80,443",
        }
    )
    assert s.http_request_max_read_timeout == 30.0
    assert s.http_request_node_max_text_size == 2048
    assert s.http_request_node_ssl_verify is False
    assert s.ssrf_proxy_allow_private_networks == ("10.0.0.0/8", "192.168.1.7/32", "fd00::/8")
    assert s.ssrf_allowed_ports == (80, 443)


def test_code_settings_use_difys_names_and_defaults() -> None:
    s = Settings.from_env({})
    assert (s.code_sandbox, s.code_execution_timeout, s.code_execution_memory_mb) == ("strict", 15.0, 512)
    assert (s.code_execution_max_workers, s.code_execution_max_queue, s.code_sandbox_preload) == (4, 50, ())
    assert (s.code_max_string_length, s.code_max_precision, s.code_max_depth) == (400_000, 20, 5)
    assert (s.code_max_number, s.code_min_number) == (9223372036854775807, -9223372036854775807)
    assert (s.code_max_string_array_length, s.code_max_object_array_length) == (30, 30)
    assert s.code_max_number_array_length == 1000
    read = Settings.from_env(
        {
            "CODE_SANDBOX": "Relaxed",
            "CODE_EXECUTION_TIMEOUT": "2.5",
            "CODE_SANDBOX_PRELOAD": "pandas, numpy,",
            "CODE_MAX_STRING_LENGTH": "80000",
            "CODE_MAX_STRING_ARRAY_LENGTH": "100",
            "CODE_MIN_NUMBER": "-5",
        }
    )
    assert read.code_sandbox == "relaxed"
    assert read.code_execution_timeout == 2.5
    assert read.code_sandbox_preload == ("pandas", "numpy")
    assert read.code_max_string_length == 80000
    assert read.code_max_string_array_length == 100
    assert read.code_min_number == -5


@pytest.mark.parametrize(
    "env",
    [
        {"SSRF_PROXY_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/8,intranet"},
        {"SSRF_ALLOWED_PORTS": "80,http"},
        {"SSRF_ALLOWED_PORTS": "70000"},
        {"HTTP_REQUEST_MAX_CONNECT_TIMEOUT": "0"},
        {"HTTP_REQUEST_NODE_MAX_BINARY_SIZE": "-1"},
        {"HTTP_REQUEST_NODE_SSL_VERIFY": "maybe"},
    ],
)
def test_bad_http_settings_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "env",
    [
        {"CODE_SANDBOX": "loose"},
        {"CODE_EXECUTION_TIMEOUT": "0"},
        {"CODE_EXECUTION_MAX_WORKERS": "0"},
        {"CODE_EXECUTION_MEMORY_MB": "8"},
        {"CODE_MAX_DEPTH": "zero"},
        {"CODE_MIN_NUMBER": "10", "CODE_MAX_NUMBER": "5"},
    ],
)
def test_bad_code_settings_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="CODE_"):
        Settings.from_env(env)


def test_audio_settings() -> None:
    """Speech follows OPENAI_API_BASE only when it was set: the default endpoint (Ollama) has no audio routes."""
    assert Settings.from_env({}).audio_api_base is None
    s = Settings.from_env({"OPENAI_API_BASE": "http://llm.test/v1/", "OPENAI_API_KEY": "k"})
    assert (s.audio_api_base, s.audio_api_key, s.audio_stt_model, s.audio_tts_model) == (
        "http://llm.test/v1",
        "k",
        "whisper-1",
        "tts-1",
    )
    s = Settings.from_env(
        {"OPENAI_API_BASE": "http://llm.test/v1", "AUDIO_API_BASE": "http://speech.test/v1"}
    )
    assert s.audio_api_base == "http://speech.test/v1"
    assert s.audio_tts_voice == "alloy"


def test_limits_of_untrusted_work_have_documented_defaults() -> None:
    s = Settings.from_env({})
    assert (s.template_timeout_seconds, s.template_memory_mb) == (10.0, 256)
    assert (s.template_transform_max_length, s.prompt_template_max_length) == (400_000, 2_000_000)
    assert (s.indexing_timeout_seconds, s.indexing_memory_mb, s.indexing_max_attempts) == (120.0, 512, 3)
    assert (s.indexing_max_uncompressed_mb, s.indexing_max_compression_ratio) == (100, 100)
    assert (s.indexing_max_pages, s.indexing_max_paragraphs, s.indexing_max_characters) == (
        2000,
        200_000,
        5_000_000,
    )
    read = Settings.from_env(
        {
            "SLUICE_TEMPLATE_TIMEOUT_SECONDS": "2.5",
            "TEMPLATE_TRANSFORM_MAX_LENGTH": "1000",
            "SLUICE_INDEXING_MAX_PAGES": "10",
            "SLUICE_INDEXING_MAX_ATTEMPTS": "5",
        }
    )
    assert read.template_timeout_seconds == 2.5
    assert read.template_transform_max_length == 1000
    assert read.indexing_max_pages == 10
    assert read.indexing_max_attempts == 5
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for _, name, _, _, _ in CONFINED_LIMITS:
        assert f"| `{name}` |" in readme, f"{name} is not in the README's configuration table"


@pytest.mark.parametrize(
    "env",
    [
        {"SLUICE_TEMPLATE_TIMEOUT_SECONDS": "0"},
        {"SLUICE_TEMPLATE_MEMORY_MB": "16"},
        {"SLUICE_INDEXING_MAX_COMPRESSION_RATIO": "1"},
        {"SLUICE_INDEXING_MAX_ATTEMPTS": "zero"},
        {"TEMPLATE_TRANSFORM_MAX_LENGTH": "0"},
    ],
)
def test_bad_limits_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_retention_and_resilience_settings() -> None:
    s = Settings.from_env({})
    assert (s.workflow_log_retention_days, s.form_retention_days, s.upload_file_retention_days) == (
        30,
        30,
        30,
    )
    assert (s.job_retention_hours, s.failed_job_retention_days, s.retention_batch_size) == (24, 7, 100)
    assert (s.db_statement_timeout, s.run_recovery_seconds, s.run_max_failed_jobs) == (60.0, 60.0, 5)
    assert s.max_event_streams_per_key == 100
    assert s.embedding_models_allowed == ()
    read = Settings.from_env(
        {
            "WORKFLOW_LOG_RETENTION_DAYS": "0",
            "SLUICE_JOB_RETENTION_HOURS": "6",
            "SLUICE_DB_STATEMENT_TIMEOUT": "2.5",
            "SLUICE_RUN_RECOVERY_SECONDS": "5",
            "SLUICE_MAX_EVENT_STREAMS_PER_KEY": "3",
        }
    )
    assert read.workflow_log_retention_days == 0
    assert read.job_retention_hours == 6
    assert (read.db_statement_timeout, read.run_recovery_seconds, read.max_event_streams_per_key) == (
        2.5,
        5.0,
        3,
    )
    for env in (
        {"SLUICE_JOB_RETENTION_HOURS": "0"},
        {"SLUICE_DB_STATEMENT_TIMEOUT": "-1"},
        {"SLUICE_RUN_RECOVERY_SECONDS": "0"},
        {"SLUICE_RETENTION_BATCH_SIZE": "0"},
        {"SLUICE_MAX_EVENT_STREAMS_PER_KEY": "zero"},
    ):
        with pytest.raises(SettingsError, match=next(iter(env))):
            Settings.from_env(env)
