"""The http-request node's request: its DSL config, templated into what is sent and into what is shown.

Dify's order and rules (graphon 0.1.2 ``Executor``): the API key is templated first (empty → error), then the
URL (must start with ``http://``/``https://``), the params (split into lines first, then key and value
templated, so a variable cannot add a param), the headers (the whole string templated first, then split, so a
variable holding a newline DOES add a header — Dify's behaviour, kept), then the body by type. ``render_log``
is ``process_data.request``: the request as raw HTTP/1.1 text with the auth header's value masked by ``*``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import string
from collections.abc import Mapping
from typing import Any, Literal, TypeGuard
from urllib.parse import urlencode, urlparse

import msgspec
from json_repair import repair_json

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import NodeContext

BODY_CONTENT_TYPES = {
    "json": "application/json",
    "x-www-form-urlencoded": "application/x-www-form-urlencoded",
    "form-data": "multipart/form-data",
    "raw-text": "text/plain",
}
FILE_IDENTITY = "__dify__file__"
PLACEHOLDER_PART = ("__multipart_placeholder__", ("", b"", "application/octet-stream"))


class AuthConfig(msgspec.Struct, kw_only=True):
    type: Literal["basic", "bearer", "custom"]
    api_key: str
    header: str = ""


class Authorization(msgspec.Struct, kw_only=True):
    type: Literal["no-auth", "api-key"] = "no-auth"
    config: AuthConfig | None = None


class BodyItem(msgspec.Struct, kw_only=True):
    key: str = ""
    type: Literal["file", "text"] = "text"
    value: str = ""
    file: list[str] = msgspec.field(default_factory=list)


class Body(msgspec.Struct, kw_only=True):
    type: Literal["none", "form-data", "x-www-form-urlencoded", "raw-text", "json", "binary"]
    data: list[BodyItem] = msgspec.field(default_factory=list)


class Timeout(msgspec.Struct, kw_only=True):
    connect: float | None = None
    read: float | None = None
    write: float | None = None


class HttpRequestConfig(msgspec.Struct, kw_only=True):
    method: str
    url: str
    authorization: Authorization = msgspec.field(default_factory=Authorization)
    headers: str = ""
    params: str = ""
    body: Body | None = None
    timeout: Timeout | None = None
    ssl_verify: bool | None = None


class OutgoingRequest(msgspec.Struct, kw_only=True):
    """One request as the node wants it sent (the arguments Dify hands to httpx)."""

    method: str
    url: str
    params: list[tuple[str, str]] | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    content: bytes | str | None = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str | None, bytes, str]]] | None = None
    json: Any = None  # None: no JSON body (Dify passes ``json=None`` for a body of ``null`` too)
    timeout: tuple[float, float, float] = (10.0, 600.0, 600.0)  # connect, read, write
    verify: bool = True
    #: headers holding credentials, dropped when a redirect leaves the host
    secret_headers: tuple[str, ...] = ()
    #: the port stops reading the decoded body past this many bytes
    max_bytes: int | None = None


def normalise(data: Mapping[str, Any]) -> dict[str, Any]:
    """Dify's lenient spellings: config dropped for no-auth, a legacy string body, null strings, UI timeouts."""
    out = {k: data.get(k) for k in ("method", "url", "authorization", "headers", "params", "body")}
    out = {k: v for k, v in out.items() if v is not None}
    auth = data.get("authorization")
    if isinstance(auth, Mapping):
        auth = dict(auth)
        if auth.get("type", "no-auth") == "no-auth":
            auth["config"] = None
        out["authorization"] = auth
    body = data.get("body")
    if isinstance(body, Mapping):
        body = dict(body)
        items = body.get("data")
        if not items:
            body["data"] = []
        elif isinstance(items, str):
            body["data"] = [{"key": "", "type": "text", "value": items}]
        elif isinstance(items, list):
            body["data"] = [
                {k: v for k, v in item.items() if v is not None} if isinstance(item, Mapping) else item
                for item in items
            ]
        out["body"] = body
    timeout = data.get("timeout")
    if isinstance(timeout, Mapping):
        out["timeout"] = {k: timeout.get(k) for k in ("connect", "read", "write")}
    if isinstance(data.get("ssl_verify"), bool):
        out["ssl_verify"] = data["ssl_verify"]
    return out


def parse_json(text: str) -> Any:
    """Dify's JSON body parsing: repair (trailing commas, single quotes, ``True``, bare keys...), then parse
    leniently (control characters allowed)."""
    return json.loads(repair_json(text), strict=False)


def is_file(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and value.get("dify_model_identity") == FILE_IDENTITY


def parse_headers(text: str) -> dict[str, str]:
    """``Key: value`` lines; a line without ``:`` gives an empty value; the last of a repeated key wins."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        if key.strip():
            headers[key.strip()] = value.strip()
    return headers


class Assembled(msgspec.Struct, kw_only=True):
    request: OutgoingRequest
    log: str


class _Builder:
    def __init__(self, config: HttpRequestConfig, ctx: NodeContext, max_file_size: int) -> None:
        self.config, self.ctx, self.max_file_size = config, ctx, max_file_size
        self.render = ctx.pool.render
        self.auth_header = ""
        self.auth_value = ""
        self.user_headers: dict[str, str] = {}
        self.params: list[tuple[str, str]] | None = None
        self.content: bytes | str | None = None
        self.data: dict[str, str] | None = None
        self.files: list[tuple[str, tuple[str | None, bytes, str]]] | None = None
        self.json: Any = None

    # --- templating, in Dify's order ------------------------------------------------------------

    def authorization(self) -> None:
        auth = self.config.authorization
        if auth.type != "api-key":
            return
        if auth.config is None:
            raise NodeRunError("authorization config is required", "AuthorizationConfigError")
        key = self.render(auth.config.api_key)
        if not key.strip():
            raise NodeRunError(
                "API key is required for authorization but was empty. Please provide a valid API key.",
                "AuthorizationConfigError",
            )
        self.auth_header = auth.config.header or "Authorization"
        if auth.config.type == "bearer":
            self.auth_value = f"Bearer {key}"
        elif auth.config.type == "basic":
            encoded = base64.b64encode(key.encode()).decode() if ":" in key else key
            self.auth_value = f"Basic {encoded}"
        else:
            self.auth_value = key

    def url(self) -> str:
        url = self.render(self.config.url)
        if not url:
            raise NodeRunError("url is required", "InvalidURLError")
        if not url.startswith(("http://", "https://")):
            raise NodeRunError("url should start with http:// or https://", "InvalidURLError")
        return url

    def parse_params(self) -> None:
        params = []
        for line in self.config.params.splitlines():
            line = line.strip()
            if not line:
                continue
            key, _, value = line.partition(":")
            if key.strip():
                params.append((self.render(key.strip()), self.render(value.strip())))
        self.params = params or None

    async def body(self) -> None:
        body = self.config.body
        if body is None:
            return
        items = body.data
        if body.type == "none":
            self.content = ""
        elif body.type == "raw-text":
            self.content = self.render(self._single(items, "raw-text").value)
        elif body.type == "json":
            text = self.render(self._single(items, "json").value)
            try:
                # json_repair is pure Python (~1.7 s for a broken 1 MB text): keep it off the event loop
                self.json = await asyncio.to_thread(parse_json, text)
            except (json.JSONDecodeError, ValueError, RecursionError):
                raise NodeRunError(f"Failed to parse JSON: {text}", "RequestBodyError") from None
        elif body.type == "x-www-form-urlencoded":
            self.data = {self.render(item.key): self.render(item.value) for item in items}
        elif body.type == "form-data":
            self.data = {self.render(i.key): self.render(i.value) for i in items if i.type == "text"}
            selectors = {self.render(i.key): i.file for i in items if i.type == "file"}
            files = []
            for key, selector in selectors.items():
                value = self.ctx.pool.get(selector) if selector else None
                for file in value if isinstance(value, list) else [value]:
                    if is_file(file):
                        files.append((key, await self._part(file)))
            self.files = files or [PLACEHOLDER_PART]
        else:  # binary
            selector = self._single(items, "binary").file
            file = self.ctx.pool.get(selector) if selector else None
            if not is_file(file):
                raise NodeRunError(f"cannot fetch file with selector {selector}", "FileFetchError")
            self.content = await self._read(file)

    @staticmethod
    def _single(items: list[BodyItem], kind: str) -> BodyItem:
        if len(items) != 1:
            raise NodeRunError(f"{kind} body type should have exactly one item", "RequestBodyError")
        return items[0]

    async def _read(self, file: Mapping[str, Any]) -> bytes:
        files = self.ctx.ports.files
        if files is None:
            raise NodeRunError("cannot read files: no file storage is configured", "FileFetchError")
        try:
            content: bytes = await files.read(self.ctx.run, file, max_bytes=self.max_file_size)
        except NodeRunError:
            raise
        except Exception as exc:  # a missing or oversized file fails the node readably
            raise NodeRunError(
                f"cannot fetch file {file.get('filename')!r}: {exc}", "FileFetchError"
            ) from None
        return content

    async def _part(self, file: Mapping[str, Any]) -> tuple[str | None, bytes, str]:
        return (
            file.get("filename"),
            await self._read(file),
            file.get("mime_type") or "application/octet-stream",
        )

    # --- headers as sent and as shown -----------------------------------------------------------

    def headers(self, source: Mapping[str, str]) -> dict[str, str]:
        """Dify's ``_assembling_headers``: user headers, the auth header, then the body's Content-Type."""
        headers = dict(source)
        if self.auth_header:
            headers[self.auth_header] = self.auth_value
        body = self.config.body
        has_type = "content-type" in (k.lower() for k in headers)
        if body is not None and body.type == "form-data":
            # httpx writes the multipart Content-Type with its boundary: a user's one would break it
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        elif body is not None and body.type in BODY_CONTENT_TYPES and not has_type:
            headers["Content-Type"] = BODY_CONTENT_TYPES[body.type]
        return headers

    def log(self, method: str, url: str) -> str:
        parts = urlparse(url)
        path = parts.path or "/"
        if self.params:
            path += f"?{urlencode(self.params)}"
        elif parts.query:
            path += f"?{parts.query}"
        raw = f"{method.upper()} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        headers = self.headers(self.user_headers)
        body = self.config.body
        boundary = (
            f"----WebKitFormBoundary{''.join(secrets.choice(string.ascii_lowercase) for _ in range(16))}"
        )
        if body is not None:
            if (
                "content-type" not in (k.lower() for k in self.user_headers)
                and body.type in BODY_CONTENT_TYPES
            ):
                headers["Content-Type"] = BODY_CONTENT_TYPES[body.type]
            if body.type == "form-data":
                headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        for key, value in headers.items():
            if self.auth_header and key.lower() == self.auth_header.lower():
                value = "*" * len(value)
            raw += f"{key}: {value}\r\n"
        text = self._log_body(boundary)
        if text:
            raw += f"Content-Length: {len(text)}\r\n"
        return raw + "\r\n" + text

    def _log_body(self, boundary: str) -> str:
        body = self.config.body
        if self.files and any(key != PLACEHOLDER_PART[0] for key, _ in self.files):
            text = ""
            for key, (filename, content, mime_type) in self.files:
                text += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                text += f"<file_content_binary: '{filename or 'unknown'}', type='{mime_type}', size={len(content)} bytes>\r\n"
            return text + f"--{boundary}--\r\n"
        if body is None:
            return ""
        if self.content:
            if isinstance(self.content, bytes):
                return f"<binary_content: size={len(self.content)} bytes>"
            return self.content
        if self.data and body.type == "x-www-form-urlencoded":
            return urlencode(self.data)
        if self.data and body.type == "form-data":
            text = "".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
                for key, value in self.data.items()
            )
            return text + f"--{boundary}--\r\n"
        if self.json:
            return json.dumps(self.json)
        if body.type == "raw-text":
            return body.data[0].value  # Dify shows the untemplated value when the rendered one is empty
        return ""


async def assemble(
    config: HttpRequestConfig,
    ctx: NodeContext,
    *,
    timeout: tuple[float, float, float],
    verify: bool,
    max_file_size: int,
) -> Assembled:
    """Template the node's request from the pool (raises ``NodeRunError`` as Dify's executor does)."""
    builder = _Builder(config, ctx, max_file_size)
    builder.authorization()
    url = builder.url()
    builder.parse_params()
    builder.user_headers = parse_headers(builder.render(config.headers))
    await builder.body()
    request = OutgoingRequest(
        method=config.method,
        url=url,
        params=builder.params,
        headers=builder.headers(builder.user_headers),
        content=builder.content,
        data=builder.data,
        files=builder.files,
        json=builder.json,
        timeout=timeout,
        verify=verify,
        secret_headers=(builder.auth_header,) if builder.auth_header else (),
    )
    return Assembled(request=request, log=builder.log(config.method, url))
