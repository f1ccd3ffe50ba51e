"""A real OpenAI-compatible HTTP server for tests: chat completions (JSON and SSE) and embeddings on loopback.

It runs a Litestar app under uvicorn in a background thread, so sync and async tests can both use it. A chat
reply echoes the last user message (``echo: <text>``) unless a test scripted the next calls with
``queue_reply`` / ``queue_error`` / ``queue_raw``; every request received is kept in ``requests``.
Streamed replies send one chunk per word (with its trailing whitespace), so tests can check chunk order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, post
from litestar.response import Response, Stream

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
DEFAULT_DIMENSIONS = 16
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}


class RecordedRequest(msgspec.Struct):
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class Scripted(msgspec.Struct, kw_only=True):
    """What the server does for one call to ``path`` (any path when None); the default is an echo."""

    path: str | None = None
    text: str | None = None
    chunks: list[str] | None = None
    status: int = 200
    message: str = ""
    delay: float = 0.0
    chunk_delay: float = 0.0
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    raw: str | None = None
    media_type: str | None = None


def embed(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's embedding of ``text``: a deterministic unit vector derived from SHA-256 of the text."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(n / 2**31 - 1.0 for n in struct.unpack(">8I", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def message_text(content: Any) -> str:
    """The text of a chat message's content (a string or a list of ``{type: text, text}`` parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def count_tokens(text: str) -> int:
    return len(text.split())


def split_chunks(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def error_response(status: int, message: str) -> Response[Any]:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": None}}
    headers = {"retry-after": "0"} if status == 429 else None
    return Response(body, status_code=status, headers=headers, media_type="application/json")


class FakeOpenAI:
    """The server and its script. ``start()`` binds a free loopback port; ``stop()`` shuts it down."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._script: list[Scripted] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- scripting --------------------------------------------------------------------------------

    def queue_reply(
        self,
        text: str | None = None,
        *,
        times: int = 1,
        chunks: list[str] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        finish_reason: str = "stop",
        usage: dict[str, int] | None = None,
    ) -> None:
        """The next ``times`` chat calls answer ``text`` (None: the echo), after ``delay`` seconds."""
        self._queue(
            times,
            Scripted(
                path=CHAT_PATH,
                text=text,
                chunks=chunks,
                delay=delay,
                chunk_delay=chunk_delay,
                finish_reason=finish_reason,
                usage=usage,
            ),
        )

    def queue_error(
        self,
        status: int,
        message: str | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        path: str | None = None,
    ) -> None:
        """The next ``times`` calls (to ``path``, or to any endpoint) fail with HTTP ``status``."""
        text = message or f"fake error {status}"
        self._queue(times, Scripted(path=path, status=status, message=text, delay=delay))

    def queue_raw(
        self, body: str, *, times: int = 1, path: str = CHAT_PATH, media_type: str | None = None
    ) -> None:
        """The next ``times`` calls to ``path`` answer ``body`` verbatim with HTTP 200 (malformed replies).

        The content type is ``media_type``, else SSE for a streamed chat request and JSON otherwise.
        """
        self._queue(times, Scripted(path=path, raw=body, media_type=media_type))

    def queue_delay(self, delay: float, *, times: int = 1, path: str = EMBEDDINGS_PATH) -> None:
        """The next ``times`` calls to ``path`` answer as usual, but only after ``delay`` seconds."""
        self._queue(times, Scripted(path=path, delay=delay))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def bodies(self, path: str = CHAT_PATH) -> list[dict[str, Any]]:
        """The JSON bodies received on ``path``, oldest first."""
        return [r.body for r in list(self.requests) if r.path == path]

    def _queue(self, times: int, item: Scripted) -> None:
        with self._lock:
            self._script.extend(msgspec.structs.replace(item) for _ in range(times))

    def _next(self, path: str) -> Scripted:
        with self._lock:
            for i, item in enumerate(self._script):
                if item.path in (None, path):
                    return self._script.pop(i)
        return Scripted(path=path)

    async def _record(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.json()
        body = body if isinstance(body, dict) else {"_": body}
        with self._lock:
            self.requests.append(RecordedRequest(request.url.path, body, dict(request.headers)))
        return body

    # --- endpoints --------------------------------------------------------------------------------

    async def chat(self, request: Request[Any, Any, Any]) -> Response[Any]:
        body = await self._record(request)
        step = self._next(CHAT_PATH)
        await asyncio.sleep(step.delay)
        if step.status >= 400:
            return error_response(step.status, step.message)
        stream = bool(body.get("stream"))
        if step.raw is not None:
            media_type = step.media_type or ("text/event-stream" if stream else "application/json")
            return Response(step.raw, media_type=media_type)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not body.get("model"):
            return error_response(400, "'model' and a non-empty 'messages' are required")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = (
            step.text
            if step.text is not None
            else f"echo: {message_text(users[-1]['content'] if users else '')}"
        )
        chunks = step.chunks if step.chunks is not None else split_chunks(text)
        prompt_tokens = sum(
            count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = step.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(chunks),
            "total_tokens": prompt_tokens + len(chunks),
        }
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body["model"],
        }
        if not stream:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(chunks)},
                "finish_reason": step.finish_reason,
            }
            return Response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = self._events(head, chunks, step, usage if include_usage else None)
        return Stream(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def _events(
        self, head: dict[str, Any], chunks: list[str], step: Scripted, usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
            if usage is not None:
                chunk.setdefault("usage", None)
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event({"role": "assistant", "content": ""})
        for piece in chunks:
            await asyncio.sleep(step.chunk_delay)
            yield event({"content": piece})
        yield event({}, step.finish_reason)
        if usage is not None:
            final = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            yield f"data: {json.dumps(final)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    async def embeddings(self, request: Request[Any, Any, Any]) -> Response[Any]:
        body = await self._record(request)
        step = self._next(EMBEDDINGS_PATH)
        await asyncio.sleep(step.delay)
        if step.status >= 400:
            return error_response(step.status, step.message)
        if step.raw is not None:
            return Response(step.raw, media_type=step.media_type or "application/json")
        raw_input = body.get("input")
        texts = [raw_input] if isinstance(raw_input, str) else raw_input
        dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
        if not isinstance(texts, list) or not texts or not isinstance(dimensions, int) or dimensions < 1:
            return error_response(400, "'input' must be a string or a non-empty list; 'dimensions' >= 1")
        data = [
            {"object": "embedding", "index": i, "embedding": embed(str(t), dimensions)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(count_tokens(str(t)) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response({"object": "list", "data": data, "model": body.get("model", ""), "usage": usage})

    # --- serving ----------------------------------------------------------------------------------

    def app(self) -> Litestar:
        app = Litestar(route_handlers=[_chat, _embeddings], openapi_config=None, logging_config=None)
        app.state.fake = self
        return app

    def start(self, timeout: float = 10.0) -> FakeOpenAI:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app(),
            loop="asyncio",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@post(CHAT_PATH, status_code=200)
async def _chat(request: Request[Any, Any, Any]) -> Response[Any]:
    fake: FakeOpenAI = request.app.state.fake
    return await fake.chat(request)


@post(EMBEDDINGS_PATH, status_code=200)
async def _embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    fake: FakeOpenAI = request.app.state.fake
    return await fake.embeddings(request)
