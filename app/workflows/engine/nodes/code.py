"""`code`: runs a DSL's ``main`` (python3 or javascript) through the code port, then validates what it returned.

Dify's contract (nodes spec 1): inputs are the ``variables`` looked up in the pool (missing ones are None);
python3 calls ``main(**inputs)``, javascript ``main(inputs)``; the result must be a JSON object. Strings that
look like scientific notation become floats (Dify's quirk, kept: a DSL can observe it). Every declared output
is then checked against the ``CODE_MAX_*`` limits with Dify's messages and error names
(``OutputValidationError``, ``DepthLimitError``, ``CodeNodeError``); sandbox failures are
``CodeExecutionError``. The engine's retry and error strategies apply as for any node.

Dify's accidents kept here: array[number] elements are not range/precision checked; a result or object
without declared children is checked generically and kept as returned (NUL characters included); an untyped
list whose first element is None is not checked at all. Fixed: paths in messages never start with a dot,
non-string elements of array[string] are refused with a clear message (0.1.2 crashed on them), and a list
of lists inside an untyped object is checked instead of crashing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

OUTPUT_TYPES = frozenset(
    (
        "string",
        "number",
        "boolean",
        "object",
        "array[string]",
        "array[number]",
        "array[object]",
        "array[boolean]",
    )
)
_SCIENTIFIC = re.compile(r"^-?\d+\.?\d*e[+-]\d+$", re.IGNORECASE)


class CodeLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The ``CODE_MAX_*`` settings (Dify's names and defaults)."""

    max_string_length: int = 400_000
    max_number: int | float = 9223372036854775807
    min_number: int | float = -9223372036854775807
    max_precision: int = 20
    max_depth: int = 5
    max_string_array_length: int = 30
    max_object_array_length: int = 30
    max_number_array_length: int = 1000


class CodePort(Protocol):
    """Runs code-node code in a confined child (the worker wires the sandbox)."""

    limits: CodeLimits

    async def run(self, language: str, code: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """The object ``main`` returned. Failures raise NodeRunError (``CodeExecutionError`` when the code
        or the sandbox failed, with Dify's message)."""
        ...


class CodeNodeError(ValueError):
    """A code node's result does not match its declared outputs."""


class OutputValidationError(CodeNodeError):
    """An output value breaks its declared type or a CODE_MAX_* limit."""


class DepthLimitError(CodeNodeError):
    """The result is nested deeper than CODE_MAX_DEPTH."""


class OutputSpec(msgspec.Struct, kw_only=True):
    type: str
    children: dict[str, OutputSpec] | None = None


class CodeVariable(msgspec.Struct, kw_only=True):
    variable: str
    value_selector: list[str] = msgspec.field(default_factory=list)


class CodeConfig(msgspec.Struct, kw_only=True):
    code_language: str = "python3"
    code: str = ""
    variables: list[CodeVariable] = msgspec.field(default_factory=list)
    outputs: dict[str, OutputSpec] = msgspec.field(default_factory=dict)


def _check_output_types(outputs: Mapping[str, OutputSpec], path: str = "outputs") -> None:
    for name, spec in outputs.items():
        if spec.type not in OUTPUT_TYPES:
            raise ValueError(f"{path}.{name}: invalid type for code output: {spec.type!r}")
        if spec.children:
            _check_output_types(spec.children, f"{path}.{name}.children")


class CodeNode(Node):
    type = "code"
    performs_io: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.config: CodeConfig = convert(
            {
                k: data[k]
                for k in ("code_language", "code", "variables", "outputs")
                if data.get(k) is not None
            },
            CodeConfig,
            self,
        )
        if self.config.code_language not in ("python3", "javascript"):
            raise self.fail(
                f"code_language {self.config.code_language!r} is not supported (python3, javascript)"
            )
        try:
            _check_output_types(self.config.outputs)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self.language: Literal["python3", "javascript"] = self.config.code_language  # type: ignore[assignment]

    async def run(self, ctx: NodeContext) -> NodeResult:
        inputs = {v.variable: ctx.pool.get(v.value_selector) for v in self.config.variables}
        port: CodePort | None = ctx.ports.code
        if port is None:
            raise NodeRunError("Code execution service is unavailable in this process", "CodeExecutionError")
        returned = await port.run(self.language, self.config.code, inputs)
        try:
            result = convert_scientific_notation(returned)
            outputs = OutputValidator(port.limits).transform(result, self.config.outputs)
        except CodeNodeError as exc:
            raise NodeRunError(str(exc), type(exc).__name__) from None
        except RecursionError:
            raise NodeRunError(
                f"Depth limit {port.limits.max_depth} reached, object too deep.", "DepthLimitError"
            ) from None
        return NodeResult(inputs=inputs, outputs=dict(outputs))


def convert_scientific_notation(value: Any) -> Any:
    """Dify's quirk: every string that looks like ``1.5e+10`` anywhere in the result becomes a float."""
    if isinstance(value, str):
        if _SCIENTIFIC.match(value):
            try:
                return float(value)
            except ValueError:
                return value
        return value
    if isinstance(value, Mapping):
        return {k: convert_scientific_notation(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert_scientific_notation(v) for v in value]
    return value


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class OutputValidator:
    """Dify's output checks (graphon's CodeNode._transform_result), with its messages."""

    def __init__(self, limits: CodeLimits) -> None:
        self.limits = limits

    def transform(
        self,
        result: Mapping[str, Any],
        schema: Mapping[str, OutputSpec] | None,
        prefix: str = "",
        depth: int = 1,
    ) -> Mapping[str, Any]:
        if depth > self.limits.max_depth:
            raise DepthLimitError(f"Depth limit {self.limits.max_depth} reached, object too deep.")
        if schema is None:
            for name, value in result.items():
                self._untyped(value, _path(prefix, name), depth)
            return result
        transformed: dict[str, Any] = {}
        for name, spec in schema.items():
            path = _path(prefix, name)
            if name not in result:
                raise OutputValidationError(f"Output {path} is missing.")
            transformed[name] = self._typed(result[name], spec, path, depth)
        if len(transformed) != len(result):
            raise CodeNodeError("Not all output parameters are validated.")
        return transformed

    # -- declared types ----------------------------------------------------------------------------------

    def _typed(self, value: Any, spec: OutputSpec, path: str, depth: int) -> Any:
        kind = spec.type
        if kind == "boolean":
            return value
        if kind == "string":
            if value is not None and not isinstance(value, str):
                raise OutputValidationError(
                    f"Output {path} must be a string, got {type(value).__name__} instead."
                )
            return self._string(value, path)
        if kind == "number":
            if value is not None and not isinstance(value, int | float):
                raise OutputValidationError(f"Output {path} is not a number, got {type(value)} instead.")
            checked = self._number(value, path)
            return int(checked) if isinstance(checked, bool) else checked
        if kind == "object":
            if value is None:
                return None
            if not isinstance(value, dict):
                raise OutputValidationError(f"Output {path} is not an object, got {type(value)} instead.")
            return self.transform(value, spec.children, path, depth + 1)
        if value is None:
            return None
        if not isinstance(value, list):
            raise OutputValidationError(f"Output {path} is not an array, got {type(value)} instead.")
        if kind == "array[number]":
            self._length(value, self.limits.max_number_array_length, path)
            for i, item in enumerate(value):
                if not isinstance(item, int | float):
                    raise OutputValidationError(
                        f"The element at index {i} of output variable `{path}` must be a number."
                    )
            return [int(v) if isinstance(v, bool) else v for v in value]
        if kind == "array[string]":
            self._length(value, self.limits.max_string_array_length, path)
            for i, item in enumerate(value):
                if item is not None and not isinstance(item, str):
                    raise OutputValidationError(
                        f"Output {path}[{i}] must be a string, got {type(item).__name__} instead."
                    )
            return [self._string(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind == "array[object]":
            self._length(value, self.limits.max_object_array_length, path)
            for i, item in enumerate(value):
                if item is not None and not isinstance(item, dict):
                    raise OutputValidationError(
                        f"Output {path}[{i}] is not an object, got {type(item)} instead at index {i}."
                    )
            return [
                None if item is None else self.transform(item, spec.children, f"{path}[{i}]", depth + 1)
                for i, item in enumerate(value)
            ]
        # array[boolean]: no length limit in Dify
        for i, item in enumerate(value):
            if item is not None and not isinstance(item, bool):
                raise OutputValidationError(f"Output {path}[{i}] is not a boolean, got {type(item)} instead.")
        return value

    def _length(self, value: list[Any], limit: int, path: str) -> None:
        if len(value) > limit:
            raise OutputValidationError(
                f"The length of output variable `{path}` must be less than {limit} elements."
            )

    def _string(self, value: str | None, path: str) -> str | None:
        if value is None:
            return None
        if len(value) > self.limits.max_string_length:
            raise OutputValidationError(
                f"The length of output variable `{path}` must be less than "
                f"{self.limits.max_string_length} characters"
            )
        return value.replace("\x00", "")

    def _number(self, value: int | float | None, path: str) -> int | float | None:
        if value is None:
            return None
        if value > self.limits.max_number or value < self.limits.min_number:
            raise OutputValidationError(
                f"Output variable `{path}` is out of range, it must be between "
                f"{self.limits.min_number} and {self.limits.max_number}."
            )
        if isinstance(value, float):
            exponent = Decimal(str(value)).normalize().as_tuple().exponent
            precision = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            if precision > self.limits.max_precision:
                raise OutputValidationError(
                    f"Output variable `{path}` has too high precision, it must be less than "
                    f"{self.limits.max_precision} digits."
                )
        return value

    # -- no declared type (object outputs without children) ----------------------------------------------

    def _untyped(self, value: Any, path: str, depth: int) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, dict):
            self.transform(value, None, path, depth + 1)
        elif isinstance(value, int | float):
            self._number(value, path)
        elif isinstance(value, str):
            self._string(value, path)
        elif isinstance(value, list):
            self._untyped_list(value, path, depth)
        else:
            raise OutputValidationError(f"Output {path} is not a valid type.")

    def _untyped_list(self, value: list[Any], path: str, depth: int) -> None:
        first = value[0] if value else None
        if first is None:
            return

        def all_are(kind: type | tuple[type, ...]) -> bool:
            return all(v is None or isinstance(v, kind) for v in value)

        if isinstance(first, int | float) and all_are((int, float)):
            for i, item in enumerate(value):
                self._number(item, f"{path}[{i}]")
        elif isinstance(first, str) and all_are(str):
            for i, item in enumerate(value):
                self._string(item, f"{path}[{i}]")
        elif isinstance(first, dict) and all_are(dict):
            for i, item in enumerate(value):
                if item is not None:
                    self.transform(item, None, f"{path}[{i}]", depth + 1)
        elif isinstance(first, list) and all_are(list):
            if depth + 1 > self.limits.max_depth:
                raise DepthLimitError(f"Depth limit {self.limits.max_depth} reached, object too deep.")
            for i, item in enumerate(value):
                if item is not None:
                    self._untyped_list(item, f"{path}[{i}]", depth + 1)
        else:
            raise OutputValidationError(
                f"Output {path} is not a valid array. make sure all elements are of the same type."
            )
