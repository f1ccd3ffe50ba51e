"""Completion apps (Dify's "text generator", ``mode: completion``) as the graph Sluice runs: a completion DSL has
no workflow, only a ``model_config`` (model, ``pre_prompt`` with ``{{var}}`` placeholders, ``user_input_form``),
so import writes the graph Dify's simple prompt amounts to — start (the form's variables) → is there a query? →
LLM (the pre-prompt with the variables filled, as Dify places it) → answer — and the features a chat app reads
from ``workflow``.

This is the minimal completion surface (chatflow spec 6.1): datasets (``dataset_configs``), external data tools,
agent modes and moderation of a completion app's model config are not run; a config that asks for them is refused
at import, naming the setting, rather than silently answering without them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.errors import SluiceError

#: The form item kinds of ``user_input_form`` (Dify's ``VariableEntityType`` in the console's spelling).
FORM_TYPES = ("text-input", "paragraph", "select", "number", "checkbox", "file", "file-list", "json_object")
#: ``{{var}}`` in a pre-prompt (Dify's ``PromptTemplateParser``: a name of up to 30 characters).
_PLACEHOLDER = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]{0,29})\}\}")
#: Model-config features a chat or workflow app keeps under ``workflow.features`` (same names).
FEATURES = (
    "opening_statement",
    "suggested_questions",
    "suggested_questions_after_answer",
    "speech_to_text",
    "text_to_speech",
    "retriever_resource",
    "more_like_this",
    "sensitive_word_avoidance",
    "file_upload",
)
START, BRANCH = "start", "query"
LLM, ANSWER = "llm", "answer"
LLM_QUERY, ANSWER_QUERY = "llm_query", "answer_query"


class InvalidCompletionConfig(SluiceError):
    """The completion app's model configuration cannot be imported."""

    status, code = 400, "invalid_dsl"


def _enabled(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key)
    return isinstance(value, Mapping) and bool(value.get("enabled"))


def start_variables(form: Any) -> list[dict[str, Any]]:
    """``user_input_form`` (``[{"text-input": {variable, label, required, max_length, default}}, ...]``) as a
    start node's variables."""
    if form is None:
        return []
    if not isinstance(form, list):
        raise InvalidCompletionConfig("model_config.user_input_form must be a list")
    out = []
    for item in form:
        if not isinstance(item, Mapping) or len(item) != 1:
            raise InvalidCompletionConfig("each user_input_form item is one {type: settings} mapping")
        kind, settings = next(iter(item.items()))
        if kind not in FORM_TYPES or not isinstance(settings, Mapping) or not settings.get("variable"):
            raise InvalidCompletionConfig(f"unsupported user_input_form item {kind!r}")
        variable = {k: v for k, v in settings.items() if k != "type"}
        variable["type"] = kind
        variable.setdefault("label", variable["variable"])
        out.append(variable)
    return out


def completion_graph(config: Mapping[str, Any]) -> dict[str, Any]:
    """The graph of a completion app's ``model_config``."""
    model = config.get("model")
    if not isinstance(model, Mapping) or not model.get("name"):
        raise InvalidCompletionConfig("model_config.model (provider, name) is required")
    for refused in ("dataset_configs", "external_data_tools", "agent_mode"):
        value = config.get(refused)
        datasets = isinstance(value, Mapping) and (value.get("datasets") or {}).get("datasets")
        if _enabled(config, refused) or datasets or (refused == "external_data_tools" and value):
            raise InvalidCompletionConfig(f"model_config.{refused} is not supported for completion apps")
    if config.get("prompt_type", "simple") != "simple":
        raise InvalidCompletionConfig("only the simple prompt of a completion app is supported (prompt_type)")
    variables = start_variables(config.get("user_input_form"))
    names = {v["variable"] for v in variables}
    pre_prompt = str(config.get("pre_prompt") or "")
    prompt = _PLACEHOLDER.sub(
        lambda m: f"{{{{#{START}.{m.group(1)}#}}}}" if m.group(1) in names else m.group(0), pre_prompt
    )
    model_data = {
        "provider": model.get("provider") or "",
        "name": model["name"],
        "mode": model.get("mode") or "chat",
        "completion_params": dict(model.get("completion_params") or {}),
    }

    def llm(node_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        data = {"type": "llm", "title": "LLM", "model": model_data, "prompt_template": messages}
        return {"id": node_id, "data": {**data, "context": {"enabled": False}, "vision": {"enabled": False}}}

    def answer(node_id: str, source: str) -> dict[str, Any]:
        return {
            "id": node_id,
            "data": {"type": "answer", "title": "Answer", "answer": f"{{{{#{source}.text#}}}}"},
        }

    # Dify's simple prompt (SimplePromptTransform): with a query, the filled pre-prompt is the system message and
    # the query the user's; without one, the filled pre-prompt is the user's message.
    with_query = [{"role": "system", "text": prompt}] if prompt else []
    with_query.append({"role": "user", "text": "{{#sys.query#}}"})
    condition = {"variable_selector": ["sys", "query"], "comparison_operator": "empty", "value": ""}
    return {
        "nodes": [
            {"id": START, "data": {"type": "start", "title": "Start", "variables": variables}},
            {
                "id": BRANCH,
                "data": {
                    "type": "if-else",
                    "title": "Query?",
                    "cases": [{"case_id": "true", "logical_operator": "and", "conditions": [condition]}],
                },
            },
            llm(LLM, [{"role": "user", "text": prompt}]),
            llm(LLM_QUERY, with_query),
            answer(ANSWER, LLM),
            answer(ANSWER_QUERY, LLM_QUERY),
        ],
        "edges": [
            {"id": "e-start", "source": START, "target": BRANCH},
            {"id": "e-no-query", "source": BRANCH, "sourceHandle": "true", "target": LLM},
            {"id": "e-query", "source": BRANCH, "sourceHandle": "false", "target": LLM_QUERY},
            {"id": "e-answer", "source": LLM, "target": ANSWER},
            {"id": "e-answer-query", "source": LLM_QUERY, "target": ANSWER_QUERY},
        ],
    }


def features(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model config's features under the names ``workflow.features`` uses."""
    return {key: config[key] for key in FEATURES if key in config}


def as_workflow(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with a ``workflow`` section (graph and features) made from its ``model_config``."""
    config = doc.get("model_config")
    if not isinstance(config, Mapping):
        raise InvalidCompletionConfig("a completion app needs its `model_config` section")
    return {**doc, "workflow": {"graph": completion_graph(config), "features": features(config)}}
