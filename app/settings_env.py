"""Reading ``Settings`` from the environment: one table of variable names, converters chosen by field type.

``ENV`` names, for every field of ``app.settings.Settings`` but ``embedded_database``, the environment variable it
is read from (and the variables read in its place when that one is unset), a parser when the field's type does
not say enough, and the least value of a number. Defaults live only in the struct: a variable that is unset or
empty leaves its field at the struct's default. ``check`` is the one place where values are checked against their
bounds and against each other. The README's configuration table lists exactly the variable names of ``ENV``
(a test holds it to that).

Adding a setting: a field with its default in ``Settings``, a row in ``ENV``, a row in the README's table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

import msgspec

from app.net.policy import parse_networks

if TYPE_CHECKING:
    from app.settings import Settings


class SettingsError(ValueError):
    """A setting in the environment has a value Sluice cannot use."""


#: turns a variable's raw (non-empty) value into the field's value: ``parse(variable name, raw value)``
Parse = Callable[[str, str], Any]


class Bound(NamedTuple):
    """The least value of a number setting, and how the error for a smaller one reads after the variable name."""

    least: float
    inclusive: bool
    message: str

    def refuses(self, value: float) -> bool:
        return value < self.least if self.inclusive else value <= self.least


def at_least(least: float) -> Bound:
    return Bound(least, True, "must be at least {least}, got {value}")


POSITIVE = Bound(0, False, "must be positive, got {value}")
POSITIVE_SECONDS = Bound(0, False, "must be a positive number of seconds, got {value}")
POSITIVE_BYTES = Bound(0, False, "must be a positive number of bytes, got {value}")
POSITIVE_MB = Bound(0, False, "must be a positive number of MB, got {value}")
NOT_NEGATIVE = Bound(0, True, "must not be negative, got {value}")


class Env(NamedTuple):
    """Where one setting is read from."""

    #: the variable (the README documents this name)
    name: str
    #: variables read, in order, when ``name`` is unset
    fallback: tuple[str, ...] = ()
    #: None: the converter of the field's type
    parse: Parse | None = None
    bound: Bound | None = None


# -- parsers of settings whose type does not say everything --


def url(name: str, raw: str) -> str:
    """A base URL, without its trailing slashes."""
    return raw.rstrip("/")


def optional_url(name: str, raw: str) -> str | None:
    """A base URL without its trailing slashes; nothing left (``/``): unset."""
    return raw.rstrip("/") or None


def upper(name: str, raw: str) -> str:
    return raw.upper()


def mail_type(name: str, raw: str) -> str:
    if raw != "smtp":
        raise SettingsError(f"{name} {raw!r} is not supported (only 'smtp')")
    return raw


def model_map(name: str, raw: str) -> dict[str, str]:
    """``dsl-name=served-name,...``."""
    result: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not key or not value:
            raise SettingsError(f"{name} must look like 'dsl-name=served-name,...', got {raw!r}")
        result[key] = value
    return result


def networks(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated CIDRs or bare addresses, normalised (``192.168.1.7`` -> ``192.168.1.7/32``)."""
    try:
        return tuple(str(n) for n in parse_networks(_items(raw)))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def ports(name: str, raw: str) -> tuple[int, ...]:
    text = list(_items(raw))
    if not all(p.isdigit() and 0 < int(p) < 65536 for p in text):
        raise SettingsError(f"{name} must be port numbers separated by commas, got {text!r}")
    return tuple(int(p) for p in text)


def extensions(name: str, raw: str) -> frozenset[str]:
    """Comma-separated file extensions, lower-case and without dots."""
    return frozenset(ext.strip().lower().strip(".") for ext in raw.split(",") if ext.strip().strip("."))


# -- the table --

ENV: dict[str, Env] = {
    "database_url": Env("DATABASE_URL"),
    "data_dir": Env("SLUICE_DATA_DIR"),
    "host": Env("SLUICE_HOST"),
    "port": Env("SLUICE_PORT"),
    # unset: http://{host}:{port} (see ``read``)
    "public_url": Env("SLUICE_PUBLIC_URL", parse=url),
    "admin_token": Env("SLUICE_ADMIN_TOKEN"),
    "secret_key": Env("SLUICE_SECRET_KEY"),
    "form_rate_limit_per_minute": Env("SLUICE_FORM_RATE_LIMIT"),
    "log_format": Env("LOG_FORMAT"),
    "log_level": Env("LOG_LEVEL", parse=upper),
    "worker_concurrency": Env("SLUICE_WORKER_CONCURRENCY"),
    "worker_poll_seconds": Env("SLUICE_WORKER_POLL_SECONDS"),
    "stalled_job_seconds": Env("SLUICE_STALLED_JOB_SECONDS"),
    "workflow_max_steps": Env("WORKFLOW_MAX_EXECUTION_STEPS"),
    "workflow_max_seconds": Env("WORKFLOW_MAX_EXECUTION_TIME"),
    "iteration_max_items": Env("ITERATION_MAX_ITEMS", bound=at_least(0)),
    "max_parallel_limit": Env("MAX_PARALLEL_LIMIT", bound=at_least(1)),
    "loop_node_max_count": Env("LOOP_NODE_MAX_COUNT", bound=at_least(1)),
    "human_input_global_timeout_seconds": Env("HUMAN_INPUT_GLOBAL_TIMEOUT_SECONDS"),
    "human_input_timeout_task_interval": Env("HUMAN_INPUT_TIMEOUT_TASK_INTERVAL"),
    "openai_api_base": Env("OPENAI_API_BASE", parse=url),
    "openai_api_key": Env("OPENAI_API_KEY"),
    "llm_model_map": Env("SLUICE_LLM_MODEL_MAP", parse=model_map),
    "llm_timeout_seconds": Env("SLUICE_LLM_TIMEOUT_SECONDS", bound=POSITIVE),
    "llm_no_tool_models": Env("SLUICE_LLM_NO_TOOL_MODELS"),
    "llm_context_tokens": Env("SLUICE_LLM_CONTEXT_TOKENS", bound=NOT_NEGATIVE),
    "default_llm_model": Env("SLUICE_DEFAULT_LLM_MODEL"),
    "embedding_provider": Env("EMBEDDING_PROVIDER"),
    "embedding_model": Env("EMBEDDING_MODEL"),
    "embedding_api_base": Env("EMBEDDING_API_BASE", ("OPENAI_API_BASE",), parse=url),
    "embedding_api_key": Env("EMBEDDING_API_KEY", ("OPENAI_API_KEY",)),
    # Speech uses OPENAI_API_BASE only when it was set: its default (a local Ollama) has no audio routes.
    "audio_api_base": Env("AUDIO_API_BASE", ("OPENAI_API_BASE",), parse=url),
    "audio_api_key": Env("AUDIO_API_KEY", ("OPENAI_API_KEY",)),
    "audio_stt_model": Env("AUDIO_STT_MODEL"),
    "audio_tts_model": Env("AUDIO_TTS_MODEL"),
    "audio_tts_voice": Env("AUDIO_TTS_VOICE"),
    "mail_type": Env("MAIL_TYPE", parse=mail_type),
    "smtp_server": Env("SMTP_SERVER"),
    # unset: 25, 465 with TLS, 587 with STARTTLS (see ``read``)
    "smtp_port": Env("SMTP_PORT"),
    "smtp_username": Env("SMTP_USERNAME"),
    "smtp_password": Env("SMTP_PASSWORD"),
    "smtp_use_tls": Env("SMTP_USE_TLS"),
    "smtp_opportunistic_tls": Env("SMTP_OPPORTUNISTIC_TLS"),
    "mail_default_send_from": Env("MAIL_DEFAULT_SEND_FROM"),
    "upload_file_size_limit": Env("UPLOAD_FILE_SIZE_LIMIT", bound=POSITIVE_MB),
    "http_request_max_connect_timeout": Env("HTTP_REQUEST_MAX_CONNECT_TIMEOUT", bound=POSITIVE_SECONDS),
    "http_request_max_read_timeout": Env("HTTP_REQUEST_MAX_READ_TIMEOUT", bound=POSITIVE_SECONDS),
    "http_request_max_write_timeout": Env("HTTP_REQUEST_MAX_WRITE_TIMEOUT", bound=POSITIVE_SECONDS),
    "http_request_node_max_binary_size": Env("HTTP_REQUEST_NODE_MAX_BINARY_SIZE", bound=POSITIVE_BYTES),
    "http_request_node_max_text_size": Env("HTTP_REQUEST_NODE_MAX_TEXT_SIZE", bound=POSITIVE_BYTES),
    "http_request_node_ssl_verify": Env("HTTP_REQUEST_NODE_SSL_VERIFY"),
    "ssrf_proxy_allow_private_networks": Env("SSRF_PROXY_ALLOW_PRIVATE_NETWORKS", parse=networks),
    "ssrf_allowed_ports": Env("SSRF_ALLOWED_PORTS", parse=ports),
    "code_sandbox": Env("CODE_SANDBOX"),
    "code_execution_timeout": Env("CODE_EXECUTION_TIMEOUT", bound=at_least(0.001)),
    "code_execution_max_workers": Env("CODE_EXECUTION_MAX_WORKERS", bound=at_least(1)),
    "code_execution_max_queue": Env("CODE_EXECUTION_MAX_QUEUE", bound=at_least(1)),
    "code_execution_memory_mb": Env("CODE_EXECUTION_MEMORY_MB", bound=at_least(32)),
    "code_sandbox_preload": Env("CODE_SANDBOX_PRELOAD"),
    "code_max_string_length": Env("CODE_MAX_STRING_LENGTH", bound=at_least(1)),
    "code_max_number": Env("CODE_MAX_NUMBER"),
    "code_min_number": Env("CODE_MIN_NUMBER"),
    "code_max_precision": Env("CODE_MAX_PRECISION", bound=at_least(0)),
    "code_max_depth": Env("CODE_MAX_DEPTH", bound=at_least(1)),
    "code_max_string_array_length": Env("CODE_MAX_STRING_ARRAY_LENGTH", bound=at_least(0)),
    "code_max_object_array_length": Env("CODE_MAX_OBJECT_ARRAY_LENGTH", bound=at_least(0)),
    "code_max_number_array_length": Env("CODE_MAX_NUMBER_ARRAY_LENGTH", bound=at_least(0)),
    "upload_image_file_size_limit": Env("UPLOAD_IMAGE_FILE_SIZE_LIMIT", bound=POSITIVE_MB),
    "upload_video_file_size_limit": Env("UPLOAD_VIDEO_FILE_SIZE_LIMIT", bound=POSITIVE_MB),
    "upload_audio_file_size_limit": Env("UPLOAD_AUDIO_FILE_SIZE_LIMIT", bound=POSITIVE_MB),
    "upload_file_extension_blacklist": Env("UPLOAD_FILE_EXTENSION_BLACKLIST", parse=extensions),
    "files_access_timeout": Env("FILES_ACCESS_TIMEOUT", bound=POSITIVE_SECONDS),
    "files_url": Env("FILES_URL", parse=optional_url),
    "template_timeout_seconds": Env("SLUICE_TEMPLATE_TIMEOUT_SECONDS", bound=at_least(0.1)),
    "template_memory_mb": Env("SLUICE_TEMPLATE_MEMORY_MB", bound=at_least(32)),
    "template_transform_max_length": Env("TEMPLATE_TRANSFORM_MAX_LENGTH", bound=at_least(1)),
    "prompt_template_max_length": Env("SLUICE_PROMPT_TEMPLATE_MAX_LENGTH", bound=at_least(1)),
    "indexing_timeout_seconds": Env("SLUICE_INDEXING_TIMEOUT_SECONDS", bound=at_least(0.1)),
    "indexing_memory_mb": Env("SLUICE_INDEXING_MEMORY_MB", bound=at_least(64)),
    "indexing_max_uncompressed_mb": Env("SLUICE_INDEXING_MAX_UNCOMPRESSED_MB", bound=at_least(1)),
    "indexing_max_compression_ratio": Env("SLUICE_INDEXING_MAX_COMPRESSION_RATIO", bound=at_least(2)),
    "indexing_max_pages": Env("SLUICE_INDEXING_MAX_PAGES", bound=at_least(1)),
    "indexing_max_paragraphs": Env("SLUICE_INDEXING_MAX_PARAGRAPHS", bound=at_least(1)),
    "indexing_max_characters": Env("SLUICE_INDEXING_MAX_CHARACTERS", bound=at_least(1)),
    "indexing_max_attempts": Env("SLUICE_INDEXING_MAX_ATTEMPTS", bound=at_least(1)),
    "max_request_body_size": Env("SLUICE_MAX_REQUEST_BODY_SIZE", bound=at_least(1024)),
    "max_variable_size": Env("MAX_VARIABLE_SIZE", bound=at_least(1)),
    "max_run_inputs_size": Env("SLUICE_MAX_RUN_INPUTS_SIZE", bound=at_least(1)),
    "max_event_streams_per_key": Env("SLUICE_MAX_EVENT_STREAMS_PER_KEY", bound=at_least(1)),
    "embedding_models_allowed": Env("SLUICE_EMBEDDING_MODELS"),
    "workflow_log_retention_days": Env("WORKFLOW_LOG_RETENTION_DAYS", bound=at_least(0)),
    "form_retention_days": Env("SLUICE_FORM_RETENTION_DAYS", bound=at_least(0)),
    "upload_file_retention_days": Env("SLUICE_UPLOAD_FILE_RETENTION_DAYS", bound=at_least(0)),
    "job_retention_hours": Env("SLUICE_JOB_RETENTION_HOURS", bound=at_least(1)),
    "failed_job_retention_days": Env("SLUICE_FAILED_JOB_RETENTION_DAYS", bound=at_least(1)),
    "retention_batch_size": Env("SLUICE_RETENTION_BATCH_SIZE", bound=at_least(1)),
    "db_statement_timeout": Env("SLUICE_DB_STATEMENT_TIMEOUT", bound=NOT_NEGATIVE),
    "run_recovery_seconds": Env("SLUICE_RUN_RECOVERY_SECONDS", bound=POSITIVE),
    "run_max_failed_jobs": Env("SLUICE_RUN_MAX_FAILED_JOBS", bound=at_least(1)),
}


# -- converters by field type --


def _items(raw: str) -> tuple[str, ...]:
    """The non-empty items of a comma-separated list, stripped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _number(kind: type[int] | type[float]) -> Parse:
    def parse(name: str, raw: str) -> float:
        try:
            return kind(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None

    return parse


def _flag(name: str, raw: str) -> bool:
    raw = raw.lower()
    if raw not in ("true", "false"):
        raise SettingsError(f"{name} must be 'true' or 'false', got {raw!r}")
    return raw == "true"


def _choice(values: tuple[Any, ...]) -> Parse:
    quoted = [repr(v) for v in values]
    allowed = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]

    def parse(name: str, raw: str) -> str:
        raw = raw.lower()
        if raw not in values:
            raise SettingsError(f"{name} must be {allowed}, got {raw!r}")
        return raw

    return parse


def _by_type(hint: Any) -> Parse:
    """The converter of a field's type; a type without one needs a ``parse`` in its ``ENV`` row."""
    if get_origin(hint) in (Union, UnionType):
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    if hint is str:
        return lambda name, raw: raw
    if hint is int or hint is float:
        return _number(hint)
    if hint is bool:
        return _flag
    if hint is Path:
        return lambda name, raw: Path(raw)
    if get_origin(hint) is Literal:
        return _choice(get_args(hint))
    if get_origin(hint) is tuple and get_args(hint) == (str, ...):
        return lambda name, raw: _items(raw)
    raise TypeError(f"no converter for settings of type {hint!r}: give its ENV row a parse")


@cache
def _parsers(cls: type[msgspec.Struct]) -> dict[str, Parse]:
    hints = {field.name: field.type for field in msgspec.structs.fields(cls)}
    return {field: env.parse or _by_type(hints[field]) for field, env in ENV.items()}


S = TypeVar("S", bound="Settings")


def read(cls: type[S], env: Mapping[str, str] | None = None) -> S:
    """The settings in ``env`` (default: the process environment); ``SettingsError`` names a bad variable."""
    env = os.environ if env is None else env
    given: dict[str, Any] = {}
    for field, parse in _parsers(cls).items():
        names = (ENV[field].name, *ENV[field].fallback)
        raw = next((env[name] for name in names if env.get(name)), None)
        if raw is not None:
            given[field] = parse(ENV[field].name, raw)
    settings = cls(**given)
    # Defaults that depend on other settings.
    derived: dict[str, Any] = {}
    if "public_url" not in given:
        derived["public_url"] = f"http://{settings.host}:{settings.port}"
    if "smtp_port" not in given and settings.smtp_use_tls:
        # Implicit TLS (SMTP_SSL) listens on 465, STARTTLS on 587, plain SMTP on 25.
        derived["smtp_port"] = 587 if settings.smtp_opportunistic_tls else 465
    settings = msgspec.structs.replace(settings, **derived)
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Every bound of ``ENV`` and the rules between settings; ``SettingsError`` names the variable."""
    for field, env in ENV.items():
        value = getattr(settings, field)
        if env.bound is not None and env.bound.refuses(value):
            least, shown = _shown(env.bound.least), _shown(value)
            raise SettingsError(f"{env.name} {env.bound.message.format(least=least, value=shown)}")
    if settings.smtp_opportunistic_tls and not settings.smtp_use_tls:
        raise SettingsError("SMTP_OPPORTUNISTIC_TLS needs SMTP_USE_TLS=true (as in Dify)")
    if settings.mail_type and not (settings.smtp_server and settings.mail_default_send_from):
        raise SettingsError("MAIL_TYPE=smtp needs SMTP_SERVER and MAIL_DEFAULT_SEND_FROM")
    if settings.code_min_number > settings.code_max_number:
        raise SettingsError("CODE_MIN_NUMBER must not be larger than CODE_MAX_NUMBER")
    for pair in settings.embedding_models_allowed:
        provider, sep, model = pair.partition(":")
        if not sep or provider.strip().lower() not in ("local", "openai") or not model.strip():
            raise SettingsError(
                "SLUICE_EMBEDDING_MODELS must list provider:model pairs (provider local or openai, "
                f"model a name or *), got {pair!r}"
            )


def _shown(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)
