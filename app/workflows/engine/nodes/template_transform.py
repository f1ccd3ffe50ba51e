"""`template-transform`: renders a Jinja2 template over selected variables.

Like Dify: no autoescaping, missing variables render empty, output capped (``TEMPLATE_TRANSFORM_MAX_LENGTH``,
400,000 characters by default). The template is compiled at import without evaluating anything
(``engine.templating``). A *trivial* template (literal text and ``{{ name }}`` / ``{{ name.attr }}`` /
``{{ name[0] }}`` outputs, see ``templating.is_trivial``) renders in-process: it costs no more than its inputs'
size, and the node is then a pure node. Any other template
is hostile until proven otherwise: it renders in a confined child process through the ``templates`` port (time,
memory and output limits), so the node ``performs_io`` and the runner checkpoints around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import jinja2
import msgspec

from app.workflows.engine import templating
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

#: output caps when no port says otherwise (Dify's TEMPLATE_TRANSFORM_MAX_LENGTH; LLM Jinja2 prompts)
MAX_OUTPUT = 400_000
MAX_PROMPT_OUTPUT = 2_000_000

Purpose = Literal["transform", "prompt"]


class TemplatesPort(Protocol):
    """Renders templates that are not trivial, where a hostile one cannot stall or bloat the worker."""

    def max_output(self, purpose: Purpose) -> int:
        """The output cap (characters) for templates of this purpose, on either path."""
        ...

    async def render(self, source: str, variables: Mapping[str, Any], *, purpose: Purpose) -> str:
        """The rendered text; raises NodeRunError (``TemplateTooLarge``, ``SecurityError``, ...)."""
        ...


def max_output(ctx: NodeContext, purpose: Purpose) -> int:
    port: TemplatesPort | None = ctx.ports.templates
    if port is not None:
        return port.max_output(purpose)
    return MAX_PROMPT_OUTPUT if purpose == "prompt" else MAX_OUTPUT


class PreparedTemplate:
    """A compiled template and how it must be rendered."""

    def __init__(self, source: str, purpose: Purpose) -> None:
        self.source, self.purpose = source, purpose
        self.compiled, self.trivial = templating.prepare(source, purpose)

    async def render(self, ctx: NodeContext, variables: Mapping[str, Any]) -> str:
        """In-process when trivial, else through the ``templates`` port; NodeRunError on failure."""
        if self.trivial:
            try:
                return templating.render(self.compiled, variables, max_output=max_output(ctx, self.purpose))
            except templating.TemplateFailure as exc:
                raise NodeRunError(exc.message, exc.error_type) from None
        port: TemplatesPort | None = ctx.ports.templates
        if port is None:
            raise NodeRunError(
                "templates with logic render in the worker's sandbox, and none is configured", "TemplateError"
            )
        return await port.render(self.source, variables, purpose=self.purpose)


class TemplateVariable(msgspec.Struct, kw_only=True):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class TemplateTransformConfig(msgspec.Struct, kw_only=True):
    template: str = ""
    variables: list[TemplateVariable] = msgspec.field(default_factory=list)


class TemplateTransformNode(Node):
    type = "template-transform"

    def configure(self, data: Mapping[str, Any]) -> None:
        config: TemplateTransformConfig = convert(data, TemplateTransformConfig, self)
        for i, var in enumerate(config.variables):
            if not var.variable.isidentifier():
                raise self.fail(f"variables[{i}]: {var.variable!r} is not a valid template variable name")
        try:
            self.template = PreparedTemplate(config.template, "transform")
        except jinja2.TemplateSyntaxError as exc:
            raise self.fail(f"template syntax error at line {exc.lineno}: {exc.message}") from None
        self.config = config

    @property
    def performs_io(self) -> bool:  # type: ignore[override]  # read per node by the engine
        """Only a template that renders in the sandbox waits on the outside world."""
        return not self.template.trivial

    async def run(self, ctx: NodeContext) -> NodeResult:
        variables = {v.variable: ctx.pool.get(v.value_selector) for v in self.config.variables}
        text = await self.template.render(ctx, variables)
        return NodeResult(inputs=variables, outputs={"output": text})
