"""Logs: JSON or console, stdlib records keep their tracebacks, request and job ids are bound."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from app.logging import configure_logging
from app.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_keeps_stdlib_exceptions_and_context(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json", log_level="INFO"), stream=stream)
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        try:
            raise RuntimeError("boom in a library")
        except RuntimeError:
            logging.getLogger("sqlalchemy.pool").exception("connection failed")
        structlog.get_logger().info("job_done", job_id=7)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stdlib_line, ours = lines
    assert stdlib_line["event"] == "connection failed"
    assert stdlib_line["level"] == "error"
    assert stdlib_line["request_id"] == "req-1"
    assert "boom in a library" in json.dumps(stdlib_line["exception"])
    assert ours == {**ours, "event": "job_done", "job_id": 7, "request_id": "req-1", "level": "info"}
    assert "locals" not in json.dumps(stdlib_line["exception"])  # no local variables (secrets) in logs


def test_console_keeps_tracebacks(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="console"), stream=stream)
    try:
        raise ValueError("visible traceback")
    except ValueError:
        logging.getLogger("procrastinate").exception("task crashed")
    output = stream.getvalue()
    assert "task crashed" in output
    assert "Traceback" in output
    assert "visible traceback" in output


async def test_worker_middleware_binds_job_context() -> None:
    from jobs.app import bind_job_context

    class Job:
        id, task_name = 42, "noop"

    class Context:
        job = Job()

    seen: dict[str, object] = {}

    async def call_next() -> None:
        seen.update(structlog.contextvars.get_contextvars())

    await bind_job_context(call_next, Context(), None)  # type: ignore[arg-type]
    assert seen == {"job_id": 42, "task": "noop"}
    assert "job_id" not in structlog.contextvars.get_contextvars()
