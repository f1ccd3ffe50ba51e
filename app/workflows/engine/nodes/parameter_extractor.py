"""`parameter-extractor`: asks the model for the declared parameters of a text, by function call or as JSON.

Dify's behaviour (graphon ``ParameterExtractorNode``), which DSLs rely on:

- Mode: *function calling* when ``reasoning_mode`` is ``function_call`` (also when null/empty), the model is a
  chat model and it can be offered tools (``LLMPort.supports_tool_calls``, i.e. not listed in
  ``SLUICE_LLM_NO_TOOL_MODELS``); otherwise *prompt mode* (chat or completion). Dify asks the model's declared
  ``tool-call`` feature instead; completion models never declare it.
- One non-streamed model call. If the reply has tool calls, the first call's arguments are read, else the
  text; the first JSON object found there is the result. Unreadable text starts from the defaults with
  ``__reason`` "Failed to extract result ..."; unreadable tool arguments read as ``{}`` (and then fail the
  count rule). Validation and transformation: ``parameter_extractor_values``.
- Outputs: every parameter, ``__is_success`` (1/0), ``__reason`` (first problem or null), ``__usage``. The node
  *succeeds* even when ``__is_success`` is 0; only a failed model call fails it (then the error strategy
  applies; Dify's failed result also carries ``__is_success``/``__reason``/``__error`` outputs, which an
  engine failure here does not).
- ``retry_config`` is ignored: Dify retries only llm, code, http-request and tool nodes.

Deliberate differences: the query is put into the prompt *after* template rendering, so a user's text is
never read as a template (Dify renders the finished prompt again, letting input such as ``{{#env.KEY#}}``
pull other variables into the prompt); JSON is found string-aware (Dify's bracket count stops at a ``}``
inside a string and may then return an inner object). ``memory`` fills ``<histories>`` with the
conversation's earlier turns in chat runs (empty in workflow runs); ``vision`` is accepted and files are not sent yet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec
import structlog

from app.workflows.engine.nodes.base import (
    LLMPort,
    Node,
    NodeContext,
    NodeResult,
    RetryConfig,
    convert,
    selector,
)
from app.workflows.engine.nodes.llm_common import (
    ModelCall,
    first_json_object,
    memory_text,
    parse_memory,
    parse_model,
    require_llm,
    saved_prompts,
    usage_dict,
)
from app.workflows.engine.nodes.parameter_extractor_prompts import (
    completion_messages,
    extraction_tool,
    function_calling_messages,
    prompt_mode_messages,
)
from app.workflows.engine.nodes.parameter_extractor_values import (
    Parameter,
    check_parameter,
    default_result,
    json_schema,
    transform,
    validation_error,
)
from app.workflows.engine.variables import to_text

log = structlog.get_logger()

NOT_EXTRACTED = "Failed to extract result from function call or text response, using empty result."
ERROR_TYPE = "ParameterExtractorNodeError"
#: Raw model output logged with a failed extraction is cut to this many characters.
LOGGED_TEXT = 2000


class ExtractorConfig(msgspec.Struct, kw_only=True):
    query: list[Any] | None = None
    parameters: list[Parameter] = msgspec.field(default_factory=list)
    instruction: str | None = None
    reasoning_mode: Literal["function_call", "prompt"] | None = None
    memory: Any = None
    vision: Any = None


class ParameterExtractorNode(Node):
    type = "parameter-extractor"
    performs_io: ClassVar[bool] = True
    only_asks: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.retry = RetryConfig()  # Dify's parameter extractor does not retry (see the module docstring)
        try:
            self.model = ModelCall(parse_model(data))
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        fields = ("query", "parameters", "instruction", "reasoning_mode", "memory", "vision")
        config: ExtractorConfig = convert(
            {k: data[k] for k in fields if data.get(k) not in (None, "")}, ExtractorConfig, self
        )
        query = selector(config.query)
        if query is None:
            raise self.fail("query must be a variable selector")
        self.query: list[str] = query
        try:
            self.parameters = [check_parameter(p, i) for i, p in enumerate(config.parameters)]
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self.instruction = config.instruction or ""
        self.reasoning_mode = config.reasoning_mode or "function_call"
        self.mode = self.model.model.mode
        try:
            self.memory = parse_memory(config.memory)
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def _uses_tools(self, llm: LLMPort) -> bool:
        if self.reasoning_mode != "function_call" or self.mode != "chat":
            return False
        supports = getattr(llm, "supports_tool_calls", None)
        return bool(supports(self.model.model.name)) if supports is not None else True

    async def run(self, ctx: NodeContext) -> NodeResult:
        llm = require_llm(ctx, ERROR_TYPE)
        query = to_text(ctx.pool.get(self.query))
        instruction = ctx.pool.render(self.instruction)
        schema = json_schema(self.parameters, [ctx.pool.render(p.description) for p in self.parameters])
        tools = [extraction_tool(schema)] if self._uses_tools(llm) else None
        histories = await memory_text(ctx, self.memory, self.model.params(ctx.pool))
        if tools:
            messages = function_calling_messages(query, instruction, histories, schema)
        elif self.mode == "chat":
            messages = prompt_mode_messages(query, instruction, histories, schema)
        else:
            messages = completion_messages(query, instruction, histories, schema)
        inputs = {
            "query": query,
            "files": [],
            "parameters": [msgspec.to_builtins(p) for p in self.parameters],
            "instruction": self.instruction,
            **self.model.identity,
        }
        started = time.perf_counter()
        reply = await llm.chat(
            self.model.model.name, messages, self.model.params(ctx.pool), tools=tools, stream=False
        )
        usage = usage_dict(reply.usage, time.perf_counter() - started)
        tool_call = reply.tool_calls[0] if reply.tool_calls else None

        reason: str | None = None
        if tool_call is not None:
            result = first_json_object(tool_call.arguments) or {}
        else:
            result = first_json_object(reply.text) or {}
            if not result:
                result, reason = default_result(self.parameters), NOT_EXTRACTED
        reason = validation_error(self.parameters, result) or reason
        if reason is not None:
            log.info(
                "parameter_extractor_result_rejected",
                node_id=self.id,
                reason=reason,
                llm_text=reply.text[:LOGGED_TEXT],
                tool_arguments=tool_call.arguments[:LOGGED_TEXT] if tool_call else None,
            )
        outputs = {
            "__is_success": 0 if reason else 1,
            "__reason": reason,
            "__usage": usage,
            **transform(self.parameters, result),
        }
        process_data = {
            "model_mode": self.mode,
            "prompts": saved_prompts(messages, self.mode),
            "usage": usage,
            "function": tools[0] if tools else {},
            "tool_call": (
                {
                    "id": tool_call.id,
                    "type": "function",
                    "function": {"name": tool_call.name, "arguments": tool_call.arguments},
                }
                if tool_call
                else None
            ),
            "llm_text": reply.text,
            **self.model.identity,
        }
        return NodeResult(
            inputs=inputs, process_data=process_data, outputs=outputs, tokens=reply.usage.total_tokens
        )
