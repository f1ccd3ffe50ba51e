"""What the model-calling node types share (`llm`, `parameter-extractor`, `question-classifier`).

The DSL's ``model`` block, its completion params in the spelling of an OpenAI-compatible server (string
values may hold ``{{#node.var#}}`` templates, resolved per run as Dify does), usage as Dify reports it, the
prompts as ``process_data`` records them, and finding a JSON object in what a model wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import LLMUsage, NodeContext, RunInfo
from app.workflows.engine.variables import TEMPLATE, VariablePool

#: Dify completion params that mean the same to an OpenAI-compatible server.
PASSED_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
    "logit_bias",
)
#: A resolved completion-param template longer than this is cut (Dify: MAX_RESOLVED_VALUE_LENGTH).
MAX_RESOLVED_PARAM_LENGTH = 1024
#: ``{`` / ``[`` positions tried when scanning model text for JSON; bounds the work on hostile text.
MAX_JSON_STARTS = 1000

_json = json.JSONDecoder()
_OPENERS = re.compile(r"[{\[]")


class ModelConfig(msgspec.Struct, kw_only=True):
    name: str = ""
    provider: str = ""
    mode: Literal["chat", "completion"] = "chat"
    completion_params: dict[str, Any] = msgspec.field(default_factory=dict)


def openai_params(completion_params: Mapping[str, Any]) -> dict[str, Any]:
    """The completion params an OpenAI-compatible endpoint understands, in its spelling."""
    params = {k: completion_params[k] for k in PASSED_PARAMS if completion_params.get(k) is not None}
    if params.get("stop") == []:
        del params["stop"]
    response_format = completion_params.get("response_format")
    if response_format in ("text", "json_object"):
        params["response_format"] = {"type": response_format}
    elif response_format == "json_schema" and completion_params.get("json_schema"):
        schema = completion_params["json_schema"]
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": json.loads(schema) if isinstance(schema, str) else schema,
        }
    return params


def has_templates(completion_params: Mapping[str, Any]) -> bool:
    return any(isinstance(v, str) and TEMPLATE.search(v) for v in completion_params.values())


def resolve_params(completion_params: Mapping[str, Any], pool: VariablePool) -> dict[str, Any]:
    """Completion params with ``{{#..#}}`` in string values replaced (a number or boolean literal becomes
    that value, as Dify's ``resolve_completion_params_variables`` does)."""
    resolved: dict[str, Any] = {}
    for key, value in completion_params.items():
        if isinstance(value, str) and TEMPLATE.search(value):
            text = pool.render(value)[:MAX_RESOLVED_PARAM_LENGTH]
            resolved[key] = _literal(text)
        else:
            resolved[key] = value
    return resolved


def _literal(text: str) -> Any:
    try:
        value = json.loads(text.strip())
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


class ModelCall:
    """A node's model and its params, parsed at import; ``params(pool)`` gives the request params of a run."""

    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self.dynamic = has_templates(model.completion_params)
        self._static = openai_params(model.completion_params)  # raises ValueError on a bad json_schema

    def params(self, pool: VariablePool) -> dict[str, Any]:
        if not self.dynamic:
            return dict(self._static)
        try:
            return openai_params(resolve_params(self.model.completion_params, pool))
        except ValueError as exc:
            raise NodeRunError(f"completion_params: {exc}", "InvalidParameterError") from None

    @property
    def identity(self) -> dict[str, str]:
        """``model_provider`` and ``model_name``, as Dify puts them in inputs and process data."""
        return {"model_provider": self.model.provider, "model_name": self.model.name}


def parse_model(data: Mapping[str, Any]) -> ModelConfig:
    """The ``model`` block of a node's data; ValueError names what is wrong."""
    model = data.get("model")
    if not isinstance(model, Mapping) or not str(model.get("name") or "").strip():
        raise ValueError("model.name is required")
    try:
        return msgspec.convert(dict(model), ModelConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"model: {exc}") from None


def require_llm(ctx: NodeContext, error_type: str) -> Any:
    if ctx.ports.llm is None:
        raise NodeRunError("no LLM configured", error_type)
    return ctx.ports.llm


def usage_dict(usage: LLMUsage, latency: float) -> dict[str, Any]:
    """Usage as Dify reports it (prices are unknown here, so zero)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "prompt_unit_price": 0.0,
        "prompt_price_unit": 0.0,
        "prompt_price": 0.0,
        "completion_tokens": usage.completion_tokens,
        "completion_unit_price": 0.0,
        "completion_price_unit": 0.0,
        "completion_price": 0.0,
        "total_tokens": usage.total_tokens,
        "total_price": 0.0,
        "currency": "USD",
        "latency": round(latency, 3),
    }


def saved_prompts(messages: Sequence[Mapping[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The prompts as ``process_data.prompts`` keeps them: ``{role, text, files}`` per chat message (plus
    ``tool_calls`` on an assistant message that has them); one ``{role: user, text}`` in completion mode."""
    if mode == "completion":
        return [{"role": "user", "text": str(messages[0].get("content") or "")}] if messages else []
    prompts = []
    for message in messages:
        prompt: dict[str, Any] = {
            "role": message.get("role"),
            "text": str(message.get("content") or ""),
            "files": [],
        }
        if message.get("tool_calls"):
            prompt["tool_calls"] = message["tool_calls"]
        prompts.append(prompt)
    return prompts


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: every ``{`` or ``[`` from the left starts one attempt to read
    the single JSON value beginning there (string-aware, trailing text ignored); the first attempt that
    yields an object wins (a list is looked into by the attempts at its own brackets)."""
    for tries, match in enumerate(_OPENERS.finditer(text)):
        if tries >= MAX_JSON_STARTS:
            break
        try:
            value, _ = _json.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


# --- memory: the conversation's earlier turns (chatflow spec 7.5) --------------------------------------------

#: Dify reads at most this many messages of a conversation, window or not.
MAX_HISTORY_MESSAGES = 500
#: History budget when the model's context size is unknown (Dify's ``rest_tokens`` default).
DEFAULT_HISTORY_TOKENS = 2000


class MemoryWindow(msgspec.Struct, kw_only=True):
    enabled: bool = False
    size: int | None = None


class RolePrefix(msgspec.Struct, kw_only=True):
    user: str = ""
    assistant: str = ""


class MemoryConfig(msgspec.Struct, kw_only=True):
    """A node's ``memory`` block: how much of the conversation it sees, and how (completion prompts)."""

    window: MemoryWindow = msgspec.field(default_factory=MemoryWindow)
    query_prompt_template: str | None = None
    role_prefix: RolePrefix | None = None


class HistoryMessage(msgspec.Struct, frozen=True):
    """One earlier turn: what the user asked and the answer that was streamed back."""

    query: str
    answer: str


class HistoryPort(Protocol):
    """The conversation a chat run belongs to (``ports.history``). ``context_tokens`` is the models' context
    size when known (0: unknown, and history gets Dify's default budget)."""

    context_tokens: int

    async def messages(self, run: RunInfo, conversation_id: str, limit: int) -> list[HistoryMessage]:
        """The conversation's newest ``limit`` messages, the run's own among those counted but left out, oldest
        first (Dify's ``TokenBufferMemory``)."""
        ...


def parse_memory(value: Any) -> MemoryConfig | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("memory must be an object")
    fields = {
        k: v
        for k, v in value.items()
        if v is not None and k in ("window", "query_prompt_template", "role_prefix")
    }
    try:
        return msgspec.convert(fields, MemoryConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"memory: {exc}") from None


def estimate_tokens(text: str) -> int:
    """A model-independent guess (about four bytes a token); Sluice does not know each model's tokenizer."""
    return (len(text.encode()) + 3) // 4 + 1


async def read_history(ctx: NodeContext, memory: MemoryConfig | None) -> list[HistoryMessage]:
    """The turns a node with ``memory`` sees: none outside a conversation or without a history port."""
    conversation_id = ctx.pool.get(["sys", "conversation_id"])
    port = ctx.ports.history
    if memory is None or port is None or not conversation_id:
        return []
    size = memory.window.size if memory.window.enabled else None
    limit = min(size, MAX_HISTORY_MESSAGES) if size and size > 0 else MAX_HISTORY_MESSAGES
    return list(await port.messages(ctx.run, str(conversation_id), limit))


def history_budget(ctx: NodeContext, params: Mapping[str, Any], prompt: Sequence[Mapping[str, Any]]) -> int:
    """Tokens the history may use: the context size minus ``max_tokens`` and the prompt (Dify), or 2000 when the
    context size is unknown."""
    context = int(getattr(ctx.ports.history, "context_tokens", 0) or 0)
    if context <= 0:
        return DEFAULT_HISTORY_TOKENS
    used = sum(estimate_tokens(str(m.get("content") or "")) for m in prompt)
    return max(context - int(params.get("max_tokens") or 0) - used, 0)


def history_messages(turns: Sequence[HistoryMessage], budget: int) -> list[dict[str, str]]:
    """The turns as chat messages (user, assistant), the oldest dropped one by one until they fit ``budget``
    (never fewer than one)."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.query})
        messages.append({"role": "assistant", "content": turn.answer})
    total = sum(estimate_tokens(m["content"]) for m in messages)
    while total > budget and len(messages) > 1:
        total -= estimate_tokens(messages.pop(0)["content"])
    return messages


def history_text(
    messages: Sequence[Mapping[str, str]], human: str = "Human", assistant: str = "Assistant"
) -> str:
    """History as prompt text, one ``<prefix>: <content>`` line per message."""
    return "\n".join(f"{human if m['role'] == 'user' else assistant}: {m['content']}" for m in messages)


async def memory_text(ctx: NodeContext, memory: MemoryConfig | None, params: Mapping[str, Any]) -> str:
    """History as the ``Human:``/``Assistant:`` text that classifier and extractor prompts embed ("" without
    memory or outside a conversation)."""
    turns = await read_history(ctx, memory)
    if not turns:
        return ""
    return history_text(history_messages(turns, history_budget(ctx, params, [])))
