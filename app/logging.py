"""structlog for everything: our own loggers and stdlib records (uvicorn, SQLAlchemy, procrastinate) go through
the same processors, so a stdlib record that carries an exception keeps its traceback in both formats."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from app.settings import Settings

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ExtraAdder(),
]


def configure_logging(settings: Settings, stream: Any = None) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level, logging.INFO)
    if settings.log_format == "json":
        final: list[Any] = [
            # Tracebacks as data, without local variables (they may hold tokens and form values).
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        ]

    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_sluice", False):
            root.removeHandler(old)
    handler._sluice = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # the request-id middleware logs requests
    # procrastinate logs every job start and end at INFO with the whole job: keep that for DEBUG.
    logging.getLogger("procrastinate").setLevel(
        max(level, logging.WARNING if level > logging.DEBUG else level)
    )
