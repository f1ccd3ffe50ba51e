from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings, SettingsError
from db import urls


def test_defaults_match_dify_and_the_readme() -> None:
    s = Settings.from_env({})
    assert s.embedded and s.database_url is None
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 5001, Path(".data"))
    assert s.public_url == "http://127.0.0.1:5001"
    assert s.human_input_global_timeout_seconds == 604800 and s.human_input_timeout_task_interval == 1
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
    assert not s.embedded and s.port == 8080
    assert s.public_url == "https://sluice.example" and s.log_format == "json" and s.log_level == "DEBUG"


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
