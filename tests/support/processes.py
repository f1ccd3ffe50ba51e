"""Starting Sluice's real processes (API, worker, `up`) for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests.support import contract_plugin

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def spawn(
    args: list[str], env: Mapping[str, str], log_path: Path | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``python args`` in ``cwd`` (another checkout there runs that checkout's code: ``-m`` imports from it)."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, *args], env={**os.environ, **env}, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class LiveService:
    """`python -m app up` on a free port against a given database, for tests that need real processes."""

    def __init__(
        self, database_url: str, admin_token: str, log_path: Path, extra_env: Mapping[str, str] = {}
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_token = admin_token
        self.log_path = log_path
        env = {
            "DATABASE_URL": database_url,
            "SLUICE_PORT": str(self.port),
            "SLUICE_ADMIN_TOKEN": admin_token,
            "LOG_FORMAT": "json",
            **extra_env,
        }
        self.proc = spawn(["-m", "app", "up"], env, log_path)
        contract_plugin.watch(self.base_url)  # its Service API responses are checked against Dify's document

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`up` exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                return httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2)

    def stop(self) -> int:
        return stop(self.proc)
