"""The table of environment variables (``app.settings_env.ENV``): complete, read as written, and documented."""

from __future__ import annotations

import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import msgspec
import pytest

from app.settings import Settings
from app.settings_env import ENV

FIELDS = {field.name: field for field in msgspec.structs.fields(Settings)}

#: fields whose sample the type cannot give: (raw value, value read, other variables the value needs)
SAMPLES: dict[str, tuple[str, Any, dict[str, str]]] = {
    "public_url": ("https://sluice.test/", "https://sluice.test", {}),
    "openai_api_base": ("http://llm.test/v1/", "http://llm.test/v1", {}),
    "embedding_api_base": ("http://embed.test/v1/", "http://embed.test/v1", {}),
    "audio_api_base": ("http://speech.test/v1/", "http://speech.test/v1", {}),
    "files_url": ("https://files.test/", "https://files.test", {}),
    "log_level": ("debug", "DEBUG", {}),
    "mail_type": ("smtp", "smtp", {"SMTP_SERVER": "mail.test", "MAIL_DEFAULT_SEND_FROM": "a@mail.test"}),
    "smtp_opportunistic_tls": ("true", True, {"SMTP_USE_TLS": "true"}),
    "llm_model_map": ("gpt-4o = llama3.2:1b,", {"gpt-4o": "llama3.2:1b"}, {}),
    "ssrf_proxy_allow_private_networks": ("10.0.0.0/8, 192.168.1.7", ("10.0.0.0/8", "192.168.1.7/32"), {}),
    "ssrf_allowed_ports": ("80, 443", (80, 443), {}),
    "upload_file_extension_blacklist": (".EXE, bat,", frozenset({"exe", "bat"}), {}),
    "embedding_models_allowed": ("local:*, openai:bge-m3", ("local:*", "openai:bge-m3"), {}),
}

#: settings whose default follows another one
DERIVED = {
    "host": {"public_url"},
    "port": {"public_url"},
    "smtp_use_tls": {"smtp_port"},
    "smtp_opportunistic_tls": {"smtp_port"},
}


def sample(field: str) -> tuple[str, Any, dict[str, str]]:
    """A value unlike the default, as the environment spells it and as the setting holds it."""
    if field in SAMPLES:
        return SAMPLES[field]
    hint, default = FIELDS[field].type, FIELDS[field].default
    if get_origin(hint) in (Union, UnionType):
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    if hint is bool:
        return str(not default).lower(), not default, {}
    if hint is int or hint is float:
        value = default + (7 if hint is int else 0.5)
        return str(value), value, {}
    if hint is str:
        return "sample-value", "sample-value", {}
    if hint is Path:
        return "/srv/sluice-sample", Path("/srv/sluice-sample"), {}
    if get_origin(hint) is Literal:
        choice = next(value for value in get_args(hint) if value != default)
        return choice.upper(), choice, {}
    if hint == tuple[str, ...]:
        return " alpha, ,beta ", ("alpha", "beta"), {}
    raise AssertionError(f"no sample for {field} ({hint!r}): add one to SAMPLES")


def test_every_setting_but_the_runtime_flag_has_a_variable() -> None:
    assert set(FIELDS) - set(ENV) == {"embedded_database"}
    assert set(ENV) <= set(FIELDS)
    names = [env.name for env in ENV.values()]
    assert len(names) == len(set(names)), "a variable is read into two settings"


@pytest.mark.parametrize("field", sorted(ENV))
def test_every_variable_is_read_into_its_setting(field: str) -> None:
    raw, value, needs = sample(field)
    before = msgspec.structs.asdict(Settings.from_env(needs))
    after = msgspec.structs.asdict(Settings.from_env({**needs, ENV[field].name: raw}))
    assert after[field] == value
    assert after[field] != before[field]
    following = {other for other, env in ENV.items() if ENV[field].name in env.fallback}
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {field} | following | DERIVED.get(field, set())


def test_readme_configuration_table_lists_exactly_the_variables() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented = [
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ", 1)[0])
    ]
    assert sorted(documented) == sorted(env.name for env in ENV.values())
    assert len(documented) == len(set(documented)), "a variable has two rows"
