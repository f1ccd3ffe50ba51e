"""The command line (`python -m app ...`) and `up` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.processes import ROOT, LiveService


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_from_the_command_line(database_url: str, live_service: LiveService) -> None:
    workspace = json.loads(cli(database_url, "workspace", "create", "Ops").stdout)
    app = json.loads(cli(database_url, "app", "create", "Approvals", "--workspace", workspace["id"]).stdout)
    assert app["workspace_id"] == workspace["id"]
    key = json.loads(cli(database_url, "key", "create", "--app", app["id"]).stdout)
    assert key["token"].startswith("app-")

    headers = {"Authorization": f"Bearer {key['token']}"}
    assert httpx.get(f"{live_service.base_url}/v1/info", headers=headers).json()["name"] == "Approvals"

    listed = [
        json.loads(line) for line in cli(database_url, "key", "list", "--app", app["id"]).stdout.splitlines()
    ]
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["token"] not in listed[0]["token"]
    assert cli(database_url, "key", "revoke", key["id"]).returncode == 0
    assert httpx.get(f"{live_service.base_url}/v1/info", headers=headers).status_code == 401

    dataset_key = json.loads(
        cli(database_url, "key", "create", "--dataset", "--workspace", workspace["id"]).stdout
    )
    assert dataset_key["token"].startswith("dataset-")
    bad = cli(database_url, "key", "revoke", key["id"])
    assert bad.returncode != 0
    assert "not_found" in bad.stderr


def test_up_serves_and_stops_cleanly_on_sigterm(database_url: str, tmp_path: Path) -> None:
    service = LiveService(database_url, ADMIN_TOKEN, tmp_path / "up.log", {"SLUICE_SECRET_KEY": SECRET_KEY})
    try:
        service.wait_ready()
        assert httpx.get(service.base_url + "/healthz").status_code == 200
        ready = httpx.get(service.base_url + "/readyz").json()
        assert ready["ready"]
        assert ready["checks"]["worker"]["ok"]
    finally:
        code = service.stop()
    log = (tmp_path / "up.log").read_text()
    assert code == 0, log[-3000:]
    assert "Sluice stopped: API and worker are down" in log
    assert '"event": "worker_stopped"' in log
