"""One typed settings object, read from the environment once by an entry point and passed down.

The struct holds every setting with its default; ``app.settings_env`` says which environment variable each is
read from and checks the values. Every variable is documented in the README's configuration table; the names
follow Dify where Dify has one. Adding a setting: a field here, a row in ``settings_env.ENV``, a README row.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from app import settings_env
from app.settings_env import ENV, SettingsError

__all__ = ["CONFINED_LIMITS", "Settings", "SettingsError"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    #: Set by ``app.runtime.resolve`` when DATABASE_URL was unset and this process adopted the embedded server.
    embedded_database: bool = False
    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    port: int = 5001
    public_url: str = "http://127.0.0.1:5001"
    admin_token: str | None = None
    secret_key: str | None = None
    form_rate_limit_per_minute: int = 60
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    worker_concurrency: int = 10
    worker_poll_seconds: float = 0.5
    stalled_job_seconds: float = 30.0
    workflow_max_steps: int = 500
    workflow_max_seconds: float = 1200.0
    #: most items an iteration takes (0: no limit, as in Dify)
    iteration_max_items: int = 0
    #: most rounds of a parallel iteration at once
    max_parallel_limit: int = 10
    #: most rounds of a loop
    loop_node_max_count: int = 100
    human_input_global_timeout_seconds: int = 604800
    human_input_timeout_task_interval: int = 1
    openai_api_base: str = "http://127.0.0.1:11434/v1"
    openai_api_key: str | None = None
    llm_model_map: dict[str, str] = msgspec.field(default_factory=dict)
    llm_timeout_seconds: float = 120.0
    llm_no_tool_models: tuple[str, ...] = ()
    #: the models' context size in tokens, for the history budget of nodes with memory (0: unknown, 2000 tokens)
    llm_context_tokens: int = 0
    #: the "workspace default model" of conversation naming and suggested questions (None: the app's first LLM)
    default_llm_model: str | None = None
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str | None = None
    embedding_api_base: str = "http://127.0.0.1:11434/v1"
    embedding_api_key: str | None = None
    #: The OpenAI-compatible endpoint of /audio-to-text and /text-to-audio; None: speech is not configured
    audio_api_base: str | None = None
    audio_api_key: str | None = None
    audio_stt_model: str = "whisper-1"
    audio_tts_model: str = "tts-1"
    audio_tts_voice: str = "alloy"
    mail_type: Literal["smtp"] | None = None
    smtp_server: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_use_tls: bool = False
    smtp_opportunistic_tls: bool = False
    mail_default_send_from: str | None = None
    upload_file_size_limit: int = 15
    http_request_max_connect_timeout: float = 10.0
    http_request_max_read_timeout: float = 600.0
    http_request_max_write_timeout: float = 600.0
    http_request_node_max_binary_size: int = 10 * 1024 * 1024
    http_request_node_max_text_size: int = 1024 * 1024
    http_request_node_ssl_verify: bool = True
    #: CIDRs user-supplied URLs may reach although they are not public (app/net)
    ssrf_proxy_allow_private_networks: tuple[str, ...] = ()
    #: ports user-supplied URLs may use; empty: any
    ssrf_allowed_ports: tuple[int, ...] = ()
    code_sandbox: Literal["strict", "relaxed", "off"] = "strict"
    code_execution_timeout: float = 15.0
    code_execution_max_workers: int = 4
    code_execution_max_queue: int = 50
    code_execution_memory_mb: int = 512
    code_sandbox_preload: tuple[str, ...] = ()
    code_max_string_length: int = 400_000
    code_max_number: int = 9223372036854775807
    code_min_number: int = -9223372036854775807
    code_max_precision: int = 20
    code_max_depth: int = 5
    code_max_string_array_length: int = 30
    code_max_object_array_length: int = 30
    code_max_number_array_length: int = 1000
    upload_image_file_size_limit: int = 10
    upload_video_file_size_limit: int = 100
    upload_audio_file_size_limit: int = 50
    #: lower-case extensions without dots that ``/v1/files/upload`` refuses
    upload_file_extension_blacklist: frozenset[str] = frozenset()
    #: seconds a signed file URL stays valid
    files_access_timeout: int = 300
    #: base URL of signed file links (``{files_url}/files/{id}/file-preview?...``); None: ``public_url``
    files_url: str | None = None
    # -- untrusted work in confined children (templates with logic, document parsing): limits --
    template_timeout_seconds: float = 10.0
    template_memory_mb: int = 256
    template_transform_max_length: int = 400_000
    prompt_template_max_length: int = 2_000_000
    indexing_timeout_seconds: float = 120.0
    indexing_memory_mb: int = 512
    indexing_max_uncompressed_mb: int = 100
    indexing_max_compression_ratio: int = 100
    indexing_max_pages: int = 2_000
    indexing_max_paragraphs: int = 200_000
    indexing_max_characters: int = 5_000_000
    indexing_max_attempts: int = 3
    #: largest request body of a JSON route, in bytes (run, DSL, document and upload routes have their own)
    max_request_body_size: int = 1024 * 1024
    #: largest value of one run input, in bytes of its JSON (Dify's MAX_VARIABLE_SIZE)
    max_variable_size: int = 200 * 1024
    #: largest total of a run's inputs, in bytes of their JSON
    max_run_inputs_size: int = 1024 * 1024
    #: event streams (SSE) one Service API key may hold open at once, across every API process
    max_event_streams_per_key: int = 100
    #: ``provider:model`` pairs datasets may choose (``provider:*``: any model); empty: the default rule
    embedding_models_allowed: tuple[str, ...] = ()
    #: days a finished run keeps its events, node executions and stored values (0: forever)
    workflow_log_retention_days: int = 30
    #: days a resolved human-input form (and its deliveries and recipients) is kept (0: forever)
    form_retention_days: int = 30
    #: days an app file (``/v1/files/upload`` or produced by a node) is kept (0: forever)
    upload_file_retention_days: int = 30
    #: hours a succeeded queue job is kept, and days a failed or cancelled one is
    job_retention_hours: int = 24
    failed_job_retention_days: int = 7
    #: rows one retention transaction deletes (runs, forms, files or jobs)
    retention_batch_size: int = 100
    #: seconds one SQL statement of the API or a worker may take before PostgreSQL cancels it (0: no limit)
    db_statement_timeout: float = 60.0
    #: a run left running (or resolved and paused) with no job for this long gets a new advance job
    run_recovery_seconds: float = 60.0
    #: failed advance jobs after which such a run fails instead of being retried again
    run_max_failed_jobs: int = 5

    @property
    def embedded(self) -> bool:
        """True when Sluice runs its own PostgreSQL in ``data_dir`` (before and after ``resolve``)."""
        return self.database_url is None or self.embedded_database

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``env`` (default: the process environment), read by ``app.settings_env.ENV``."""
        return settings_env.read(cls, env)


#: the limits of untrusted work (setting name, environment variable, type, default, least allowed value)
CONFINED_LIMITS: tuple[tuple[str, str, type[int] | type[float], float, float], ...] = tuple(
    (field.name, ENV[field.name].name, type(field.default), field.default, bound.least)
    for field in msgspec.structs.fields(Settings)
    if field.name.startswith(("template_", "prompt_template_", "indexing_"))
    and (bound := ENV[field.name].bound) is not None
)
