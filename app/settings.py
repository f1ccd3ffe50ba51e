"""One typed settings object, read from the environment once by an entry point and passed down.

Every setting is documented in the README's configuration table; the names follow Dify where Dify has one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec


class SettingsError(ValueError):
    """A setting in the environment has a value Sluice cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
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
    human_input_global_timeout_seconds: int = 604800
    human_input_timeout_task_interval: int = 1
    openai_api_base: str = "http://127.0.0.1:11434/v1"
    openai_api_key: str | None = None
    llm_model_map: dict[str, str] = msgspec.field(default_factory=dict)
    llm_timeout_seconds: float = 120.0
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str | None = None
    embedding_api_base: str = "http://127.0.0.1:11434/v1"
    embedding_api_key: str | None = None
    mail_type: Literal["smtp"] | None = None
    smtp_server: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_use_tls: bool = False
    smtp_opportunistic_tls: bool = False
    mail_default_send_from: str | None = None
    upload_file_size_limit: int = 15
    upload_image_file_size_limit: int = 10
    upload_video_file_size_limit: int = 100
    upload_audio_file_size_limit: int = 50
    #: lower-case extensions without dots that ``/v1/files/upload`` refuses
    upload_file_extension_blacklist: frozenset[str] = frozenset()
    #: seconds a signed file URL stays valid
    files_access_timeout: int = 300
    #: base URL of signed file links (``{files_url}/files/{id}/file-preview?...``); None: ``public_url``
    files_url: str | None = None

    @property
    def embedded(self) -> bool:
        """True when Sluice runs its own PostgreSQL in ``data_dir``."""
        return self.database_url is None

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
        port = int(number("SLUICE_PORT", int, 5001))
        host = get("SLUICE_HOST") or "127.0.0.1"
        log_format = (get("LOG_FORMAT") or "console").lower()
        if log_format not in ("console", "json"):
            raise SettingsError(f"LOG_FORMAT must be 'console' or 'json', got {log_format!r}")
        embedding_provider = (get("EMBEDDING_PROVIDER") or "local").lower()
        if embedding_provider not in ("local", "openai"):
            raise SettingsError(f"EMBEDDING_PROVIDER must be 'local' or 'openai', got {embedding_provider!r}")
        return cls(
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
            human_input_global_timeout_seconds=int(number("HUMAN_INPUT_GLOBAL_TIMEOUT_SECONDS", int, 604800)),
            human_input_timeout_task_interval=int(number("HUMAN_INPUT_TIMEOUT_TASK_INTERVAL", int, 1)),
            openai_api_base=(get("OPENAI_API_BASE") or "http://127.0.0.1:11434/v1").rstrip("/"),
            openai_api_key=get("OPENAI_API_KEY"),
            llm_model_map=mapping("SLUICE_LLM_MODEL_MAP"),
            llm_timeout_seconds=llm_timeout,
            embedding_provider=embedding_provider,  # type: ignore[arg-type]
            embedding_model=get("EMBEDDING_MODEL"),
            embedding_api_base=(
                get("EMBEDDING_API_BASE") or get("OPENAI_API_BASE") or "http://127.0.0.1:11434/v1"
            ).rstrip("/"),
            embedding_api_key=get("EMBEDDING_API_KEY") or get("OPENAI_API_KEY"),
            mail_type=mail_type,  # type: ignore[arg-type]
            smtp_server=get("SMTP_SERVER"),
            # Implicit TLS (SMTP_SSL) listens on 465, STARTTLS on 587, plain SMTP on 25.
            smtp_port=int(number("SMTP_PORT", int, (587 if opportunistic_tls else 465) if use_tls else 25)),
            smtp_username=get("SMTP_USERNAME"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_use_tls=use_tls,
            smtp_opportunistic_tls=opportunistic_tls,
            mail_default_send_from=get("MAIL_DEFAULT_SEND_FROM"),
            upload_file_size_limit=megabytes("UPLOAD_FILE_SIZE_LIMIT", 15),
            upload_image_file_size_limit=megabytes("UPLOAD_IMAGE_FILE_SIZE_LIMIT", 10),
            upload_video_file_size_limit=megabytes("UPLOAD_VIDEO_FILE_SIZE_LIMIT", 100),
            upload_audio_file_size_limit=megabytes("UPLOAD_AUDIO_FILE_SIZE_LIMIT", 50),
            upload_file_extension_blacklist=blacklist,
            files_access_timeout=files_access_timeout,
            files_url=(get("FILES_URL") or "").rstrip("/") or None,
        )
