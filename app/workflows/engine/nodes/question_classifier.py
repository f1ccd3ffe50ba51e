"""`question-classifier`: the model picks one of the node's classes for a text; the run continues on the
edges whose ``sourceHandle`` is that class's id.

Dify's behaviour (graphon ``QuestionClassifierNode``), which DSLs rely on:

- The prompt (``question_classifier_prompts``) lists the classes as ``category_id``/``category_name`` (names
  rendered, ``{{#..#}}`` allowed) with the rendered ``instruction``; the model answers a JSON object.
- Reading the answer: ``<think>`` blocks are dropped; the JSON block runs from the first of ``` ```json ```,
  ``` ``` ```, ``` `` ```, ``` ` ```, ``{``, ``[`` to the last closing fence or bracket; a one-object list is
  unwrapped. If the object names a ``category_id`` (with a ``category_name``) that is one of the classes, that
  class is chosen; **any other answer that is JSON falls back to the first class** (no error). An answer with
  no JSON at all, or broken JSON, **fails the node** (``ValueError`` "could not find json block in the
  output." / ``OutputParserError`` "got invalid json object. error: ..."); the error strategy then applies,
  and the tokens used still count into the run.
- Outputs ``class_name`` (rendered), ``class_label`` (the class's ``label``, else ``CLASS <n>``; Dify 1.14),
  ``class_id``, ``usage``. A class with no edge simply ends that path.
- ``retry_config`` is ignored: Dify retries only llm, code, http-request and tool nodes.

Deliberate differences: where Dify fails with "Extra data" because the model wrote two JSON objects (issue
42006), the first complete object is used; a ``category_id`` the model wrote as a number (``1`` for class
``"1"``) matches that class instead of silently falling back to the first one. The text is put into the
prompt after template rendering, so a user's text is never read as a template. ``memory`` gives the
conversation's earlier turns in chat runs (``Human:``/``Assistant:`` lines in the Memory section); ``vision`` is accepted and files are not sent yet.
``error_strategy: default-value`` (which Dify's editor does not offer here) makes Dify's engine fail the run
("did not select any edge"); here the handled result leaves by ``source``, so every class branch is skipped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, RetryConfig, convert, selector
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
from app.workflows.engine.nodes.question_classifier_prompts import chat_messages, completion_messages
from app.workflows.engine.variables import to_text

ERROR_TYPE = "QuestionClassifierNodeError"
#: A model answer quoted in an error is cut to this many characters.
MAX_QUOTED = 1000

_THINK = re.compile(r"<think[^>]*>[\s\S]*?</think>", re.IGNORECASE)
_STARTS = ("```json", "```", "``", "`", "{", "[")
_ENDS = ("```", "``", "`", "}", "]")


class ClassConfig(msgspec.Struct, kw_only=True):
    id: str
    name: str = ""
    label: str = ""


class ClassifierConfig(msgspec.Struct, kw_only=True):
    query_variable_selector: list[str] | None = None
    classes: list[ClassConfig] = msgspec.field(default_factory=list)
    instruction: str | None = None
    memory: Any = None
    vision: Any = None


class Unreadable(NodeRunError):
    """The model's answer holds no JSON that can be read."""


def strip_think(text: str) -> str:
    """Reasoning models' ``<think>...</think>`` blocks removed (only when one is there, as Dify does)."""
    return _THINK.sub("", text) if "<think>" in text else text


def read_answer(text: str) -> Any:
    """The JSON in the model's answer, found as Dify finds it (see the module docstring)."""
    text = text.strip()
    start = end = -1
    for marker in _STARTS:
        start = text.find(marker)
        if start != -1:
            if text[start] not in "{[":
                start += len(marker)
            break
    if start != -1:
        for marker in _ENDS:
            end = text.rfind(marker, start)
            if end != -1:
                if text[end] in "}]":
                    end += 1
                break
    if start == -1 or end == -1 or start >= end:
        raise Unreadable("could not find json block in the output.", "ValueError")
    block = text[start:end].strip()
    try:
        value = json.loads(block)
    except (ValueError, RecursionError) as exc:
        value = first_json_object(block)  # Dify stops at "Extra data" here (issue 42006)
        if value is None:
            raise Unreadable(f"got invalid json object. error: {exc}", "OutputParserError") from None
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict):
            return value[0]
        raise Unreadable(f"got invalid return object. obj:{str(value)[:MAX_QUOTED]}", "OutputParserError")
    return value


def _normalised_classes(raw: Any) -> Any:
    """Class ids and names as strings (YAML may spell an id ``1``)."""
    if not isinstance(raw, list):
        return raw
    return [
        {**item, **{k: str(item[k]) for k in ("id", "name", "label") if isinstance(item.get(k), int | float)}}
        if isinstance(item, Mapping)
        else item
        for item in raw
    ]


class QuestionClassifierNode(Node):
    type = "question-classifier"
    branching: ClassVar[bool] = True
    performs_io: ClassVar[bool] = True
    only_asks: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.retry = RetryConfig()  # Dify's question classifier does not retry (see the module docstring)
        try:
            self.model = ModelCall(parse_model(data))
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        fields = ("query_variable_selector", "classes", "instruction", "memory", "vision")
        values = {k: data[k] for k in fields if data.get(k) not in (None, "")}
        values["classes"] = _normalised_classes(values.get("classes", []))
        config: ClassifierConfig = convert(values, ClassifierConfig, self)
        if not config.classes:
            raise self.fail("classes must list at least one class")
        self.query = selector(config.query_variable_selector)
        self.classes = config.classes
        self.instruction = config.instruction or ""
        self.mode = self.model.model.mode
        try:
            self.memory = parse_memory(config.memory)
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def _choose(self, answer: Any) -> int:
        """The index of the chosen class: the one the answer names, else the first."""
        if not isinstance(answer, dict) or "category_id" not in answer or "category_name" not in answer:
            return 0
        chosen = answer["category_id"]
        if isinstance(chosen, int) and not isinstance(chosen, bool):
            chosen = str(chosen)
        for index, class_ in enumerate(self.classes):
            if class_.id == chosen:
                return index
        return 0

    async def run(self, ctx: NodeContext) -> NodeResult:
        llm = require_llm(ctx, ERROR_TYPE)
        value = ctx.pool.get(self.query) if self.query else None
        text = value if isinstance(value, str) else to_text(value)
        names = [ctx.pool.render(c.name) for c in self.classes]
        categories = [
            {"category_id": c.id, "category_name": n} for c, n in zip(self.classes, names, strict=True)
        ]
        instruction = ctx.pool.render(self.instruction)
        build = chat_messages if self.mode == "chat" else completion_messages
        histories = await memory_text(ctx, self.memory, self.model.params(ctx.pool))
        messages = build(text, categories, instruction, histories)
        started = time.perf_counter()
        reply = await llm.chat(self.model.model.name, messages, self.model.params(ctx.pool))
        usage = usage_dict(reply.usage, time.perf_counter() - started)
        try:
            index = self._choose(read_answer(strip_think(reply.text)))
        except Unreadable as exc:
            raise Unreadable(str(exc), exc.error_type, tokens=reply.usage.total_tokens) from None
        chosen = self.classes[index]
        return NodeResult(
            inputs={"query": value, **self.model.identity},
            process_data={
                "model_mode": self.mode,
                "prompts": saved_prompts(messages, self.mode),
                "usage": usage,
                "finish_reason": reply.finish_reason,
                **self.model.identity,
            },
            outputs={
                "class_name": names[index],
                "class_label": chosen.label or f"CLASS {index + 1}",
                "class_id": chosen.id,
                "usage": usage,
            },
            edge_source_handle=chosen.id,
            tokens=reply.usage.total_tokens,
        )
