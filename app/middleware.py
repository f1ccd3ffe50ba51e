"""Request id and access log, as a plain ASGI middleware.

The id comes from the client's ``X-Request-ID`` when it is a sane token, otherwise a new one; it is bound into
structlog's context for every log line of the request and returned in the ``X-Request-ID`` response header.
Paths are logged as route templates: form links carry their token in the path, and logs must never hold one.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("sluice.http")

HEADER = b"x-request-id"
_VALID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
#: A path segment that could be a credential (form tokens are 43 URL-safe characters).
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_\-]{20,}")


def logged_path(scope: Scope) -> str:
    """The path as logs may show it: the route template (``/form/{form_token}``) once routing matched, else the
    raw path with every token-like segment replaced by a short hash of it (never the token itself)."""
    template = scope.get("path_template")
    if template:
        return str(template)
    return _SECRET_LIKE.sub(_short_hash, str(scope.get("path", "")))


def _short_hash(match: re.Match[str]) -> str:
    return "<" + hashlib.sha256(match.group(0).encode()).hexdigest()[:8] + ">"


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(HEADER, b"")
        request_id = incoming.decode() if _VALID.match(incoming) else uuid.uuid4().hex
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, send_with_id)
            finally:
                log.info(
                    "request_finished",
                    method=scope.get("method"),
                    path=logged_path(scope),
                    status=status["code"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    return middleware
