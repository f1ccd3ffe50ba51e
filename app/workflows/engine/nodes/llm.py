"""`llm`: renders its prompt (variables, context, Jinja2), calls the LLM port and streams the reply.

Dify's node config: ``model {provider, name, mode: chat|completion, completion_params}``, ``prompt_template``
(chat: a list of ``{role, text, edition_type, jinja2_text}``; completion: ``{text}``), ``prompt_config
.jinja2_variables``, ``context {enabled, variable_selector}``, ``memory {window, query_prompt_template,
role_prefix}`` (chatflow spec 7.5: the conversation's earlier turns come from the ``history`` port); ``vision``
is accepted and not used yet. Completion mode is sent as one user message: the port speaks chat completions only.

With memory, a chat-mode prompt is the node's own messages, then the history (user/assistant pairs, the oldest
dropped until it fits the budget), then one user message: ``query_prompt_template`` rendered, or ``sys.query``.
A completion-mode prompt gets the history as ``<user prefix>: ...`` lines where it says ``#histories#`` (else in
front), and ``#sys.query#`` replaced by the query.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import jinja2
import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert, selector
from app.workflows.engine.nodes.llm_common import (
    MemoryConfig,
    ModelCall,
    ModelConfig,
    history_budget,
    history_messages,
    history_text,
    parse_memory,
    parse_model,
    read_history,
    require_llm,
    saved_prompts,
    usage_dict,
)
from app.workflows.engine.nodes.template_transform import PreparedTemplate
from app.workflows.engine.variables import to_text

CONTEXT_MARK = "{{#context#}}"


class PromptMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "user", "assistant"] = "user"
    text: str = ""
    edition_type: Literal["basic", "jinja2"] = "basic"
    jinja2_text: str | None = None


class ContextConfig(msgspec.Struct, kw_only=True):
    enabled: bool = False
    variable_selector: list[str] | None = None


class Jinja2Variable(msgspec.Struct, kw_only=True):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class PromptConfig(msgspec.Struct, kw_only=True):
    jinja2_variables: list[Jinja2Variable] = msgspec.field(default_factory=list)


class LLMConfig(msgspec.Struct, kw_only=True):
    model: ModelConfig
    context: ContextConfig | None = None
    prompt_config: PromptConfig | None = None
    memory: Any = None
    vision: Any = None


def context_text(value: Any) -> str | None:
    """The context variable as prompt text: a string as-is; retrieval results' ``content`` one per line."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, str):
                lines.append(item)
            elif isinstance(item, Mapping) and "content" in item:
                lines.append(to_text(item["content"]))
            else:
                raise NodeRunError(
                    f"Invalid context structure: {to_text(item)[:200]}", "InvalidContextStructureError"
                )
        return "\n".join(lines).strip()
    return None


def jinja_value(value: Any) -> str:
    """How Dify hands a variable to a Jinja2 prompt: text; a list one item per line; retrieval items' content."""
    if isinstance(value, list):
        return "\n".join(jinja_value(item) for item in value).strip()
    if isinstance(value, Mapping) and "content" in value and isinstance(value.get("metadata"), Mapping):
        return to_text(value["content"])
    return to_text(value)


class LLMNode(Node):
    type = "llm"
    performs_io: ClassVar[bool] = True
    only_asks: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        try:
            parse_model(data)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self.config: LLMConfig = convert(
            {
                k: data.get(k)
                for k in ("model", "context", "prompt_config", "memory", "vision")
                if data.get(k)
            },
            LLMConfig,
            self,
        )
        self.mode = self.config.model.mode
        try:
            self.memory: MemoryConfig | None = parse_memory(self.config.memory)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        template = data.get("prompt_template")
        try:
            if self.mode == "chat":
                if not isinstance(template, list) or not all(isinstance(m, Mapping) for m in template):
                    raise self.fail("prompt_template must be a list of messages in chat mode")
                self.messages = msgspec.convert(template, list[PromptMessage], strict=False)
            else:
                if not isinstance(template, Mapping):
                    raise self.fail("prompt_template must be an object with text in completion mode")
                self.messages = [msgspec.convert(template, PromptMessage, strict=False)]
                self.messages[0].role = "user"
        except msgspec.ValidationError as exc:
            raise self.fail(f"prompt_template: {exc}") from None
        # Jinja2 prompts: compiled here (nothing evaluated); trivial ones render in-process, others in the sandbox
        self.templates: dict[int, PreparedTemplate] = {}
        for i, message in enumerate(self.messages):
            if message.edition_type == "jinja2":
                try:
                    self.templates[i] = PreparedTemplate(message.jinja2_text or "", "prompt")
                except jinja2.TemplateSyntaxError as exc:
                    raise self.fail(
                        f"prompt_template[{i}].jinja2_text: {exc.message} (line {exc.lineno})"
                    ) from None
        self.context_selector = (
            selector(self.config.context.variable_selector) if self.config.context else None
        )
        if self.config.context and not self.config.context.enabled:
            self.context_selector = None
        try:
            self.model = ModelCall(self.config.model)
        except ValueError as exc:
            raise self.fail(f"completion_params.json_schema is not valid JSON: {exc}") from None

    async def _render(self, ctx: NodeContext, context: str | None) -> list[dict[str, str]]:
        jinja_vars: dict[str, str] | None = None
        prompts = []
        for i, message in enumerate(self.messages):
            if i in self.templates:
                if jinja_vars is None:
                    variables = (
                        self.config.prompt_config.jinja2_variables if self.config.prompt_config else []
                    )
                    jinja_vars = {v.variable: jinja_value(ctx.pool.get(v.value_selector)) for v in variables}
                try:
                    text = await self.templates[i].render(ctx, jinja_vars)
                except NodeRunError as exc:
                    raise NodeRunError(
                        f"prompt {i}: Jinja2 rendering failed: {exc}", "TemplateRenderError"
                    ) from None
            else:
                # Context text is put in after rendering so that it is never read as a template itself.
                text = (context or "").join(
                    ctx.pool.render(part) for part in message.text.split(CONTEXT_MARK)
                )
            prompts.append({"role": message.role, "text": text})
        return prompts

    async def _with_memory(
        self, ctx: NodeContext, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The prompt with the conversation's earlier turns and the query (chatflow spec 7.5)."""
        assert self.memory is not None
        turns = await read_history(ctx, self.memory)
        history = history_messages(turns, history_budget(ctx, params, messages)) if turns else []
        template = self.memory.query_prompt_template
        query = ctx.pool.render(template) if template else str(ctx.pool.get(["sys", "query"]) or "")
        if self.mode == "chat":
            out = [*messages, *history]
            if query:
                out.append({"role": "user", "content": query})
            return out
        prefix = self.memory.role_prefix
        if history and (prefix is None or not prefix.user or not prefix.assistant):
            raise NodeRunError("Memory role prefix is required for completion model.", "LLMNodeError")
        text = str(messages[0]["content"]) if messages else ""
        lines = history_text(history, prefix.user, prefix.assistant) if history and prefix else ""
        if "#histories#" in text:
            text = text.replace("{{#histories#}}", lines).replace("#histories#", lines)
        elif lines:
            text = lines + "\n" + text
        if query:
            text = text.replace("#sys.query#", query)
        return [{"role": "user", "content": text}]

    async def run(self, ctx: NodeContext) -> NodeResult:
        llm = require_llm(ctx, "LLMNodeError")
        inputs: dict[str, Any] = {}
        context = None
        if self.context_selector is not None:
            context = context_text(ctx.pool.get(self.context_selector))
            if context:
                inputs["#context#"] = context
        prompts = await self._render(ctx, context)
        messages: list[dict[str, Any]] = [{"role": p["role"], "content": p["text"]} for p in prompts]
        params = self.model.params(ctx.pool)
        if self.memory is not None:
            messages = await self._with_memory(ctx, messages, params)

        async def on_chunk(text: str) -> None:
            await ctx.stream(text, [self.id, "text"])

        started = time.perf_counter()
        reply = await llm.chat(self.config.model.name, messages, params, on_chunk)
        usage = usage_dict(reply.usage, time.perf_counter() - started)
        process_data = {
            "model_mode": self.mode,
            "prompts": saved_prompts(messages, self.mode),
            "usage": usage,
            "finish_reason": reply.finish_reason,
            "model_provider": self.config.model.provider,
            "model_name": self.config.model.name,
        }
        outputs = {
            "text": reply.text,
            "reasoning_content": "",
            "usage": usage,
            "finish_reason": reply.finish_reason,
        }
        return NodeResult(
            inputs=inputs, process_data=process_data, outputs=outputs, tokens=reply.usage.total_tokens
        )
