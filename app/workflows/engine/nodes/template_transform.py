"""`template-transform`: renders a Jinja2 template over selected variables, in Jinja's sandbox.

Like Dify: no autoescaping, missing variables render empty, output capped at ``MAX_OUTPUT`` characters. The
sandbox refuses unsafe attributes (``__class__``...) outright, and budgets ``range`` and ``*``/``**`` so
that a template cannot loop or allocate without bound. Rendering runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
from collections.abc import Mapping
from typing import Any, NoReturn

import jinja2
import msgspec
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

MAX_OUTPUT = 400_000
#: total length of all ``range(...)`` calls in one render (nested loops multiply quickly)
MAX_RANGE_TOTAL = 1_000_000
#: largest exponent ``**`` accepts
MAX_EXPONENT = 1_000
#: largest integer (in bits) ``**`` may produce
MAX_POWER_BITS = 100_000

_range_left: contextvars.ContextVar[list[int]] = contextvars.ContextVar("template_range_left")


class TemplateTooLarge(Exception):
    """The template's output or loops exceed their limits."""


def _budgeted_range(*args: int) -> range:
    rng = range(*args)
    left = _range_left.get([MAX_RANGE_TOTAL])
    left[0] -= len(rng)
    if left[0] < 0:
        raise TemplateTooLarge(f"loops exceed {MAX_RANGE_TOTAL:,} iterations in total")
    return rng


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise TemplateTooLarge(f"exponent {right} is larger than {MAX_EXPONENT}")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() * right > MAX_POWER_BITS
            ):
                raise TemplateTooLarge(f"{left} ** {right} is too large a number")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(count, int)
                and len(seq) * count > MAX_OUTPUT
            ):
                raise TemplateTooLarge(f"repeating a sequence beyond {MAX_OUTPUT:,} items")
        return operator.mul(left, right)


_ENV = _Sandbox(autoescape=False)
_ENV.globals["range"] = _budgeted_range


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
            self.compiled = _ENV.from_string(config.template)
        except jinja2.TemplateSyntaxError as exc:
            raise self.fail(f"template syntax error at line {exc.lineno}: {exc.message}") from None
        self.config = config

    async def run(self, ctx: NodeContext) -> NodeResult:
        variables = {v.variable: ctx.pool.get(v.value_selector) for v in self.config.variables}
        text = await asyncio.to_thread(render, self.compiled, variables)
        return NodeResult(inputs=variables, outputs={"output": text})


def render(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render with the budgets in place; NodeRunError with a readable reason when it fails."""
    _range_left.set([MAX_RANGE_TOTAL])
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateTooLarge(f"Output length exceeds {MAX_OUTPUT} characters")
            parts.append(chunk)
    except TemplateTooLarge as exc:
        raise NodeRunError(str(exc), "TemplateTooLarge") from None
    except SecurityError as exc:
        raise NodeRunError(f"template refused: {exc}", "SecurityError") from None
    except jinja2.TemplateError as exc:
        raise NodeRunError(f"template error: {exc.message or exc}", type(exc).__name__) from None
    except Exception as exc:  # expressions raise whatever Python raises (TypeError, ZeroDivisionError...)
        raise NodeRunError(f"template error: {type(exc).__name__}: {exc}", "TemplateError") from None
    return "".join(parts)
