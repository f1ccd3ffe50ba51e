"""``GuardedClient``: the one HTTP client for URLs that come from a DSL, an input or a request.

Every hop of a request (the first and each redirect) is parsed once by ``httpx.URL`` — the same object the
request is sent with — and checked before anything is sent: scheme http/https, host name not ``localhost``-ish,
port allowed, then the host resolved ONCE (or read as an address in any spelling) and refused if ANY address is
not allowed (``NetPolicy``). The vetted addresses are pinned in the transport (``PinnedBackend``): the
connection goes to them and nowhere else, so a second DNS answer cannot rebind the name. Redirects are followed
here, at most ``max_redirects``, each hop vetted again; ``Authorization`` (and any header the caller names
secret) is dropped when the host changes; 303 (and 301/302 after a POST) become GET without a body.
Environment proxies are ignored (``trust_env=False``). The body is streamed and decoded in bounded pieces, and
reading stops at the caller's byte cap, counted on decoded bytes.

Operator-configured endpoints (``OPENAI_API_BASE``...) do not go through here: the guard is for URLs a tenant
controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import httpx
import structlog

from app.net import decoding
from app.net.errors import (
    InvalidRequest,
    InvalidURL,
    NetError,
    ResponseTooLarge,
    SSRFBlocked,
    TooManyRedirects,
    UpstreamError,
    UpstreamTimeout,
)
from app.net.policy import DEFAULT_PORTS, IPAddress, NetPolicy, literal_address
from app.net.resolver import Resolver, SystemResolver
from app.net.transport import PinnedBackend, pinned_transport

log = structlog.get_logger()

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: headers that describe a body, dropped with the body when a redirect turns the request into a GET
BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})

FileTuple = tuple[str | None, bytes, str]


class GuardedResponse:
    """A response whose headers have arrived; the body is read (decoded, capped) on demand."""

    def __init__(
        self, response: httpx.Response, url: str, max_bytes: int | None, method: str = "GET"
    ) -> None:
        self._response = response
        self.url = url
        self.status_code = response.status_code
        self.reason_phrase = response.reason_phrase
        #: lower-cased names, repeated headers joined with ", " (httpx's own merging)
        self.headers: dict[str, str] = dict(response.headers)
        self.max_bytes = max_bytes
        self.received = 0
        encoding = response.headers.get("content-encoding")
        self.decoded = decoding.supported(encoding) and bool(
            [c for c in decoding.codings(encoding) if c != "identity"]
        )
        declared = response.headers.get("content-length")
        bodiless = (
            method.upper() == "HEAD" or response.status_code in (204, 304) or response.status_code < 200
        )
        #: the body's length when the server declared it and it is not encoded (else None); a HEAD response
        #: declares the length of a body it does not send
        self.content_length: int | None = (
            int(declared) if declared and declared.isdigit() and not self.decoded and not bodiless else None
        )

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """The decoded body in pieces of at most 64 KiB; ``ResponseTooLarge`` past ``max_bytes``."""
        if self.max_bytes is not None and (self.content_length or 0) > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes, self.content_length or 0)
        pieces = decoding.decode(self._response.aiter_raw(), self._response.headers.get("content-encoding"))
        try:
            async with contextlib.aclosing(pieces):
                async for piece in pieces:
                    self.received += len(piece)
                    if self.max_bytes is not None and self.received > self.max_bytes:
                        raise ResponseTooLarge(self.max_bytes, self.received)
                    yield piece
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"Reading the response from '{self.url}' timed out") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise UpstreamError(_describe(exc, self.url)) from exc
        except decoding.DecodingError as exc:
            raise UpstreamError(f"{exc} ('{self.url}')") from exc

    async def read(self) -> bytes:
        body = bytearray()
        async for piece in self.aiter_bytes():
            body += piece
        return bytes(body)


class Fetched:
    """A whole response (``GuardedClient.request``)."""

    def __init__(self, url: str, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.url, self.status_code, self.headers, self.content = url, status_code, headers, content


def _describe(exc: Exception, url: str) -> str:
    text = str(exc) or type(exc).__name__
    return f"{text} ('{url}')" if url not in text else text


class GuardedClient:
    """Sends requests to user-supplied URLs under ``policy``. Holds no connections between requests."""

    def __init__(
        self,
        policy: NetPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        max_redirects: int = MAX_REDIRECTS,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: Any = None,
    ) -> None:
        self.policy = policy or NetPolicy()
        self.resolver = resolver or SystemResolver()
        self.max_redirects = max_redirects
        #: used when verifying (tests pass one that trusts their own CA); None: the system's CAs
        self._verified_context = ssl_context
        self._unverified_context: ssl.SSLContext | None = None
        #: the socket layer under the pinning (tests record connections with it); None: anyio
        self._network_backend = network_backend

    # --- the guard -------------------------------------------------------------------------------

    def parse(self, url: str | httpx.URL) -> httpx.URL:
        """The one parse of a URL, used for the check and for the connection alike."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise InvalidURL(str(url), str(exc)) from None
        reason = self.policy.scheme_refusal(parsed.scheme)
        if reason:
            raise SSRFBlocked(str(url), reason)
        return parsed

    async def vet(self, url: httpx.URL, timeout: float | None = None) -> tuple[str, int, list[IPAddress]]:
        """Check one hop and resolve it once; returns ``(host, port, addresses)`` to pin."""
        shown = str(url)
        reason = self.policy.scheme_refusal(url.scheme)
        if reason:
            raise SSRFBlocked(shown, reason)
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS[url.scheme]
        reason = self.policy.name_refusal(host) or self.policy.port_refusal(port)
        if reason:
            raise SSRFBlocked(shown, reason)
        try:
            literal = literal_address(host)
        except ValueError as exc:
            raise SSRFBlocked(shown, str(exc)) from None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self.resolver.resolve(host, port)
            except TimeoutError:
                raise UpstreamTimeout(f"Resolving '{host}' timed out") from None
            except OSError as exc:
                raise UpstreamError(f"Could not resolve '{host}': {exc}") from None
        reason = self.policy.addresses_refusal(host, addresses)
        if reason:
            log.warning("ssrf_blocked", url=shown, reason=reason)
            raise SSRFBlocked(shown, reason)
        return host, port, addresses

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        if verify:
            if self._verified_context is None:
                self._verified_context = httpx.create_ssl_context(verify=True, trust_env=False)
            return self._verified_context
        if self._unverified_context is None:
            self._unverified_context = httpx.create_ssl_context(verify=False, trust_env=False)
        return self._unverified_context

    # --- requests --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[tuple[str, FileTuple]] | None = None,
        json: Any = None,
        timeout: httpx.Timeout | float = 30.0,
        verify: bool = True,
        follow_redirects: bool = True,
        max_bytes: int | None = None,
        secret_headers: Collection[str] = ("authorization",),
    ) -> AsyncIterator[GuardedResponse]:
        """Send a request and yield the final response with its body unread. Raises ``NetError``s only."""
        timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        backend = PinnedBackend(self._network_backend)
        secret = {name.lower() for name in secret_headers} | {"authorization", "proxy-authorization"}
        hop_url: str | httpx.URL = self.parse(url)
        try:
            hop_headers = httpx.Headers(headers or {})
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"The request to '{url}' cannot be sent: {exc}") from None
        if "accept-encoding" not in hop_headers:
            hop_headers["Accept-Encoding"] = decoding.ACCEPT_ENCODING
        body: dict[str, Any] = {"content": content, "data": data, "files": files, "json": json}
        async with httpx.AsyncClient(
            transport=pinned_transport(backend, self._ssl_context(verify)),
            trust_env=False,
            follow_redirects=False,
            timeout=timeout,
        ) as client:
            for hop in range(self.max_redirects + 1):
                try:
                    request = client.build_request(
                        method,
                        hop_url,
                        params=list(params) if params and hop == 0 else None,
                        headers=hop_headers,
                        **body,
                    )
                except httpx.InvalidURL as exc:
                    raise InvalidURL(str(hop_url), str(exc)) from None
                except (TypeError, ValueError) as exc:
                    raise InvalidRequest(f"The request to '{hop_url}' cannot be sent: {exc}") from None
                host, port, addresses = await self.vet(request.url, timeout.connect)
                backend.pin(host, port, addresses)
                response = await self._send(client, request)
                location = response.headers.get("location")
                if not (follow_redirects and response.status_code in REDIRECT_STATUSES and location):
                    try:
                        yield GuardedResponse(response, str(request.url), max_bytes, method)
                    finally:
                        await response.aclose()
                    return
                await response.aclose()
                if hop == self.max_redirects:
                    raise TooManyRedirects(
                        f"Exceeded the maximum of {self.max_redirects} redirects ('{url}')"
                    )
                try:
                    next_url = self.parse(request.url.join(location))
                except (httpx.InvalidURL, ValueError) as exc:
                    raise InvalidURL(location, str(exc)) from None
                except InvalidURL as exc:
                    raise InvalidURL(location, exc.reason) from None
                # A Host header the caller set is for the first hop only; credentials stay with their host.
                dropped = {"host"} | (secret | {"cookie"} if next_url.host != request.url.host else set())
                for name in [name for name in hop_headers.keys() if name in dropped]:
                    del hop_headers[name]
                if (response.status_code == 303 and method.upper() != "HEAD") or (
                    response.status_code in (301, 302) and method.upper() == "POST"
                ):
                    method = "GET"
                    body = {"content": None, "data": None, "files": None, "json": None}
                    for name in BODY_HEADERS:
                        hop_headers.pop(name, None)
                log.info("http_redirect", status=response.status_code, to=str(next_url))
                hop_url = next_url

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        shown = str(request.url)
        try:
            return await client.send(request, stream=True)
        except NetError:
            raise
        except httpx.TimeoutException as exc:
            kind = "Connecting to" if isinstance(exc, httpx.ConnectTimeout) else "Waiting for"
            raise UpstreamTimeout(f"{kind} '{shown}' timed out") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise UpstreamError(_describe(exc, shown)) from exc

    async def request(self, method: str, url: str, *, max_bytes: int, **options: Any) -> Fetched:
        """Send a request and read its whole body (at most ``max_bytes`` decoded bytes)."""
        async with self.stream(method, url, max_bytes=max_bytes, **options) as response:
            content = await response.read()
            return Fetched(response.url, response.status_code, response.headers, content)
