"""The one error type services raise, and the one handler that renders every error as ``{code, message, status}``.

Services raise :class:`SluiceError` subclasses (a domain error knows its HTTP status and code); Litestar's own
exceptions (validation, routing, auth) are mapped here too, so no controller ever builds error JSON by hand.
"""

from __future__ import annotations

import traceback
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from app.middleware import logged_path

log = structlog.get_logger()


class ErrorBody(msgspec.Struct):
    """Every error response: a stable machine code, a human message, and the HTTP status again."""

    code: str
    message: str
    status: int


class SluiceError(Exception):
    """Something went wrong."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidParam(SluiceError):
    """A parameter is invalid."""

    status, code = 400, "invalid_param"


class Unauthorized(SluiceError):
    """Access token is invalid."""

    status, code = 401, "unauthorized"


class Forbidden(SluiceError):
    """This key may not do that."""

    status, code = 403, "forbidden"


class NotFound(SluiceError):
    """Not found."""

    status, code = 404, "not_found"


class Conflict(SluiceError):
    """The request conflicts with the current state."""

    status, code = 409, "conflict"


_HTTP_CODES = {
    400: "invalid_param",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_entity_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "service_unavailable",
}


#: character_not_in_repertoire, untranslatable_character: bad text in a parameter.
_BAD_TEXT_SQLSTATES = {"22021", "22P05"}

#: SQLSTATEs that say the database cannot serve right now (not that the request is wrong): 503, try again.
_DATABASE_BUSY = {
    "57014": ("database_timeout", "The database did not answer in time (statement timeout); try again."),
    "55P03": ("database_timeout", "The database did not answer in time (lock timeout); try again."),
    "53100": ("database_full", "The database is out of disk space; nothing was saved."),
    "53200": ("database_unavailable", "The database is out of memory; try again."),
    "53300": ("database_unavailable", "The database has too many connections; try again."),
    "57P01": ("database_unavailable", "The database is restarting; try again."),
    "57P02": ("database_unavailable", "The database is restarting; try again."),
    "57P03": ("database_unavailable", "The database is starting up; try again."),
}
_UNAVAILABLE = ("database_unavailable", "The database cannot be reached; try again.")


def database_trouble(exc: BaseException) -> tuple[str, str] | None:
    """``(code, message)`` when ``exc`` means the database is down, restarting, full or too slow right now."""
    if isinstance(exc, SQLAlchemyTimeoutError):  # no pooled connection became free in time
        return _UNAVAILABLE
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if sqlstate in _DATABASE_BUSY:
            return _DATABASE_BUSY[sqlstate]
        if sqlstate.startswith("08") or exc.connection_invalidated or isinstance(exc, InterfaceError):
            return _UNAVAILABLE
        return None
    if isinstance(exc, OSError) and any(
        "asyncpg" in frame.filename for frame in traceback.extract_tb(exc.__traceback__)
    ):
        return _UNAVAILABLE  # connecting failed: no server at the socket, refused, reset
    return None


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key, message = item.get("key"), item.get("message")
            parts.append(f"{key}: {message}" if key else str(message))
    return "; ".join(parts) or str(exc.detail)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        content=ErrorBody(code=code, message=message, status=status), status_code=status, headers=headers
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, SluiceError):
        return error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, ValidationException):
        return error_response(400, "invalid_param", _validation_message(exc))
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            log.error("http_error", status=status, detail=exc.detail)
        return error_response(status, _HTTP_CODES.get(status, "error"), str(exc.detail), exc.headers)
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _BAD_TEXT_SQLSTATES:
        # A value PostgreSQL cannot store as text (NUL, invalid encoding) that slipped past validation.
        return error_response(400, "invalid_param", "A text value contains characters that cannot be stored.")
    trouble = database_trouble(exc)
    if trouble is not None:
        log.warning(
            "database_unavailable",
            code=trouble[0],
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
            path=logged_path(request.scope),
        )
        return error_response(503, trouble[0], trouble[1], {"Retry-After": "2"})
    log.exception("unhandled_exception", path=logged_path(request.scope), method=request.method)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error.")


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer, all with the ``ErrorBody`` shape."""
    described = {
        400: "Invalid parameters",
        401: "Missing, invalid or revoked credentials",
        403: "Not allowed",
        404: "Not found (or not visible to this key)",
        409: "Conflict",
        412: "Precondition failed",
        413: "Too large",
        429: "Too many requests",
        503: "Not ready",
    }
    # 400 is always listed: any route can get a malformed header, query or body, and Litestar would otherwise
    # document its own validation-error shape instead of ours.
    return {
        s: ResponseSpec(
            data_container=ErrorBody, description=described.get(s, "Error"), generate_examples=False
        )
        for s in sorted({400, *statuses})
    }
