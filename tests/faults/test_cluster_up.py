"""`python -m app up --apis 2 --workers 3` (what `just cluster 2 3` runs): two APIs on consecutive ports and three
workers on one database, all supervised; a worker killed with `kill -9` is started again."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import psutil
import psycopg

from db import urls
from tests.support.processes import free_port, spawn, stop, wait_until


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _workers_alive(pid: int) -> list[psutil.Process]:
    """The supervisor's worker children, leaving out one killed but not reaped yet (a zombie has no cmdline)."""
    alive = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[-1:] == ["worker"]:
                alive.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return alive


def test_up_runs_several_apis_and_workers(private_database: str, tmp_path: Path) -> None:
    port = free_port()
    while not _free(port + 1):  # the APIs listen on two consecutive ports
        port = free_port()
    proc = spawn(
        ["-m", "app", "up", "--apis", "2", "--workers", "3"],
        {
            "DATABASE_URL": private_database,
            "SLUICE_PORT": str(port),
            "SLUICE_ADMIN_TOKEN": "t",
            "SLUICE_SECRET_KEY": "k" * 32,
            "LOG_FORMAT": "json",
        },
        tmp_path / "up.log",
    )
    try:
        api_urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]

        def workers() -> int:
            with psycopg.connect(urls.libpq(private_database)) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '30 seconds'"
                ).fetchone()
            return int(row[0]) if row else 0

        def ready() -> bool:
            try:
                return all(httpx.get(u + "/readyz", timeout=2).status_code == 200 for u in api_urls)
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=90, interval=0.3)
        wait_until(lambda: workers() == 3, timeout=60, interval=0.3)
        children = psutil.Process(proc.pid).children()
        commands = sorted(" ".join(c.cmdline()[-2:]) for c in children)
        assert commands == ["app api", "app api", "jobs worker", "jobs worker", "jobs worker"], commands
        victim = next(c for c in children if c.cmdline()[-1] == "worker")
        victim.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = _workers_alive(proc.pid)
            if len(alive) == 3 and victim.pid not in {c.pid for c in alive}:
                break
            time.sleep(0.2)
        assert len(alive) == 3
        assert victim.pid not in {c.pid for c in alive}
        assert "child_restarted" in (tmp_path / "up.log").read_text()
    finally:
        assert stop(proc) == 0
