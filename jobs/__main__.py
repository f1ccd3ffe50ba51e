"""`python -m jobs worker [--queue NAME ...] [--concurrency N]`."""

from __future__ import annotations

import click
import uvloop

from app import runtime
from app.logging import configure_logging
from app.settings import Settings
from db.queue import QUEUES


@click.group()
def cli() -> None:
    """Sluice's procrastinate worker."""


@cli.command()
@click.option(
    "--queue", "queues", multiple=True, type=click.Choice(QUEUES), help="Queues to run (default all)."
)
@click.option("--concurrency", type=int, default=None, help="Jobs run at once (SLUICE_WORKER_CONCURRENCY).")
def worker(queues: tuple[str, ...], concurrency: int | None) -> None:
    """Run jobs until SIGINT/SIGTERM."""
    from jobs.worker import run_worker

    settings = runtime.resolve(Settings.from_env())
    configure_logging(settings)
    uvloop.run(run_worker(settings, queues=queues or None, concurrency=concurrency))


if __name__ == "__main__":
    cli()
