"""`just up`: migrate, then run the API and a worker as child processes until Ctrl-C or SIGTERM.

Both children get the resolved DATABASE_URL (the embedded server's socket when it was unset) and admin token,
so they reach the same database without starting anything themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

from app.settings import Settings
from db import migrate

log = structlog.get_logger()

STOP_GRACE_SECONDS = 20.0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env)  # noqa: S603


def run_services(settings: Settings) -> int:
    assert settings.database_url
    migrate.upgrade(settings.database_url)
    log.info("database_migrated", head=migrate.head_revision(), embedded=settings.embedded)

    env = dict(os.environ)
    env["DATABASE_URL"] = settings.database_url
    if settings.admin_token:
        env["SLUICE_ADMIN_TOKEN"] = settings.admin_token
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children = {
        "api": _spawn(["-m", "app", "api"], env),
        "worker": _spawn(["-m", "jobs", "worker"], env),
    }
    print(
        f"\nSluice is starting: API on http://{settings.host}:{settings.port} "
        f"(docs at /openapi), worker on queues workflows, timers, indexing, mail."
        + (f"\nAdmin token (console API): {settings.admin_token}" if settings.admin_token else "")
        + "\nPress Ctrl-C to stop.\n",
        flush=True,
    )
    exit_code = 0
    while not stop_requested:
        dead = [name for name, proc in children.items() if proc.poll() is not None]
        if dead:
            log.error("child_exited", process=dead[0], returncode=children[dead[0]].returncode)
            exit_code = 1
            break
        time.sleep(0.2)

    reason = signal.Signals(stop_requested[0]).name if stop_requested else "a child exited"
    log.info("stopping", reason=reason)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, proc in children.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child_killed", process=name)
            proc.kill()
            proc.wait()
    print(
        "Sluice stopped: API and worker are down (the embedded database keeps running; `just down` stops it)."
    )
    return exit_code
