"""Running a worker: `python -m jobs worker` (what `just worker` and `just up` start)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from app.settings import Settings
from jobs.app import bind_job_context, opened

log = structlog.get_logger()


async def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    wait: bool = True,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM finish the running jobs, then return)."""
    assert settings.database_url, "resolve the database first (app.runtime.resolve)"
    options: dict[str, Any] = {"queues": list(queues)} if queues else {}
    if name:
        options["name"] = name
    async with opened(settings.database_url, min_size=1, max_size=4) as procrastinate_app:
        log.info("worker_starting", queues=list(queues) if queues else "all")
        await procrastinate_app.run_worker_async(
            **options,
            concurrency=concurrency or settings.worker_concurrency,
            wait=wait,
            fetch_job_polling_interval=settings.worker_poll_seconds,
            worker_middleware=[bind_job_context],
            install_signal_handlers=install_signal_handlers,
            additional_context={"settings": settings},
        )
        log.info("worker_stopped")
