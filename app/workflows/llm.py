"""The LLM port over HTTP: OpenAI-compatible chat completions, streamed (SSE) so nodes can pass text on.

``OpenAIChat`` implements ``LLMPort`` (``engine.nodes.base``). DSL model names pass through to the server
unless the model map renames them. Every failure (HTTP status >= 400, connection, timeout, malformed reply)
becomes a ``NodeRunError`` whose ``error_type`` follows Dify's invoke errors, so the node's error strategy
and retries apply.

Tool calls: ``tools``/``tool_choice`` go into the request as given; the calls come back whole
(``message.tool_calls``) or as stream deltas (``delta.tool_calls``: the first piece of a call carries its
``index``, ``id`` and name, later pieces only ``index`` and a fragment of ``arguments``), which are
assembled per index. Models listed in ``no_tool_models`` (``*`` = every model) are never offered tools.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import structlog

from app.openai_compat import server_message
from app.workflows.engine.asking import request_sent
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import LLMReply, LLMUsage, ToolCall

log = structlog.get_logger()

OnChunk = Callable[[str], Awaitable[None]]

#: Keys the client owns; completion params cannot override them.
RESERVED = {"model", "messages", "stream", "stream_options", "tools", "tool_choice"}
#: ``no_tool_models`` entry meaning "every model".
ALL_MODELS = "*"


def error_type_for(status: int) -> str:
    if status == 429:
        return "InvokeRateLimitError"
    if status in (401, 403):
        return "InvokeAuthorizationError"
    if status >= 500:
        return "InvokeServerUnavailableError"
    return "InvokeBadRequestError"


class _ToolCallParts:
    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _Accumulator:
    """Collects a reply from stream chunks (or one whole completion)."""

    def __init__(self, model: str) -> None:
        self.parts: list[str] = []
        self.usage = LLMUsage()
        self.finish_reason: str | None = None
        self.model = model
        self.calls: dict[int, _ToolCallParts] = {}

    def reply(self) -> LLMReply:
        calls = [
            ToolCall(id=c.id or f"call_{i}", name=c.name, arguments="".join(c.arguments))
            for i, c in sorted(self.calls.items())
        ]
        return LLMReply("".join(self.parts), self.usage, self.finish_reason, self.model, calls)

    def absorb(self, payload: Any) -> str:
        """Take one chunk (or completion) object; returns its new content text."""
        if not isinstance(payload, Mapping):
            raise NodeRunError(f"LLM endpoint sent an unexpected chunk: {payload!r:.200}", "InvokeError")
        error = payload.get("error")
        if error:
            message = error.get("message") if isinstance(error, Mapping) else error
            raise NodeRunError(f"LLM endpoint reported an error: {message}", "InvokeError")
        if isinstance(payload.get("model"), str) and payload["model"]:
            self.model = payload["model"]
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            self.usage = LLMUsage(prompt, completion, int(usage.get("total_tokens") or prompt + completion))
        text = ""
        choices = payload.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            choice = choices[0]
            streamed = isinstance(choice.get("delta"), Mapping)
            delta = choice.get("delta") if streamed else choice.get("message")
            if isinstance(delta, Mapping):
                if isinstance(delta.get("content"), str):
                    text = delta["content"]
                if isinstance(delta.get("tool_calls"), list):
                    self._absorb_tool_calls(delta["tool_calls"], streamed)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if text:
            self.parts.append(text)
        return text

    def _absorb_tool_calls(self, items: list[Any], streamed: bool) -> None:
        for position, item in enumerate(items):
            if not isinstance(item, Mapping):
                continue
            index = item.get("index")
            call_id = item.get("id") if isinstance(item.get("id"), str) else ""
            if not isinstance(index, int) or isinstance(index, bool):
                if not streamed:
                    index = position
                else:  # a server that leaves out ``index``: a new id starts a new call
                    last = max(self.calls, default=-1)
                    new_call = last < 0 or bool(call_id and self.calls[last].id not in ("", call_id))
                    index = last + 1 if new_call else last
            call = self.calls.setdefault(index, _ToolCallParts())
            if call_id:
                call.id = call_id
            function = item.get("function")
            if not isinstance(function, Mapping):
                continue
            if isinstance(function.get("name"), str) and function["name"]:
                call.name = function["name"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call.arguments.append(arguments)
            elif isinstance(arguments, Mapping):  # some servers send the arguments as an object
                call.arguments.append(json.dumps(arguments, ensure_ascii=False))


def _decode(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise NodeRunError(f"LLM endpoint sent malformed JSON: {data[:200]!r}", "InvokeError") from None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every model call: httpx's default (certifi, or ``SSL_CERT_FILE``), built once. A new
    client builds its own otherwise, reading the CA bundle again: 20-40 ms before every call's first byte."""
    return httpx.create_ssl_context()


async def _on_trace(name: str, info: Mapping[str, Any]) -> None:
    """httpcore's trace of a request's steps: once its body is sent, the run's checkpoint may go ahead."""
    if name.endswith("send_request_body.complete"):
        request_sent()


#: A request's ``extensions``: it reports when it is sent (``app/workflows/engine/asking.py``).
_SENT_TRACE = {"trace": _on_trace}


def model_client(timeout: float) -> httpx.AsyncClient:
    """A client of the model endpoint. The worker keeps one open (closed when it stops), so that its calls skip
    the TCP connect and the TLS handshake; without it each call makes its own."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), verify=tls_context())


class OpenAIChat:
    """Chat completions against ``{base_url}/chat/completions``; ``base_url`` usually ends in ``/v1``.

    With an injected ``client`` (the worker's :func:`model_client`) calls reuse its open connections; without
    one each call opens its own connection pool (sharing one TLS context), so one instance is safe to share
    between event loops and needs no closing.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model_map: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        client: httpx.AsyncClient | None = None,
        no_tool_models: Sequence[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model_map = dict(model_map or {})
        self.timeout = timeout
        self._client = client
        self.no_tool_models = frozenset(no_tool_models)

    def served_model(self, model: str) -> str:
        """The name the server knows ``model`` by."""
        return self.model_map.get(model, model)

    def supports_tool_calls(self, model: str) -> bool:
        return not ({ALL_MODELS, model} & self.no_tool_models)

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        on_chunk: OnChunk | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        stream: bool = True,
    ) -> LLMReply:
        served = self.served_model(model)
        body = {k: v for k, v in params.items() if k not in RESERVED}
        body.update(model=served, messages=messages, stream=stream)
        if stream:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [dict(tool) for tool in tools]
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        url = f"{self.base_url}/chat/completions"
        try:
            if self._client is not None:
                return await self._post(self._client, url, body, served, on_chunk)
            async with model_client(self.timeout) as client:
                return await self._post(client, url, body, served, on_chunk)
        except httpx.TimeoutException:
            # The endpoint is the operator's: its address goes to the log, never into run errors.
            log.warning("llm_request_timed_out", url=url, model=served, timeout=self.timeout)
            raise NodeRunError(
                f"LLM request for model {served!r} timed out after {self.timeout:g} s",
                "InvokeConnectionError",
            ) from None
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            log.warning("llm_request_failed", url=url, model=served, error=str(exc) or reason)
            raise NodeRunError(
                f"LLM request for model {served!r} failed: {reason} (the model endpoint could not be reached)",
                "InvokeConnectionError",
            ) from None

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any], served: str, on_chunk: OnChunk | None
    ) -> LLMReply:
        headers = {"Accept": "text/event-stream" if body.get("stream") else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        async with client.stream("POST", url, json=body, headers=headers, extensions=_SENT_TRACE) as response:
            if response.status_code >= 400:
                await response.aread()
                raise NodeRunError(
                    f"LLM endpoint answered HTTP {response.status_code} for model {served!r}: "
                    f"{server_message(response)}",
                    error_type_for(response.status_code),
                )
            reply = _Accumulator(served)
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignores ``stream``: one whole completion.
                text = reply.absorb(_decode((await response.aread()).decode()))
                if text and on_chunk is not None:
                    await on_chunk(text)
                return reply.reply()
            done = False
            async for line in response.aiter_lines():
                # After ``[DONE]`` the body is read to its end, not dropped: a response read whole leaves its
                # connection open for the next call.
                if done or not line.startswith("data:"):
                    continue  # blank separators, ``event:``/``id:`` fields, ``:`` comments
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    continue
                text = reply.absorb(_decode(data))
                if text and on_chunk is not None:
                    await on_chunk(text)
            return reply.reply()
