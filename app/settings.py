"""One typed settings object, read from the environment once by an entry point and passed down.

Every setting is documented in the README's configuration table; the names follow Dify where Dify has one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from app.net.policy import parse_networks


class SettingsError(ValueError):
    """A setting in the environment has a value Sluice cannot use."""


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
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def number(name: str, kind: type[int] | type[float], default: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None

        def mapping(name: str) -> dict[str, str]:
            raw = get(name)
            result: dict[str, str] = {}
            for pair in (raw or "").split(","):
                if not pair.strip():
                    continue
                key, sep, value = (part.strip() for part in pair.partition("="))
                if not sep or not key or not value:
                    raise SettingsError(f"{name} must look like 'dsl-name=served-name,...', got {raw!r}")
                result[key] = value
            return result

        def flag(name: str) -> bool:
            raw = (get(name) or "false").lower()
            if raw not in ("true", "false"):
                raise SettingsError(f"{name} must be 'true' or 'false', got {raw!r}")
            return raw == "true"

        mail_type = get("MAIL_TYPE")
        if mail_type not in (None, "smtp"):
            raise SettingsError(f"MAIL_TYPE {mail_type!r} is not supported (only 'smtp')")
        use_tls, opportunistic_tls = flag("SMTP_USE_TLS"), flag("SMTP_OPPORTUNISTIC_TLS")
        if opportunistic_tls and not use_tls:
            raise SettingsError("SMTP_OPPORTUNISTIC_TLS needs SMTP_USE_TLS=true (as in Dify)")
        if mail_type and not (get("SMTP_SERVER") and get("MAIL_DEFAULT_SEND_FROM")):
            raise SettingsError("MAIL_TYPE=smtp needs SMTP_SERVER and MAIL_DEFAULT_SEND_FROM")
        llm_timeout = float(number("SLUICE_LLM_TIMEOUT_SECONDS", float, 120.0))
        if llm_timeout <= 0:
            raise SettingsError(f"SLUICE_LLM_TIMEOUT_SECONDS must be positive, got {llm_timeout:g}")
        llm_context_tokens = int(number("SLUICE_LLM_CONTEXT_TOKENS", int, 0))
        if llm_context_tokens < 0:
            raise SettingsError(f"SLUICE_LLM_CONTEXT_TOKENS must not be negative, got {llm_context_tokens}")
        code_sandbox = (get("CODE_SANDBOX") or "strict").lower()
        if code_sandbox not in ("strict", "relaxed", "off"):
            raise SettingsError(f"CODE_SANDBOX must be 'strict', 'relaxed' or 'off', got {code_sandbox!r}")
        code_numbers: dict[str, float] = {}
        for name, kind, default, least in (
            ("CODE_EXECUTION_TIMEOUT", float, 15.0, 0.001),
            ("CODE_EXECUTION_MAX_WORKERS", int, 4, 1),
            ("CODE_EXECUTION_MAX_QUEUE", int, 50, 1),
            ("CODE_EXECUTION_MEMORY_MB", int, 512, 32),
            ("CODE_MAX_STRING_LENGTH", int, 400_000, 1),
            ("CODE_MAX_PRECISION", int, 20, 0),
            ("CODE_MAX_DEPTH", int, 5, 1),
            ("CODE_MAX_STRING_ARRAY_LENGTH", int, 30, 0),
            ("CODE_MAX_OBJECT_ARRAY_LENGTH", int, 30, 0),
            ("CODE_MAX_NUMBER_ARRAY_LENGTH", int, 1000, 0),
        ):
            value = number(name, kind, default)
            if value < least:
                raise SettingsError(f"{name} must be at least {least:g}, got {value:g}")
            code_numbers[name] = value
        code_max_number = int(number("CODE_MAX_NUMBER", int, 9223372036854775807))
        code_min_number = int(number("CODE_MIN_NUMBER", int, -9223372036854775807))
        if code_min_number > code_max_number:
            raise SettingsError("CODE_MIN_NUMBER must not be larger than CODE_MAX_NUMBER")

        def megabytes(name: str, default: int) -> int:
            value = int(number(name, int, default))
            if value <= 0:
                raise SettingsError(f"{name} must be a positive number of MB, got {value}")
            return value

        files_access_timeout = int(number("FILES_ACCESS_TIMEOUT", int, 300))
        if files_access_timeout <= 0:
            raise SettingsError(
                f"FILES_ACCESS_TIMEOUT must be a positive number of seconds, got {files_access_timeout}"
            )
        blacklist = frozenset(
            ext.strip().lower().strip(".")
            for ext in (get("UPLOAD_FILE_EXTENSION_BLACKLIST") or "").split(",")
            if ext.strip().strip(".")
        )
        container_limits: dict[str, int] = {}
        for name, default, least in (
            ("ITERATION_MAX_ITEMS", 0, 0),
            ("MAX_PARALLEL_LIMIT", 10, 1),
            ("LOOP_NODE_MAX_COUNT", 100, 1),
        ):
            container_limits[name] = int(number(name, int, default))
            if container_limits[name] < least:
                raise SettingsError(f"{name} must be at least {least}, got {container_limits[name]}")
        port = int(number("SLUICE_PORT", int, 5001))
        http_timeouts: dict[str, float] = {}
        for which, seconds in (("CONNECT", 10.0), ("READ", 600.0), ("WRITE", 600.0)):
            name = f"HTTP_REQUEST_MAX_{which}_TIMEOUT"
            http_timeouts[which] = float(number(name, float, seconds))
            if http_timeouts[which] <= 0:
                raise SettingsError(
                    f"{name} must be a positive number of seconds, got {http_timeouts[which]:g}"
                )
        http_sizes: dict[str, int] = {}
        for which, size in (("BINARY", 10 * 1024 * 1024), ("TEXT", 1024 * 1024)):
            name = f"HTTP_REQUEST_NODE_MAX_{which}_SIZE"
            http_sizes[which] = int(number(name, int, size))
            if http_sizes[which] <= 0:
                raise SettingsError(f"{name} must be a positive number of bytes, got {http_sizes[which]}")
        ssl_verify = (get("HTTP_REQUEST_NODE_SSL_VERIFY") or "true").lower()
        if ssl_verify not in ("true", "false"):
            raise SettingsError(f"HTTP_REQUEST_NODE_SSL_VERIFY must be 'true' or 'false', got {ssl_verify!r}")
        networks = [
            c.strip() for c in (get("SSRF_PROXY_ALLOW_PRIVATE_NETWORKS") or "").split(",") if c.strip()
        ]
        try:
            networks = [str(n) for n in parse_networks(networks)]
        except ValueError as exc:
            raise SettingsError(f"SSRF_PROXY_ALLOW_PRIVATE_NETWORKS: {exc}") from None
        ports_text = [p.strip() for p in (get("SSRF_ALLOWED_PORTS") or "").split(",") if p.strip()]
        if not all(p.isdigit() and 0 < int(p) < 65536 for p in ports_text):
            raise SettingsError(
                f"SSRF_ALLOWED_PORTS must be port numbers separated by commas, got {ports_text!r}"
            )
        limits: dict[str, int] = {}
        for name, default, least in (
            ("SLUICE_MAX_REQUEST_BODY_SIZE", 1024 * 1024, 1024),
            ("MAX_VARIABLE_SIZE", 200 * 1024, 1),
            ("SLUICE_MAX_RUN_INPUTS_SIZE", 1024 * 1024, 1),
            ("SLUICE_MAX_EVENT_STREAMS_PER_KEY", 100, 1),
            ("WORKFLOW_LOG_RETENTION_DAYS", 30, 0),
            ("SLUICE_FORM_RETENTION_DAYS", 30, 0),
            ("SLUICE_UPLOAD_FILE_RETENTION_DAYS", 30, 0),
            ("SLUICE_JOB_RETENTION_HOURS", 24, 1),
            ("SLUICE_FAILED_JOB_RETENTION_DAYS", 7, 1),
            ("SLUICE_RETENTION_BATCH_SIZE", 100, 1),
            ("SLUICE_RUN_MAX_FAILED_JOBS", 5, 1),
        ):
            value = int(number(name, int, default))
            if value < least:
                raise SettingsError(f"{name} must be at least {least}, got {value}")
            limits[name] = value
        statement_timeout = float(number("SLUICE_DB_STATEMENT_TIMEOUT", float, 60.0))
        if statement_timeout < 0:
            raise SettingsError(
                f"SLUICE_DB_STATEMENT_TIMEOUT must not be negative, got {statement_timeout:g}"
            )
        recovery = float(number("SLUICE_RUN_RECOVERY_SECONDS", float, 60.0))
        if recovery <= 0:
            raise SettingsError(f"SLUICE_RUN_RECOVERY_SECONDS must be positive, got {recovery:g}")
        allowed_models = tuple(
            pair.strip() for pair in (get("SLUICE_EMBEDDING_MODELS") or "").split(",") if pair.strip()
        )
        for pair in allowed_models:
            provider, sep, model = pair.partition(":")
            if not sep or provider.strip().lower() not in ("local", "openai") or not model.strip():
                raise SettingsError(
                    "SLUICE_EMBEDDING_MODELS must list provider:model pairs (provider local or openai, "
                    f"model a name or *), got {pair!r}"
                )
        host = get("SLUICE_HOST") or "127.0.0.1"
        log_format = (get("LOG_FORMAT") or "console").lower()
        if log_format not in ("console", "json"):
            raise SettingsError(f"LOG_FORMAT must be 'console' or 'json', got {log_format!r}")
        embedding_provider = (get("EMBEDDING_PROVIDER") or "local").lower()
        if embedding_provider not in ("local", "openai"):
            raise SettingsError(f"EMBEDDING_PROVIDER must be 'local' or 'openai', got {embedding_provider!r}")
        audio_base = get("AUDIO_API_BASE") or get("OPENAI_API_BASE")
        confined = _confined_limits(number)
        return cls(
            **confined,
            database_url=get("DATABASE_URL"),
            data_dir=Path(get("SLUICE_DATA_DIR") or ".data"),
            host=host,
            port=port,
            public_url=(get("SLUICE_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
            admin_token=get("SLUICE_ADMIN_TOKEN"),
            secret_key=get("SLUICE_SECRET_KEY"),
            form_rate_limit_per_minute=int(number("SLUICE_FORM_RATE_LIMIT", int, 60)),
            log_format=log_format,  # type: ignore[arg-type]
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            worker_concurrency=int(number("SLUICE_WORKER_CONCURRENCY", int, 10)),
            worker_poll_seconds=float(number("SLUICE_WORKER_POLL_SECONDS", float, 0.5)),
            stalled_job_seconds=float(number("SLUICE_STALLED_JOB_SECONDS", float, 30.0)),
            workflow_max_steps=int(number("WORKFLOW_MAX_EXECUTION_STEPS", int, 500)),
            workflow_max_seconds=float(number("WORKFLOW_MAX_EXECUTION_TIME", float, 1200.0)),
            iteration_max_items=container_limits["ITERATION_MAX_ITEMS"],
            max_parallel_limit=container_limits["MAX_PARALLEL_LIMIT"],
            loop_node_max_count=container_limits["LOOP_NODE_MAX_COUNT"],
            human_input_global_timeout_seconds=int(number("HUMAN_INPUT_GLOBAL_TIMEOUT_SECONDS", int, 604800)),
            human_input_timeout_task_interval=int(number("HUMAN_INPUT_TIMEOUT_TASK_INTERVAL", int, 1)),
            openai_api_base=(get("OPENAI_API_BASE") or "http://127.0.0.1:11434/v1").rstrip("/"),
            openai_api_key=get("OPENAI_API_KEY"),
            llm_model_map=mapping("SLUICE_LLM_MODEL_MAP"),
            llm_timeout_seconds=llm_timeout,
            llm_no_tool_models=tuple(
                name.strip() for name in (get("SLUICE_LLM_NO_TOOL_MODELS") or "").split(",") if name.strip()
            ),
            llm_context_tokens=llm_context_tokens,
            default_llm_model=get("SLUICE_DEFAULT_LLM_MODEL"),
            embedding_provider=embedding_provider,  # type: ignore[arg-type]
            embedding_model=get("EMBEDDING_MODEL"),
            embedding_api_base=(
                get("EMBEDDING_API_BASE") or get("OPENAI_API_BASE") or "http://127.0.0.1:11434/v1"
            ).rstrip("/"),
            embedding_api_key=get("EMBEDDING_API_KEY") or get("OPENAI_API_KEY"),
            # Speech uses OPENAI_API_BASE only when it was set: its default (a local Ollama) has no audio routes.
            audio_api_base=audio_base.rstrip("/") if audio_base else None,
            audio_api_key=get("AUDIO_API_KEY") or get("OPENAI_API_KEY"),
            audio_stt_model=get("AUDIO_STT_MODEL") or "whisper-1",
            audio_tts_model=get("AUDIO_TTS_MODEL") or "tts-1",
            audio_tts_voice=get("AUDIO_TTS_VOICE") or "alloy",
            mail_type=mail_type,  # type: ignore[arg-type]
            smtp_server=get("SMTP_SERVER"),
            # Implicit TLS (SMTP_SSL) listens on 465, STARTTLS on 587, plain SMTP on 25.
            smtp_port=int(number("SMTP_PORT", int, (587 if opportunistic_tls else 465) if use_tls else 25)),
            smtp_username=get("SMTP_USERNAME"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_use_tls=use_tls,
            smtp_opportunistic_tls=opportunistic_tls,
            mail_default_send_from=get("MAIL_DEFAULT_SEND_FROM"),
            http_request_max_connect_timeout=http_timeouts["CONNECT"],
            http_request_max_read_timeout=http_timeouts["READ"],
            http_request_max_write_timeout=http_timeouts["WRITE"],
            http_request_node_max_binary_size=http_sizes["BINARY"],
            http_request_node_max_text_size=http_sizes["TEXT"],
            http_request_node_ssl_verify=ssl_verify == "true",
            ssrf_proxy_allow_private_networks=tuple(networks),
            ssrf_allowed_ports=tuple(int(p) for p in ports_text),
            code_sandbox=code_sandbox,  # type: ignore[arg-type]
            code_execution_timeout=float(code_numbers["CODE_EXECUTION_TIMEOUT"]),
            code_execution_max_workers=int(code_numbers["CODE_EXECUTION_MAX_WORKERS"]),
            code_execution_max_queue=int(code_numbers["CODE_EXECUTION_MAX_QUEUE"]),
            code_execution_memory_mb=int(code_numbers["CODE_EXECUTION_MEMORY_MB"]),
            code_sandbox_preload=tuple(
                name.strip() for name in (get("CODE_SANDBOX_PRELOAD") or "").split(",") if name.strip()
            ),
            code_max_string_length=int(code_numbers["CODE_MAX_STRING_LENGTH"]),
            code_max_number=code_max_number,
            code_min_number=code_min_number,
            code_max_precision=int(code_numbers["CODE_MAX_PRECISION"]),
            code_max_depth=int(code_numbers["CODE_MAX_DEPTH"]),
            code_max_string_array_length=int(code_numbers["CODE_MAX_STRING_ARRAY_LENGTH"]),
            code_max_object_array_length=int(code_numbers["CODE_MAX_OBJECT_ARRAY_LENGTH"]),
            code_max_number_array_length=int(code_numbers["CODE_MAX_NUMBER_ARRAY_LENGTH"]),
            upload_file_size_limit=megabytes("UPLOAD_FILE_SIZE_LIMIT", 15),
            upload_image_file_size_limit=megabytes("UPLOAD_IMAGE_FILE_SIZE_LIMIT", 10),
            upload_video_file_size_limit=megabytes("UPLOAD_VIDEO_FILE_SIZE_LIMIT", 100),
            upload_audio_file_size_limit=megabytes("UPLOAD_AUDIO_FILE_SIZE_LIMIT", 50),
            upload_file_extension_blacklist=blacklist,
            files_access_timeout=files_access_timeout,
            files_url=(get("FILES_URL") or "").rstrip("/") or None,
            max_request_body_size=limits["SLUICE_MAX_REQUEST_BODY_SIZE"],
            max_variable_size=limits["MAX_VARIABLE_SIZE"],
            max_run_inputs_size=limits["SLUICE_MAX_RUN_INPUTS_SIZE"],
            max_event_streams_per_key=limits["SLUICE_MAX_EVENT_STREAMS_PER_KEY"],
            embedding_models_allowed=allowed_models,
            workflow_log_retention_days=limits["WORKFLOW_LOG_RETENTION_DAYS"],
            form_retention_days=limits["SLUICE_FORM_RETENTION_DAYS"],
            upload_file_retention_days=limits["SLUICE_UPLOAD_FILE_RETENTION_DAYS"],
            job_retention_hours=limits["SLUICE_JOB_RETENTION_HOURS"],
            failed_job_retention_days=limits["SLUICE_FAILED_JOB_RETENTION_DAYS"],
            retention_batch_size=limits["SLUICE_RETENTION_BATCH_SIZE"],
            db_statement_timeout=statement_timeout,
            run_recovery_seconds=recovery,
            run_max_failed_jobs=limits["SLUICE_RUN_MAX_FAILED_JOBS"],
        )


#: the limits of untrusted work (setting name, environment variable, type, default, least allowed value)
CONFINED_LIMITS: tuple[tuple[str, str, type[int] | type[float], float, float], ...] = (
    ("template_timeout_seconds", "SLUICE_TEMPLATE_TIMEOUT_SECONDS", float, 10.0, 0.1),
    ("template_memory_mb", "SLUICE_TEMPLATE_MEMORY_MB", int, 256, 32),
    ("template_transform_max_length", "TEMPLATE_TRANSFORM_MAX_LENGTH", int, 400_000, 1),
    ("prompt_template_max_length", "SLUICE_PROMPT_TEMPLATE_MAX_LENGTH", int, 2_000_000, 1),
    ("indexing_timeout_seconds", "SLUICE_INDEXING_TIMEOUT_SECONDS", float, 120.0, 0.1),
    ("indexing_memory_mb", "SLUICE_INDEXING_MEMORY_MB", int, 512, 64),
    ("indexing_max_uncompressed_mb", "SLUICE_INDEXING_MAX_UNCOMPRESSED_MB", int, 100, 1),
    ("indexing_max_compression_ratio", "SLUICE_INDEXING_MAX_COMPRESSION_RATIO", int, 100, 2),
    ("indexing_max_pages", "SLUICE_INDEXING_MAX_PAGES", int, 2_000, 1),
    ("indexing_max_paragraphs", "SLUICE_INDEXING_MAX_PARAGRAPHS", int, 200_000, 1),
    ("indexing_max_characters", "SLUICE_INDEXING_MAX_CHARACTERS", int, 5_000_000, 1),
    ("indexing_max_attempts", "SLUICE_INDEXING_MAX_ATTEMPTS", int, 3, 1),
)


def _confined_limits(number: Callable[[str, type[int] | type[float], float], float]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, name, kind, default, least in CONFINED_LIMITS:
        value = number(name, kind, default)
        if value < least:
            raise SettingsError(f"{name} must be at least {least:g}, got {value:g}")
        values[field] = kind(value)
    return values
