"""`human-input`: pauses the run with a form for a person (Dify 1.13/1.14 config).

Running the node renders the form (``{{#node.var#}}`` now; ``{{#$output.field#}}`` placeholders stay for the
submitted values), resolves variable defaults and asks to pause. The runner turns that request into a form
with deliveries and recipients in the pause's own transaction. The node ends when the pause is resolved:
submitted (outputs: every input, ``__action_id``, ``__rendered_content``; edge: the action id) or timed out
(``__action_id = ""``; edge ``__timeout``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import msgspec

from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

TIMEOUT_HANDLE = "__timeout"
PAUSE_KIND = "human_input"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,29}$")
ACTION_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,19}$")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
OUTPUT_PLACEHOLDER = re.compile(r"\{\{#\$output\.([A-Za-z_][A-Za-z0-9_]{0,29})#\}\}")


class InputDefault(msgspec.Struct, kw_only=True):
    """Dify's ``FormInputDefault``: both fields are kept whatever the type (``selector`` ``[]`` and ``value``
    ``""`` when unset), as the form definitions Dify returns show them."""

    type: Literal["variable", "constant"] = "constant"
    selector: list[str] | None = None
    value: Any = ""

    def __post_init__(self) -> None:
        if self.selector is None:  # an explicit null in the DSL reads as unset
            self.selector = []


class FormInput(msgspec.Struct, kw_only=True):
    type: Literal["text_input", "paragraph"] = "text_input"
    output_variable_name: str
    default: InputDefault | None = None


class UserAction(msgspec.Struct, kw_only=True):
    id: str
    title: str = ""
    button_style: Literal["primary", "default", "accent", "ghost"] = "default"


class DeliveryMethod(msgspec.Struct, kw_only=True):
    id: str = ""
    type: Literal["webapp", "email"] = "webapp"
    enabled: bool = True
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class HumanInputConfig(msgspec.Struct, kw_only=True):
    form_content: str = ""
    inputs: list[FormInput] = msgspec.field(default_factory=list)
    user_actions: list[UserAction] = msgspec.field(default_factory=list)
    delivery_methods: list[DeliveryMethod] = msgspec.field(default_factory=list)
    timeout: int | None = None
    timeout_unit: Literal["second", "minute", "hour", "day"] = "hour"


def fill_outputs(content: str, values: Mapping[str, Any]) -> str:
    """``{{#$output.name#}}`` placeholders replaced by the submitted values, in one pass (a submitted value that
    looks like a placeholder stays as it is)."""
    return OUTPUT_PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), content)


#: What a placeholder-shaped text that did not come from the form definition becomes: the same to read, but
#: a zero-width space after ``{{#`` keeps it from ever matching OUTPUT_PLACEHOLDER.
_INERT = "{{#\u200b$output."


def render_content(template: str, render: Callable[[str], str]) -> str:
    """The form definition with its variables rendered; only the definition's own ``{{#$output.x#}}``
    placeholders stay live. Placeholder-shaped text that a variable's value brings in (a run input, a model's
    answer) is made inert, so it is never expanded at submit nor shown as a field."""
    pieces = OUTPUT_PLACEHOLDER.split(template)
    out = []
    # split() alternates literal text and the captured placeholder names.
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append("{{#$output." + piece + "#}}")
        else:
            out.append(render(piece).replace("{{#$output.", _INERT))
    return "".join(out)


class HumanInputNode(Node):
    type = "human-input"
    performs_io: ClassVar[bool] = True
    branching: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        config: HumanInputConfig = convert(data, HumanInputConfig, self)
        names = [i.output_variable_name for i in config.inputs]
        for name in names:
            if not IDENTIFIER.match(name):
                raise self.fail(f"input name {name!r} must be an identifier of at most 30 characters")
        if len(set(names)) != len(names):
            raise self.fail("input names must be unique")
        ids = [a.id for a in config.user_actions]
        for action_id in ids:
            if not ACTION_ID.match(action_id):
                raise self.fail(f"action id {action_id!r} must be an identifier of at most 20 characters")
        if len(set(ids)) != len(ids):
            raise self.fail("action ids must be unique")
        if not ids:
            raise self.fail("a human-input node needs at least one user action")
        if config.timeout is not None and config.timeout <= 0:
            raise self.fail("timeout must be a positive integer")
        self.config = config

    @property
    def timeout_seconds(self) -> int | None:
        if self.config.timeout is None:
            return None
        return self.config.timeout * UNIT_SECONDS[self.config.timeout_unit]

    async def run(self, ctx: NodeContext) -> NodeResult:
        content = render_content(self.config.form_content, ctx.pool.render)
        defaults: dict[str, Any] = {}
        for form_input in self.config.inputs:
            default = form_input.default
            if default is None:
                continue
            if default.type == "variable" and default.selector:
                value = ctx.pool.get(default.selector)
                defaults[form_input.output_variable_name] = "" if value is None else str(value)
            elif default.value is not None:
                defaults[form_input.output_variable_name] = str(default.value)
        request = {
            "kind": PAUSE_KIND,
            "node_title": self.title,
            "form_content": content,
            "inputs": [msgspec.to_builtins(i) for i in self.config.inputs],
            "resolved_default_values": defaults,
            "user_actions": [msgspec.to_builtins(a) for a in self.config.user_actions],
            "delivery_methods": [msgspec.to_builtins(d) for d in self.config.delivery_methods if d.enabled],
            "timeout_seconds": self.timeout_seconds,
        }
        return NodeResult(inputs={"form_content": content}, pause=request)
