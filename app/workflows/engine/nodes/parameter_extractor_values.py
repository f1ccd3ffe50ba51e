"""`parameter-extractor`'s declared parameters: their JSON schema, and how the model's values are judged
(validation, which names ``__reason``) and cleaned (transformation, which decides the outputs).

Both follow Dify (graphon ``ParameterExtractorNode._validate_result`` / ``_transform_result``) rule for rule,
quirks included, because DSLs branch on ``__is_success`` and read the outputs:

- validation stops at the first problem: the object must have exactly as many keys as there are declared
  parameters (an omitted optional or an extra key fails, Dify issues #28232, #18774, #16633), required names
  must be present, every value must have its declared type (a missing optional reads as ``None`` and fails),
  a ``select`` value must be one of its options;
- transformation runs whatever validation said: numbers accept int, float, bool (as 0/1) and numeric strings;
  booleans accept bool and int; strings only str; arrays keep the elements of their element type; anything
  else, and every missing name, gets the type's default (``""``, ``0``, ``false``, ``[]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine.variables import segment_type

SCALAR_TYPES = ("string", "number", "boolean")
ARRAY_TYPES = ("array[string]", "array[number]", "array[object]", "array[boolean]")
#: Older DSL spellings: ``bool`` is ``boolean``; ``select`` is a string with ``options``.
LEGACY_TYPES = {"bool": "boolean", "select": "string"}
RESERVED_NAMES = ("__reason", "__is_success")
#: A value quoted in ``__reason`` is cut to this many characters.
MAX_QUOTED_VALUE = 1000

_UNSET = object()


class Parameter(msgspec.Struct, kw_only=True):
    name: str = ""
    type: str = "string"
    options: list[str] | None = None
    description: str = ""
    required: bool = False

    @property
    def element_type(self) -> str | None:
        return self.type[6:-1] if self.type.startswith("array[") else None


def check_parameter(parameter: Parameter, index: int) -> Parameter:
    """The parameter with its type normalised; ValueError names what is wrong."""
    if not parameter.name:
        raise ValueError(f"parameters[{index}]: name is required")
    if parameter.name in RESERVED_NAMES:
        raise ValueError(f"parameters[{index}]: __reason and __is_success are reserved names")
    kind = LEGACY_TYPES.get(parameter.type, parameter.type)
    if kind not in SCALAR_TYPES + ARRAY_TYPES:
        raise ValueError(
            f"parameters[{index}]: type {parameter.type!r} is not allowed in a parameter-extractor"
        )
    return msgspec.structs.replace(parameter, type=kind)


def json_schema(parameters: list[Parameter], descriptions: list[str] | None = None) -> dict[str, Any]:
    """The object schema handed to the model (Dify's ``get_parameter_json_schema``)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for i, parameter in enumerate(parameters):
        entry: dict[str, Any] = {"description": descriptions[i] if descriptions else parameter.description}
        if parameter.element_type is not None:
            entry["type"] = "array"
            entry["items"] = {"type": parameter.element_type}
        else:
            entry["type"] = parameter.type
        if parameter.options:
            entry["enum"] = parameter.options
        properties[parameter.name] = entry
        if parameter.required:
            required.append(parameter.name)
    return {"type": "object", "properties": properties, "required": required}


def default_result(parameters: list[Parameter]) -> dict[str, Any]:
    """What Dify starts from when nothing could be parsed: scalars at their defaults, arrays left out."""
    defaults = {"string": "", "number": 0, "boolean": False}
    return {p.name: defaults[p.type] for p in parameters if p.type in defaults}


def validation_error(parameters: list[Parameter], result: Mapping[str, Any]) -> str | None:
    """The first thing wrong with the model's object, in Dify's words; None when it is valid."""
    if len(parameters) != len(result):
        return "Invalid number of parameters"
    for parameter in parameters:
        if parameter.required and parameter.name not in result:
            return f"Parameter {parameter.name} is required"
        value = result.get(parameter.name)
        if not _is_valid(parameter.type, value):
            quoted = str(value)
            if len(quoted) > MAX_QUOTED_VALUE:
                quoted = quoted[:MAX_QUOTED_VALUE] + "..."
            return (
                f"Invalid value for parameter {parameter.name}, expected segment type: {parameter.type}, "
                f"actual_type: {segment_type(value)}, python_type: {type(value)}, value: {quoted}"
            )
        if parameter.type == "string" and parameter.options and value not in parameter.options:
            return f"Invalid `select` value for parameter {parameter.name}"
    return None


def transform(parameters: list[Parameter], result: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs: every declared parameter, cleaned to its type or at its default."""
    outputs: dict[str, Any] = {}
    for parameter in parameters:
        value = result.get(parameter.name, _UNSET)
        if value is not _UNSET:
            value = _transform(parameter, value)
        outputs[parameter.name] = _default(parameter.type) if value is _UNSET else value
    return outputs


def _default(kind: str) -> Any:
    if kind.startswith("array["):
        return []
    return {"string": "", "number": 0, "boolean": False}[kind]


def _transform(parameter: Parameter, value: Any) -> Any:
    element = parameter.element_type
    if element is None:
        return _ITEM_TRANSFORMS[parameter.type](value)
    if not isinstance(value, list):
        return _UNSET
    transform_item = _ARRAY_ITEM_TRANSFORMS[element]
    items = (transform_item(item) for item in value)
    return [item for item in items if item is not _UNSET]


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            return _UNSET
    if isinstance(value, float) and not math.isfinite(value):
        return _UNSET  # NaN/Infinity have no JSON spelling (Dify keeps them)
    return value if isinstance(value, int | float) else _UNSET


def _boolean(value: Any) -> Any:
    return bool(value) if isinstance(value, bool | int) else _UNSET


def _strict_boolean(value: Any) -> Any:
    return value if isinstance(value, bool) else _UNSET


def _string(value: Any) -> Any:
    return value if isinstance(value, str) else _UNSET


def _object(value: Any) -> Any:
    return value if isinstance(value, dict) else _UNSET


_ITEM_TRANSFORMS = {"number": _number, "boolean": _boolean, "string": _string}
_ARRAY_ITEM_TRANSFORMS = {"number": _number, "string": _string, "object": _object, "boolean": _strict_boolean}


def _is_valid(kind: str, value: Any) -> bool:
    """Dify's ``SegmentType.is_valid`` with every array element checked (bool counts as a number)."""
    if kind.startswith("array["):
        element = kind[6:-1]
        return isinstance(value, list) and all(_is_valid(element, item) for item in value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, dict)  # object
