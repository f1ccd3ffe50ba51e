"""`http-request`: sends one HTTP request built from templates and returns status, body, headers and files.

Dify's node (graphon 0.1.2) step by step, so DSL files behave the same: the API key, URL, params, headers and
body are templated from the pool (``http_request_assembly.assemble``); ``process_data.request`` is the request
rendered as raw HTTP/1.1 with the auth header masked; the request goes out through ``ports.http`` — the guarded
client of ``app/net``, the engine never opens a socket — which refuses non-public destinations. The response
is classified as text or file from its headers and first KiB (``http_request_response``), capped at
``HTTP_REQUEST_NODE_MAX_TEXT_SIZE`` / ``_MAX_BINARY_SIZE`` while it streams, and a file is stored through
``ports.files``.

Status handling, Dify's way: 429/500/502/503/504 fail with "Reached maximum retries for URL ..." whatever the
node's strategy (Dify's HTTP helper treats them as retryable and the node gives it zero retries); any other
non-2xx succeeds, unless the node has an error strategy or retry enabled: then it fails as
``HTTPResponseCodeError`` with the response as its outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert
from app.workflows.engine.nodes.http_request_assembly import (
    Assembled,
    HttpRequestConfig,
    OutgoingRequest,
    Timeout,
    assemble,
    normalise,
)
from app.workflows.engine.nodes.http_request_response import (
    classify,
    decode_text,
    file_name_and_type,
    readable_size,
)

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
#: methods the request can use; ``options`` passes import and fails at run time, as in Dify
SENDABLE_METHODS = ("get", "post", "put", "patch", "delete", "head")
#: statuses Dify's HTTP helper retries (``STATUS_FORCELIST``); with its retry count at 0 they fail the node
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
SAMPLE_BYTES = 1024
ERROR = "HttpRequestNodeError"


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The server's limits and defaults for the node (Dify's ``HTTP_REQUEST_*`` settings)."""

    max_connect_timeout: float = 10.0
    max_read_timeout: float = 600.0
    max_write_timeout: float = 600.0
    max_binary_size: int = 10 * 1024 * 1024
    max_text_size: int = 1024 * 1024
    ssl_verify: bool = True
    #: largest file a form-data or binary body may send
    max_request_file_size: int = 15 * 1024 * 1024


class IncomingResponse(Protocol):
    status_code: int
    #: lower-cased names, repeated headers joined with ", "
    headers: Mapping[str, str]
    #: the declared body length when it is not content-encoded, else None
    content_length: int | None

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """The decoded body in bounded pieces."""
        ...


class HttpPort(Protocol):
    """The guarded HTTP client (``app/net``). Failures (refused destination, transport, timeout) raise
    ``NodeRunError`` with a readable message, also while the body is read."""

    limits: HttpLimits

    def open(self, request: OutgoingRequest) -> AbstractAsyncContextManager[IncomingResponse]: ...


class HttpRequestNode(Node):
    type = "http-request"
    performs_io: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data.get("method"), str) or data["method"].lower() not in METHODS:
            raise self.fail(f"method must be one of {', '.join(METHODS)}, got {data.get('method')!r}")
        if not isinstance(data.get("url"), str):
            raise self.fail("url is required")
        auth = data.get("authorization")
        if isinstance(auth, Mapping) and auth.get("type") == "api-key":
            if not isinstance(auth.get("config"), Mapping):
                raise self.fail("authorization.config should be a dict for api-key authorization")
        self.config: HttpRequestConfig = convert(normalise(data), HttpRequestConfig, self)

    def _timeout(self, limits: HttpLimits) -> tuple[float, float, float]:
        node = self.config.timeout or Timeout()
        return (
            node.connect or limits.max_connect_timeout,
            node.read or limits.max_read_timeout,
            node.write or limits.max_write_timeout,
        )

    async def run(self, ctx: NodeContext) -> NodeResult:
        http: HttpPort | None = ctx.ports.http
        if http is None:
            raise NodeRunError("no HTTP client is configured for http-request nodes", ERROR)
        limits = http.limits
        built: Assembled = await assemble(
            self.config,
            ctx,
            timeout=self._timeout(limits),
            verify=self.config.ssl_verify if self.config.ssl_verify is not None else limits.ssl_verify,
            max_file_size=limits.max_request_file_size,
        )
        request = built.request
        process_data = {"request": built.log}
        try:
            if request.method.lower() not in SENDABLE_METHODS:
                raise NodeRunError(f"Invalid http method {request.method}", "InvalidHttpMethodError")
            async with http.open(request) as response:
                status, headers = response.status_code, dict(response.headers)
                if status in RETRYABLE_STATUSES:
                    raise NodeRunError(f"Reached maximum retries for URL {request.url}", ERROR)
                content, is_file = await self._read(response, limits)
        except NodeRunError as exc:
            exc.result = NodeResult(process_data=process_data)
            raise
        files: list[dict[str, Any]] = []
        if is_file:
            files.append(await self._save(ctx, request.url, headers, content, process_data))
        outputs = {
            "status_code": status,
            "body": "" if files else decode_text(content, headers.get("content-type", "")),
            "headers": headers,
            "files": files,
        }
        result = NodeResult(process_data=process_data, outputs=outputs)
        if not 200 <= status < 300 and (self.error_strategy is not None or self.retry.enabled):
            raise NodeRunError(f"Request failed with status code {status}", "HTTPResponseCodeError", result)
        return result

    async def _read(self, response: IncomingResponse, limits: HttpLimits) -> tuple[bytes, bool]:
        """The body, read until the limit for its kind (text or file) is passed."""
        async with contextlib.aclosing(response.aiter_bytes()) as pieces:
            return await self._read_from(pieces, response, limits)

    async def _read_from(
        self, pieces: AsyncGenerator[bytes, None], response: IncomingResponse, limits: HttpLimits
    ) -> tuple[bytes, bool]:
        body = bytearray()
        async for piece in pieces:
            body += piece
            if len(body) >= SAMPLE_BYTES:
                break
        is_file = classify(response.headers, bytes(body[:SAMPLE_BYTES]))
        limit = limits.max_binary_size if is_file else limits.max_text_size

        def too_large(size: str) -> NodeRunError:
            kind = "File" if is_file else "Text"
            return NodeRunError(
                f"{kind} size is too large, max size is {limit / 1024 / 1024:.2f} MB, but current size is {size}.",
                "ResponseSizeError",
            )

        if response.content_length is not None and response.content_length > limit:
            raise too_large(readable_size(response.content_length))
        if len(body) > limit:
            raise too_large(f"over {readable_size(limit)}")
        async for piece in pieces:
            body += piece
            if len(body) > limit:
                raise too_large(f"over {readable_size(limit)}")
        return bytes(body), is_file

    async def _save(
        self,
        ctx: NodeContext,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        process_data: dict[str, Any],
    ) -> dict[str, Any]:
        if ctx.ports.files is None:
            raise NodeRunError(
                "The response is a file, but no file storage is configured to keep it",
                ERROR,
                NodeResult(process_data=process_data),
            )
        filename, mime_type = file_name_and_type(url, headers)
        saved: dict[str, Any] = await ctx.ports.files.save(
            ctx.run, filename=filename, mime_type=mime_type, content=content
        )
        return saved
