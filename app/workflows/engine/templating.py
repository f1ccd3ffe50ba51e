"""Jinja2 for tenants' templates (template-transform, LLM prompts): compiled without evaluating anything,
rendered with bounds, and a test for the templates that are cheap enough to render anywhere.

Compiling evaluates nothing. Stock Jinja folds constant expressions while it compiles (``{{ "a"|center(400000000)
}}`` allocates 400 MB at DSL import, in the API process): here the optimizer is off, output nodes are never
turned into constants, and an ``{% autoescape %}`` value must be a literal. A template longer than
``MAX_TEMPLATE_LENGTH`` characters is refused. So a compile check costs time and memory in proportion to the
template's length, whatever it says.

Rendering is bounded (``template_bounds``): ``range`` and loops are budgeted, filters, string methods and
operators that can allocate a lot from a small input check their result's size first, ``~`` too, ``lipsum`` is
gone, and the output is capped (``max_output``; Dify's ``TEMPLATE_TRANSFORM_MAX_LENGTH``).

**Trivial templates** (:func:`is_trivial`): literal text and outputs of a variable, optionally followed by
attribute lookups and subscripts by a literal (``{{ name }}``, ``{{ name.attr }}``, ``{{ rows[0].content }}``,
``{{ data["key"] }}``), nothing else — no filter, call, test, operator, slice, computed subscript, other
literal, ``{% %}`` statement. Rendering one costs time and memory in proportion to its length and its inputs'
sizes (each output is a few sandboxed O(1) lookups and ``str()`` of a value), so it may render in-process, on
the event loop. Every other template renders in a confined child process (``app.workflows.templates``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.lexer import TokenStream
from jinja2.sandbox import SandboxedEnvironment, SecurityError, modifies_known_mutable
from jinja2.visitor import NodeTransformer

from app.workflows.engine import template_bounds as bounds
from app.workflows.engine.template_bounds import TemplateTooLarge

__all__ = ["TemplateFailure", "TemplateTooLarge", "is_trivial", "prepare", "render"]

#: longest template source accepted (characters), and most tokens (each literal text run, tag delimiter, name,
#: operator or literal is one): compiling costs ~0.1 ms and ~10 KB per token, in the API process at DSL import
MAX_TEMPLATE_LENGTH = 200_000
MAX_TEMPLATE_TOKENS = 10_000
#: values may grow to 4x the output cap, or 2x the inputs' size up to this many characters (a template that
#: slices a big input needs room for the input's transformations)
MAX_INPUT_ALLOWANCE = 32_000_000

Kind = Literal["transform", "prompt"]


class TemplateFailure(Exception):
    """A template could not be rendered; ``message`` is for the DSL author, ``error_type`` for the node."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.message, self.error_type = message, error_type


class _NoFolding(CodeGenerator):
    """Jinja's code generator, minus compile-time evaluation of output expressions."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return str(node.as_const(frame.eval_ctx))


class BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the bounds of ``template_bounds``; ``immutable`` forbids changing lists and dicts
    (LLM prompts, as Dify's ``ImmutableSandboxedEnvironment``)."""

    code_generator_class = _NoFolding
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, immutable: bool, keep_trailing_newline: bool) -> None:
        super().__init__(autoescape=False, optimized=False, keep_trailing_newline=keep_trailing_newline)
        self.immutable = immutable
        self.globals.pop("lipsum", None)
        self.globals["range"] = bounds.bounded_range
        self.filters = {name: bounds.bound_filter(name, f) for name, f in self.filters.items()}
        self.filters["sluice_loop"] = bounds.loop
        self.filters["sluice_concat"] = bounds.concat

    def _tokenize(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> TokenStream:
        raw = self.lexer.tokeniter(source, name, filename, state)
        return TokenStream(self.lexer.wrap(_counted(raw), name, filename), name, filename)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_TEMPLATE_LENGTH:
            raise jinja2.TemplateSyntaxError(
                f"the template is longer than {MAX_TEMPLATE_LENGTH:,} characters", 1, name, filename
            )
        tree = super()._parse(source, name, filename)
        _Bounder().visit(tree)
        return tree

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not (self.immutable and modifies_known_mutable(obj, attr))

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        bounds.binop(operator, left, right)
        return bounds.check_result(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            mapping = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            bounds.check(bounds.format_size(text, () if is_map else args, mapping), "the formatted string")
            return bounds.check_result(wrapped(*args, **kwargs))

        return bounded

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        args = bounds.method_call(__obj, args, kwargs)
        return bounds.check_result(super().call(__context, __obj, *args, **kwargs))


def _counted(tokens: Iterator[tuple[int, str, str]]) -> Iterator[tuple[int, str, str]]:
    for count, token in enumerate(tokens):
        if count >= MAX_TEMPLATE_TOKENS:
            raise jinja2.TemplateSyntaxError(
                f"the template has more than {MAX_TEMPLATE_TOKENS:,} tokens (tags, names, operators, literals)",
                token[0],
            )
        yield token


class _Bounder(NodeTransformer):
    """Loops count their iterations, ``~`` checks its size, ``{% autoescape %}`` takes only a literal."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "sluice_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.Tuple(list(node.nodes), "load", lineno=node.lineno)
        return nodes.Filter(parts, "sluice_concat", [], [], None, None, lineno=node.lineno)

    def visit_EvalContextModifier(self, node: nodes.EvalContextModifier) -> nodes.Node:
        for option in node.options:
            if not isinstance(option.value, nodes.Const):
                raise jinja2.TemplateSyntaxError("autoescape takes a literal value here", node.lineno)
        self.generic_visit(node)
        return node

    visit_ScopedEvalContextModifier = visit_EvalContextModifier


@functools.cache
def environment(kind: Kind) -> BoundedEnvironment:
    """``transform``: template-transform (lists may be changed, as in Dify's sandbox); ``prompt``: LLM Jinja2
    prompts (immutable, trailing newline kept)."""
    if kind == "prompt":
        return BoundedEnvironment(immutable=True, keep_trailing_newline=True)
    return BoundedEnvironment(immutable=False, keep_trailing_newline=False)


def prepare(source: str, kind: Kind) -> tuple[jinja2.Template, bool]:
    """Compile only (nothing is evaluated) and say whether the template is trivial; raises
    ``jinja2.TemplateSyntaxError`` (with a line number where Jinja knows one)."""
    env = environment(kind)
    try:
        tree = env.parse(source)
        template = env.template_class.from_code(env, env.compile(tree), env.make_globals(None), None)
    except jinja2.TemplateSyntaxError:
        raise
    except (RecursionError, MemoryError, SyntaxError, ValueError) as exc:
        raise jinja2.TemplateSyntaxError(
            f"the template cannot be compiled ({type(exc).__name__})", 1
        ) from None
    return template, is_trivial(tree)


def is_trivial(tree: nodes.Template) -> bool:
    """True when the template is only literal text and ``{{ name }}`` / ``{{ name.attr }}`` / ``{{ name[0] }}``
    outputs (see the module's docstring)."""
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return False
        for child in statement.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            while isinstance(child, nodes.Getattr) or (
                isinstance(child, nodes.Getitem)
                and isinstance(child.arg, nodes.Const)
                and type(child.arg.value) in (int, str)
            ):
                child = child.node
            if not (isinstance(child, nodes.Name) and child.ctx == "load"):
                return False
    return True


def render(template: jinja2.Template, variables: Mapping[str, Any], *, max_output: int) -> str:
    """Render with the bounds in place; :class:`TemplateFailure` with a readable reason when it fails."""
    inputs = bounds.approx_len(variables, limit=MAX_INPUT_ALLOWANCE, max_items=10_000_000)
    max_value = max(4 * max_output, 2 * min(inputs, MAX_INPUT_ALLOWANCE))
    token = bounds.start(max_value)
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > max_output:
                raise TemplateTooLarge(f"Output length exceeds {max_output} characters")
            parts.append(chunk)
    except TemplateTooLarge as exc:
        raise TemplateFailure(str(exc), "TemplateTooLarge") from None
    except SecurityError as exc:
        raise TemplateFailure(f"template refused: {exc}", "SecurityError") from None
    except jinja2.TemplateError as exc:
        raise TemplateFailure(f"template error: {exc.message or exc}", type(exc).__name__) from None
    except MemoryError:
        raise TemplateFailure("template error: out of memory", "TemplateTooLarge") from None
    except Exception as exc:  # expressions raise whatever Python raises (TypeError, ZeroDivisionError...)
        raise TemplateFailure(f"template error: {type(exc).__name__}: {exc}", "TemplateError") from None
    finally:
        bounds.finish(token)
    return "".join(parts)
