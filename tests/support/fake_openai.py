"""A real OpenAI-compatible HTTP server for tests: chat completions (JSON and SSE) and embeddings on loopback.

It runs a Litestar app under uvicorn in a background thread, so sync and async tests can both use it. A chat
reply is, in this order: the next call a test scripted (``queue_reply`` / ``queue_error`` / ``queue_raw``),
else the first matching *rule* (``add_rule``: "when the last user message contains X, answer Y"; rules can
also be loaded from a JSON file, so DSLs can be run against it by hand), else an echo of the last user
message (``echo: <text>``). Every request received is kept in ``requests``.

Replies may carry tool calls (``tool_calls=[{"name": ..., "arguments": {...} or "raw text"}]``): sent as
``message.tool_calls``, or streamed as OpenAI does (the first delta of a call carries ``index``, ``id``,
``type`` and the name; later deltas only ``index`` and a piece of the arguments). A call without a name takes
the name of the first tool the request offered; when a request offers no tools, a reply without text answers
with the first call's arguments as its text instead (so one rule serves both modes of a parameter extractor).
The server refuses what OpenAI refuses: malformed ``tools``, and a ``tool`` message that answers no earlier
assistant tool call. Streamed replies send one chunk per word (with its trailing whitespace), so tests can
check chunk order.

It also serves ``GET /models`` (``fake.models``), ``POST /audio/transcriptions`` (multipart ``file``, ``model``:
answers ``{"text": "transcript of <file name> (<n> bytes)"}``) and ``POST /audio/speech`` (JSON ``model``,
``input``, ``voice``: answers ``audio/mpeg`` bytes that start with ``ID3`` and carry the input); ``queue_error``
and ``queue_raw`` with ``path=`` script them like the others.

A model's pace can be set for every streamed reply: ``first_token_delay`` (seconds before the first content chunk)
and ``token_interval`` (between chunks), as ``just bench chat`` does.

Run it on its own: ``python -m tests.support.fake_openai --port 8999 --rules rules.json`` (rules: a JSON list
of ``{"contains": ..., "text": ..., "tool_calls": [...], "where": "last_user" | "any", "times": n}``;
``--first-token-ms`` and ``--token-interval-ms`` set the pace).
"""

from __future__ import annotations

import argparse
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
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import uvicorn
from litestar import Litestar, Request, get, post
from litestar.response import Response, Stream

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
SPEECH_PATH = "/v1/audio/speech"
#: What ``GET /models`` lists unless a test sets ``fake.models``.
DEFAULT_MODELS = ("fake-chat", "text-embedding-3-small", "whisper-1", "tts-1")
DEFAULT_DIMENSIONS = 16
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}
#: Streamed tool-call arguments are sent in pieces of this many characters.
ARGUMENT_PIECE = 8


class RecordedRequest(msgspec.Struct):
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    #: the caller's address and port (one connection kept open between calls keeps its port)
    peer: str = ""


class Scripted(msgspec.Struct, kw_only=True):
    """What the server does for one call to ``path`` (any path when None); the default is an echo."""

    path: str | None = None
    text: str | None = None
    chunks: list[str] | None = None
    status: int = 200
    message: str = ""
    delay: float = 0.0
    chunk_delay: float = 0.0
    finish_reason: str = ""  # empty: "tool_calls" when calls are sent, else "stop"
    usage: dict[str, int] | None = None
    raw: str | None = None
    media_type: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class Rule(msgspec.Struct, kw_only=True):
    """A canned answer: when ``contains`` is in the last user message (``where="any"``: in any message),
    answer ``text`` and/or ``tool_calls``; ``times`` (None: forever) limits how often it applies."""

    contains: str
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    where: Literal["last_user", "any"] = "last_user"
    times: int | None = None
    usage: dict[str, int] | None = None


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


def tool_call(spec: dict[str, Any], tools: Sequence[Any], index: int) -> dict[str, Any]:
    """A scripted call in OpenAI's shape; no name means the first offered tool's; dict arguments become JSON."""
    name = spec.get("name") or next(
        (t["function"]["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)),
        "",
    )
    arguments = spec.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    call_id = spec.get("id") or f"call_{uuid.uuid4().hex[:8]}_{index}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def argument_pieces(arguments: str) -> list[str]:
    return [arguments[i : i + ARGUMENT_PIECE] for i in range(0, len(arguments), ARGUMENT_PIECE)] or [""]


def chat_request_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would refuse about a chat request's tools and tool messages (None: nothing)."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "'tools' must be a non-empty list"
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
                return "each tool needs type 'function' and a function with a name"
            if "parameters" in function and not isinstance(function["parameters"], dict):
                return "a function's parameters must be a JSON schema object"
    called: set[str] = set()
    for message in body["messages"]:
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            return "every message needs a role of system, user, assistant or tool"
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                return "an assistant tool call needs a function with string arguments"
            called.add(str(call.get("id")))
        if message["role"] == "tool" and message.get("tool_call_id") not in called:
            return "messages with role 'tool' must be a response to a preceding message with 'tool_calls'"
    return None


def error_response(status: int, message: str) -> Response[Any]:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": None}}
    headers = {"retry-after": "0"} if status == 429 else None
    return Response(body, status_code=status, headers=headers, media_type="application/json")


class FakeOpenAI:
    """The server and its script. ``start()`` binds a free loopback port; ``stop()`` shuts it down."""

    def __init__(
        self, host: str = "127.0.0.1", *, first_token_delay: float = 0.0, token_interval: float = 0.0
    ) -> None:
        self.host = host
        #: Streamed replies (unless a scripted call sets its own ``chunk_delay``): seconds between the role
        #: chunk and the first content chunk, and between content chunks (a model's latency, for benchmarks).
        self.first_token_delay = first_token_delay
        self.token_interval = token_interval
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._script: list[Scripted] = []
        self.rules: list[Rule] = []
        self.models: list[str] = list(DEFAULT_MODELS)
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
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """The next ``times`` chat calls answer ``text`` (None: the echo, or no text beside ``tool_calls``),
        after ``delay`` seconds. ``finish_reason`` defaults to ``tool_calls`` when calls are sent, else ``stop``."""
        self._queue(
            times,
            Scripted(
                path=CHAT_PATH,
                text=text,
                chunks=chunks,
                delay=delay,
                chunk_delay=chunk_delay,
                finish_reason=finish_reason or "",
                usage=usage,
                tool_calls=tool_calls,
            ),
        )

    def add_rule(
        self,
        contains: str,
        text: str | None = None,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        where: Literal["last_user", "any"] = "last_user",
        times: int | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        """From now on, chat calls whose last user message contains ``contains`` (and that nothing scripted
        answers) get ``text`` and/or ``tool_calls``. Rules are tried in the order they were added."""
        rule = Rule(
            contains=contains, text=text, tool_calls=tool_calls, where=where, times=times, usage=usage
        )
        with self._lock:
            self.rules.append(rule)

    def load_rules(self, path: str | Path) -> None:
        """Add the rules of a JSON file (a list of ``Rule`` objects)."""
        rules = msgspec.json.decode(Path(path).read_bytes(), type=list[Rule])
        with self._lock:
            self.rules.extend(rules)

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
            self.rules.clear()
            self.requests.clear()

    def bodies(self, path: str = CHAT_PATH, *, unless: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received on ``path``, oldest first; ``unless``: leave out those whose first message
        starts with it (a background call such as a conversation's naming may land between a test's calls)."""
        bodies = [r.body for r in list(self.requests) if r.path == path]
        if unless is None:
            return bodies
        return [
            b for b in bodies if not str((b.get("messages") or [{}])[0].get("content", "")).startswith(unless)
        ]

    def _queue(self, times: int, item: Scripted) -> None:
        with self._lock:
            self._script.extend(msgspec.structs.replace(item) for _ in range(times))

    def _next(self, path: str) -> Scripted:
        return self._scripted(path) or Scripted(path=path)

    def _scripted(self, path: str) -> Scripted | None:
        with self._lock:
            for i, item in enumerate(self._script):
                if item.path in (None, path):
                    return self._script.pop(i)
        return None

    def _rule_for(self, messages: list[Any]) -> Rule | None:
        texts = [message_text(m.get("content")) for m in messages if isinstance(m, dict)]
        users = [
            message_text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        with self._lock:
            for rule in self.rules:
                haystack = texts if rule.where == "any" else users[-1:]
                if rule.times != 0 and any(rule.contains in text for text in haystack):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    async def _record(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.json()
        body = body if isinstance(body, dict) else {"_": body}
        with self._lock:
            client = request.client
            peer = f"{client.host}:{client.port}" if client else ""
            self.requests.append(RecordedRequest(request.url.path, body, dict(request.headers), peer))
        return body

    # --- endpoints --------------------------------------------------------------------------------

    async def chat(self, request: Request[Any, Any, Any]) -> Response[Any]:
        body = await self._record(request)
        step = self._scripted(CHAT_PATH)
        await asyncio.sleep(step.delay if step else 0.0)
        if step is not None and step.status >= 400:
            return error_response(step.status, step.message)
        stream = bool(body.get("stream"))
        if step is not None and step.raw is not None:
            media_type = step.media_type or ("text/event-stream" if stream else "application/json")
            return Response(step.raw, media_type=media_type)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not body.get("model"):
            return error_response(400, "'model' and a non-empty 'messages' are required")
        problem = chat_request_problem(body)
        if problem:
            return error_response(400, problem)
        if step is None:
            rule = self._rule_for(messages)
            step = Scripted(path=CHAT_PATH)
            if rule is not None:
                step = Scripted(path=CHAT_PATH, text=rule.text, tool_calls=rule.tool_calls, usage=rule.usage)
        tools = body.get("tools") or []
        calls = [tool_call(c, tools, i) for i, c in enumerate(step.tool_calls or [])]
        text = step.text
        if calls and not tools:  # nothing to call: the arguments become the answer
            text = text if text is not None else calls[0]["function"]["arguments"]
            calls = []
        if text is None and not calls:
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            text = f"echo: {message_text(users[-1]['content'] if users else '')}"
        chunks = step.chunks if step.chunks is not None else split_chunks(text or "")
        pieces = [argument_pieces(c["function"]["arguments"]) for c in calls]
        finish_reason = step.finish_reason or ("tool_calls" if calls else "stop")
        prompt_tokens = sum(
            count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        completion_tokens = len(chunks) + sum(len(p) for p in pieces)
        usage = step.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body["model"],
        }
        if not stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(chunks) if chunks or not calls else None,
            }
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish_reason}
            return Response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = self._events(
            head, chunks, calls, pieces, step, finish_reason, usage if include_usage else None
        )
        return Stream(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def _events(
        self,
        head: dict[str, Any],
        chunks: list[str],
        calls: list[dict[str, Any]],
        pieces: list[list[str]],
        step: Scripted,
        finish_reason: str,
        usage: dict[str, int] | None,
    ) -> AsyncIterator[bytes]:
        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
            if usage is not None:
                chunk.setdefault("usage", None)
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event({"role": "assistant", "content": ""})
        interval = step.chunk_delay or self.token_interval
        for i, piece in enumerate(chunks):
            await asyncio.sleep(self.first_token_delay if i == 0 and self.first_token_delay else interval)
            yield event({"content": piece})
        for index, (call, parts) in enumerate(zip(calls, pieces, strict=True)):
            opening = {"index": index, "id": call["id"], "type": "function"}
            yield event(
                {"tool_calls": [{**opening, "function": {"name": call["function"]["name"], "arguments": ""}}]}
            )
            for part in parts:
                await asyncio.sleep(step.chunk_delay)
                yield event({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield event({}, finish_reason)
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

    async def list_models(self, request: Request[Any, Any, Any]) -> Response[Any]:
        with self._lock:
            self.requests.append(RecordedRequest(request.url.path, {}, dict(request.headers)))
        step = self._next(MODELS_PATH)
        await asyncio.sleep(step.delay)
        if step.status >= 400:
            return error_response(step.status, step.message)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return Response({"object": "list", "data": data})

    async def transcriptions(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        upload, model = form.get("file"), form.get("model")
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.url.path,
                    {"model": model, "file": getattr(upload, "filename", None)},
                    dict(request.headers),
                )
            )
        step = self._next(TRANSCRIPTIONS_PATH)
        await asyncio.sleep(step.delay)
        if step.status >= 400:
            return error_response(step.status, step.message)
        if step.raw is not None:
            return Response(step.raw, media_type=step.media_type or "application/json")
        if upload is None or not model:
            return error_response(400, "'file' and 'model' are required")
        data = await upload.read()
        return Response({"text": f"transcript of {upload.filename} ({len(data)} bytes)"})

    async def speech(self, request: Request[Any, Any, Any]) -> Response[Any]:
        body = await self._record(request)
        step = self._next(SPEECH_PATH)
        await asyncio.sleep(step.delay)
        if step.status >= 400:
            return error_response(step.status, step.message)
        if not body.get("input") or not body.get("model") or not body.get("voice"):
            return error_response(400, "'model', 'input' and 'voice' are required")
        audio = b"ID3" + f"|{body['voice']}|{body['input']}".encode()
        return Response(audio, media_type="audio/mpeg")

    # --- serving ----------------------------------------------------------------------------------

    def app(self) -> Litestar:
        app = Litestar(
            route_handlers=[_chat, _embeddings, _models, _transcriptions, _speech],
            openapi_config=None,
            logging_config=None,
        )
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


@get(MODELS_PATH)
async def _models(request: Request[Any, Any, Any]) -> Response[Any]:
    fake: FakeOpenAI = request.app.state.fake
    return await fake.list_models(request)


@post(TRANSCRIPTIONS_PATH, status_code=200, request_max_body_size=64 * 1024 * 1024)
async def _transcriptions(request: Request[Any, Any, Any]) -> Response[Any]:
    fake: FakeOpenAI = request.app.state.fake
    return await fake.transcriptions(request)


@post(SPEECH_PATH, status_code=200)
async def _speech(request: Request[Any, Any, Any]) -> Response[Any]:
    fake: FakeOpenAI = request.app.state.fake
    return await fake.speech(request)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake on a fixed port until interrupted (for running DSLs against it by hand)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_openai", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--rules", help="a JSON file with a list of rules")
    parser.add_argument(
        "--first-token-ms", type=float, default=0.0, help="delay before a stream's first token"
    )
    parser.add_argument("--token-interval-ms", type=float, default=0.0, help="delay between streamed tokens")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        args.host, first_token_delay=args.first_token_ms / 1000, token_interval=args.token_interval_ms / 1000
    )
    if args.rules:
        fake.load_rules(args.rules)
    config = uvicorn.Config(fake.app(), host=args.host, port=args.port, lifespan="off", log_level="warning")
    print(f"fake OpenAI server on http://{args.host}:{args.port}/v1 with {len(fake.rules)} rules")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
