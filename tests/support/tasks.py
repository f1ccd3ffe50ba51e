"""Tasks that exist only for tests, registered on the real App when this module is imported."""

from __future__ import annotations

import asyncio

import procrastinate

from jobs.app import app


@app.task(name="test_hang_on_first_attempt", queue="workflows", pass_context=True)
async def hang_on_first_attempt(context: procrastinate.JobContext) -> None:
    """Hangs (as if stuck) on its first attempt, finishes at once when retried."""
    if context.job.attempts == 0:
        await asyncio.sleep(3600)
