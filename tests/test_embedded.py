"""The embedded PostgreSQL: starting is idempotent, and a killed postmaster does not leave the data dir unusable."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from db import embedded


@pytest.fixture
def data_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield tmp_path / "data"
    embedded.stop(tmp_path / "data")


def postmaster_pid(data_dir: Path) -> int:
    return int((embedded.pgdata(data_dir) / "postmaster.pid").read_text().splitlines()[0])


def test_start_is_idempotent_and_survives_kill_9(data_dir: Path) -> None:
    url = embedded.ensure_running(data_dir, "sluice")
    assert embedded.ensure_running(data_dir, "sluice") == url  # adopts the running server
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    os.kill(postmaster_pid(data_dir), signal.SIGKILL)
    time.sleep(0.5)

    url_again = embedded.ensure_running(data_dir, "sluice")  # stale postmaster.pid: starts again
    with psycopg.connect(url_again) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
    assert embedded.stop(data_dir) is True


def test_stop_without_a_server_is_harmless(tmp_path: Path) -> None:
    assert embedded.stop(tmp_path / "never-started") is False
