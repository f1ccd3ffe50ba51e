"""A real HTTP(S) server on a loopback address, for tests of outbound requests (the guarded client, http nodes).

It records every request it receives (so a test can prove that nothing arrived) and answers from routes:
built-in ones (``/echo``, ``/status/<n>``, ``/redirect``, ``/stream``, ``/gzip-bomb``) and any a test adds
with ``route``. Bodies may be iterables, sent chunked, so a test can serve gigabytes without holding them;
``sent`` counts what actually went out before the client hung up.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec


class Received(msgspec.Struct):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes
    peer: str

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


class Reply(msgspec.Struct):
    status: int = 200
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    body: bytes | Iterable[bytes] = b""


Handler = Callable[[Received], Reply]


def zeros(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    block = b"\0" * chunk
    while total > 0:
        yield block[: min(chunk, total)]
        total -= chunk


def gzip_stream(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """``total`` zero bytes, gzip-compressed on the fly (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * chunk
    while total > 0:
        out = compressor.compress(block[: min(chunk, total)])
        total -= chunk
        if out:
            yield out
    yield compressor.flush()


class HttpTarget:
    def __init__(
        self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        self.host, self._port = host, port
        self.requests: list[Received] = []
        self.routes: dict[str, Handler] = {}
        self.sent = 0
        self.ssl_context = ssl_context
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> HttpTarget:
        target = self

        class _Handler(_RequestHandler):
            owner = target

        server = _Server((self.host, self._port), _Handler)
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HttpTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str = "/echo", host: str | None = None) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def reset(self) -> None:
        self.requests.clear()
        self.sent = 0

    # --- built-in routes --------------------------------------------------------------------------

    def answer(self, request: Received) -> Reply:
        path = request.path
        if path in self.routes:
            return self.routes[path](request)
        query = {k: v[-1] for k, v in request.query.items()}
        if path == "/echo":
            return Reply(
                200,
                [("Content-Type", "application/json")],
                json.dumps(
                    {
                        "method": request.method,
                        "path": path,
                        "query": request.query,
                        "headers": request.headers,
                        "body": request.body.decode("utf-8", "replace"),
                        "body_b64": base64.b64encode(request.body).decode(),
                    }
                ).encode(),
            )
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            return Reply(
                status, [("Content-Type", "text/plain")], query.get("body", f"status {status}").encode()
            )
        if path == "/redirect":
            return Reply(int(query.get("code", "302")), [("Location", query["to"])], b"")
        if path == "/stream":
            return Reply(200, [("Content-Type", "text/plain")], zeros(int(query["size"])))
        if path == "/gzip-bomb":
            return Reply(
                200,
                [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
                gzip_stream(int(query["size"])),
            )
        return Reply(404, [("Content-Type", "text/plain")], b"no such route")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (the point of several tests) are not errors worth a traceback."""


class _RequestHandler(BaseHTTPRequestHandler):
    owner: HttpTarget
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        received = Received(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=self._body(),
            peer=self.client_address[0],
        )
        self.owner.requests.append(received)
        reply = self.owner.answer(received)
        self.send_response(reply.status)
        names = {k.lower() for k, _ in reply.headers}
        for key, value in reply.headers:
            self.send_header(key, value)
        if isinstance(reply.body, bytes):
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
                self.owner.sent += len(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in reply.body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.owner.sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
