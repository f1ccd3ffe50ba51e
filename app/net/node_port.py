"""The workflow engine's ``http`` port: the http-request node's requests, sent by the guarded client.

Translates the node's ``OutgoingRequest`` into a ``GuardedClient.stream`` call and the client's errors into
``NodeRunError``s (``HttpRequestNodeError``, as Dify reports transport failures), also while the node reads
the body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import httpx

from app.net.client import GuardedClient, GuardedResponse
from app.net.errors import NetError
from app.net.policy import NetPolicy
from app.settings import Settings
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.http_request import ERROR, HttpLimits
from app.workflows.engine.nodes.http_request_assembly import OutgoingRequest


def limits_from(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_connect_timeout=settings.http_request_max_connect_timeout,
        max_read_timeout=settings.http_request_max_read_timeout,
        max_write_timeout=settings.http_request_max_write_timeout,
        max_binary_size=settings.http_request_node_max_binary_size,
        max_text_size=settings.http_request_node_max_text_size,
        ssl_verify=settings.http_request_node_ssl_verify,
        max_request_file_size=max(
            settings.upload_file_size_limit * 1024 * 1024, settings.http_request_node_max_binary_size
        ),
    )


def policy_from(settings: Settings) -> NetPolicy:
    return NetPolicy.of(settings.ssrf_proxy_allow_private_networks, settings.ssrf_allowed_ports)


class _NodeResponse:
    def __init__(self, response: GuardedResponse) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.content_length = response.content_length

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        try:
            async with contextlib.aclosing(self._response.aiter_bytes()) as pieces:
                async for piece in pieces:
                    yield piece
        except NetError as exc:
            raise NodeRunError(exc.message, ERROR) from None


class HttpNodePort:
    def __init__(self, client: GuardedClient, limits: HttpLimits) -> None:
        self.client, self.limits = client, limits

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpNodePort:
        return cls(GuardedClient(policy_from(settings)), limits_from(settings))

    @contextlib.asynccontextmanager
    async def open(self, request: OutgoingRequest) -> AsyncIterator[_NodeResponse]:
        connect, read, write = request.timeout
        try:
            async with self.client.stream(
                request.method,
                request.url,
                params=request.params,
                headers=request.headers,
                content=request.content,
                data=request.data,
                files=request.files,
                json=request.json,
                timeout=httpx.Timeout(connect=connect, read=read, write=write, pool=connect),
                verify=request.verify,
                max_bytes=request.max_bytes,
                secret_headers=request.secret_headers,
            ) as response:
                yield _NodeResponse(response)
        except NetError as exc:
            raise NodeRunError(exc.message, ERROR) from None
