"""`just up`: migrate, then run the API and a worker as child processes, restarting either if it dies, until
Ctrl-C or SIGTERM stops both.

Children are started like `just api` and `just worker`: with the embedded database they get no DATABASE_URL and
adopt the same server and the secrets kept in the data dir (admin token, secret key) themselves; with DATABASE_URL
set they read the same environment as this process. Either way every child sees what human input needs.

A child that exits while no stop was asked for is restarted after a pause that doubles with each quick failure
(0.5 s up to 30 s) and resets once a child has run for a minute. A child that keeps failing right after it starts
(say the port is taken) makes `up` give up with exit code 1 instead of restarting forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import msgspec
import structlog

from app.settings import Settings
from db import migrate

log = structlog.get_logger()

STOP_GRACE_SECONDS = 20.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
#: A child that ran at least this long before exiting starts a new backoff series.
HEALTHY_AFTER_SECONDS = 60.0
#: A child that lived less than this counts as a quick failure; this many in a row and `up` gives up.
QUICK_FAILURE_SECONDS = 10.0
MAX_QUICK_FAILURES = 5
POLL_SECONDS = 0.2


class Child(msgspec.Struct, kw_only=True):
    """One supervised process and its restart bookkeeping."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, *self.args], env=self.env)  # noqa: S603
        self.started_at = time.monotonic()
        self.restart_at = None

    def exited(self) -> bool:
        return self.proc is not None and self.restart_at is None and self.proc.poll() is not None

    def schedule_restart(self, now: float) -> float | None:
        """Note the exit; returns the delay before the restart, or None when the child keeps failing."""
        ran = now - self.started_at
        if ran >= HEALTHY_AFTER_SECONDS:
            self.quick_failures = 0
        if ran < QUICK_FAILURE_SECONDS:
            self.quick_failures += 1
            if self.quick_failures >= MAX_QUICK_FAILURES:
                return None
        delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, self.quick_failures - 1))
        self.restart_at = now + delay
        return delay


def child_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if settings.embedded:
        # The children adopt the embedded server and read the data dir's secrets themselves (app.runtime).
        env.pop("DATABASE_URL", None)
        env["SLUICE_DATA_DIR"] = str(settings.data_dir.resolve())
    return env


def run_services(settings: Settings, apis: int = 1, workers: int = 1) -> int:
    """Migrate, then supervise ``apis`` API processes (on ``SLUICE_PORT``, ``SLUICE_PORT + 1``, ...) and
    ``workers`` workers until stopped. Several of each is how several machines behave, on one."""
    assert settings.database_url
    migrate.upgrade(settings.database_url)
    env = child_environment(settings)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    api_urls = [f"http://{settings.host}:{settings.port + i}" for i in range(apis)]
    children = [
        Child(
            name="api" if apis == 1 else f"api-{i}",
            args=["-m", "app", "api"],
            # Every API builds the same form links (a load balancer would stand in front of them).
            env={**env, "SLUICE_PORT": str(settings.port + i), "SLUICE_PUBLIC_URL": settings.public_url},
        )
        for i in range(apis)
    ] + [
        Child(name="worker" if workers == 1 else f"worker-{i}", args=["-m", "jobs", "worker"], env=env)
        for i in range(workers)
    ]
    for child in children:
        child.start()
    log.info(
        "services_started",
        api=api_urls[0] if apis == 1 else api_urls,
        workers=workers,
        worker_queues="workflows, timers, indexing, mail",
        embedded=settings.embedded,
        data_dir=str(settings.data_dir.resolve()) if settings.embedded else None,
        migrations=migrate.head_revision(),
        human_input="ready"
        if settings.secret_key
        else "SLUICE_SECRET_KEY is not set: forms cannot be created",
        pids={c.name: c.proc.pid for c in children if c.proc},
    )
    print(
        f"\nSluice is starting: API on {', '.join(api_urls)} "
        f"(docs at /openapi), {workers} worker{'s' if workers != 1 else ''} on queues workflows, timers, indexing, mail"
        + (f", embedded PostgreSQL in {settings.data_dir}." if settings.embedded else ".")
        + (f"\nAdmin token (console API): {settings.admin_token}" if settings.admin_token else "")
        + "\nPress Ctrl-C to stop.\n",
        flush=True,
    )
    exit_code = _supervise(children, stop_requested)

    reason = signal.Signals(stop_requested[0]).name if stop_requested else "a child keeps failing"
    log.info("stopping", reason=reason)
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child_killed", process=child.name)
            child.proc.kill()
            child.proc.wait()
    print(
        "Sluice stopped: API and worker are down (the embedded database keeps running; `just down` stops it)."
    )
    return exit_code


def _supervise(children: list[Child], stop_requested: list[int]) -> int:
    """Restart children that die until a stop is requested (0) or one keeps failing at start (1)."""
    while not stop_requested:
        now = time.monotonic()
        for child in children:
            if child.exited():
                assert child.proc is not None
                delay = child.schedule_restart(now)
                log.error(
                    "child_exited",
                    process=child.name,
                    returncode=child.proc.returncode,
                    ran_seconds=round(now - child.started_at, 1),
                    restart_in_seconds=delay,
                )
                if delay is None:
                    log.error("child_keeps_failing", process=child.name, quick_failures=child.quick_failures)
                    return 1
            elif child.restart_at is not None and now >= child.restart_at:
                child.start()
                assert child.proc is not None
                log.warning("child_restarted", process=child.name, pid=child.proc.pid)
        time.sleep(POLL_SECONDS)
    return 0
