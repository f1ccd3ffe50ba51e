"""Dify's comparison operators, shared by if-else (and later loop) conditions and list-operator filters.

Values in the pool are plain JSON, so types are read off the values themselves: a number is an int or float
(never a bool), a file is a mapping shaped like a Dify file (``type``, ``transfer_method``...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.variables import VariablePool

#: strings (and arrays for contains), values against arrays, numbers, presence: Dify's operator names
TEXT_OPERATORS = ("contains", "not contains", "start with", "end with", "is", "is not", "empty", "not empty")
ARRAY_OPERATORS = ("in", "not in", "all of")
NUMBER_OPERATORS = ("=", "≠", ">", "<", "≥", "≤")
PRESENCE_OPERATORS = ("null", "not null", "exists", "not exists")
OPERATORS = frozenset((*TEXT_OPERATORS, *ARRAY_OPERATORS, *NUMBER_OPERATORS, *PRESENCE_OPERATORS))
_VALUELESS = frozenset(("empty", "not empty", *PRESENCE_OPERATORS))
ALIASES = {"!=": "≠", ">=": "≥", "<=": "≤"}
FILE_LIST_OPERATORS = frozenset({"contains", "not contains", "all of"})
FILE_KEYS = frozenset(
    {"type", "size", "name", "mime_type", "transfer_method", "url", "extension", "related_id"}
)


def canonical(operator: str) -> str | None:
    """The operator as Dify spells it (``>=`` becomes ``≥``), or None when unknown."""
    operator = ALIASES.get(operator, operator)
    return operator if operator in OPERATORS else None


class SubCondition(msgspec.Struct, kw_only=True):
    key: str = ""
    comparison_operator: str = "contains"
    value: Any = None


class SubVariableCondition(msgspec.Struct, kw_only=True):
    logical_operator: str | None = "and"
    conditions: list[SubCondition] = msgspec.field(default_factory=list)


class Condition(msgspec.Struct, kw_only=True):
    variable_selector: list[str]
    comparison_operator: str
    value: Any = None
    var_type: str | None = msgspec.field(default=None, name="varType")
    sub_variable_condition: SubVariableCondition | None = None


def check_conditions(conditions: Sequence[Condition], where: str) -> str | None:
    """Normalise operators in place; returns what is wrong (for a config error) or None."""
    for i, cond in enumerate(conditions):
        if len(cond.variable_selector) < 2:
            return f"{where}.conditions[{i}]: variable_selector needs a node and a variable"
        op = canonical(cond.comparison_operator)
        if op is None:
            return f"{where}.conditions[{i}]: unknown comparison_operator {cond.comparison_operator!r}"
        cond.comparison_operator = op
        sub = cond.sub_variable_condition
        if sub is None:
            continue
        if (sub.logical_operator or "and") not in ("and", "or"):
            return f"{where}.conditions[{i}]: sub_variable_condition.logical_operator must be and/or"
        for j, sc in enumerate(sub.conditions):
            sub_op = canonical(sc.comparison_operator)
            if sub_op is None:
                return f"{where}.conditions[{i}].sub_variable_condition[{j}]: unknown operator {sc.comparison_operator!r}"
            if sc.key not in FILE_KEYS:
                return (
                    f"{where}.conditions[{i}].sub_variable_condition[{j}]: unknown file attribute {sc.key!r}"
                )
            sc.comparison_operator = sub_op
    return None


class Check(NamedTuple):
    inputs: list[dict[str, Any]]
    results: list[bool]
    final: bool


def evaluate(pool: VariablePool, conditions: Sequence[Condition], logical_operator: str | None) -> Check:
    """Evaluate conditions in order with Dify's short-circuit: ``and`` stops at the first false, ``or`` at the first true."""
    use_or = logical_operator == "or"
    inputs: list[dict[str, Any]] = []
    results: list[bool] = []
    for cond in conditions:
        op = cond.comparison_operator
        if op in ("exists", "not exists"):  # a missing variable simply does not exist
            result = compare(op, pool.get(cond.variable_selector), None)
        else:
            if not pool.has(cond.variable_selector):
                raise NodeRunError(f"Variable {'.'.join(cond.variable_selector)} not found")
            actual = pool.get(cond.variable_selector)
            if op in FILE_LIST_OPERATORS and _is_file_list(actual, cond.var_type):
                if cond.sub_variable_condition is None:
                    raise NodeRunError(f"'{op}' on a file list needs a sub-condition on a file attribute")
                sub = cond.sub_variable_condition
                result = check_files(actual, sub.conditions, sub.logical_operator)
                inputs.append({"actual_value": actual, "expected_value": None, "comparison_operator": op})
            else:
                expected = expected_value(pool, cond.value, actual, op)
                inputs.append({"actual_value": actual, "expected_value": expected, "comparison_operator": op})
                result = compare(op, actual, expected)
        results.append(result)
        if result is use_or:
            return Check(inputs, results, result)
    return Check(inputs, results, all(results) if not use_or else any(results))


def expected_value(pool: VariablePool, value: Any, actual: Any, operator: str) -> Any:
    """The condition's value with ``{{#node.var#}}`` rendered; booleans are read as booleans for boolean variables."""
    if isinstance(value, str):
        value = pool.render(value)
    if value is None or operator in _VALUELESS:
        return value
    if isinstance(actual, bool) or (
        isinstance(actual, list) and actual and all(isinstance(x, bool) for x in actual)
    ):
        return [to_bool(v) for v in value] if isinstance(value, list) else to_bool(value)
    return value


def compare(operator: str, actual: Any, expected: Any) -> bool:
    """One Dify comparison of ``actual`` (the variable) against ``expected`` (the condition's value)."""
    op = canonical(operator)
    if op in ("contains", "not contains"):
        if not actual:
            return op == "not contains"
        if isinstance(actual, str):
            found = _text(expected) in actual
        elif isinstance(actual, list):
            found = _member(expected, actual)
        else:
            raise NodeRunError(f"'{op}' needs a string or an array, got {_kind(actual)}")
        return found if op == "contains" else not found
    if op in ("start with", "end with"):
        if not actual:
            return False
        if not isinstance(actual, str):
            raise NodeRunError(f"'{op}' needs a string, got {_kind(actual)}")
        return actual.startswith(_text(expected)) if op == "start with" else actual.endswith(_text(expected))
    if op in ("is", "is not"):
        if actual is None:
            return False
        if not isinstance(actual, str | bool):
            raise NodeRunError(f"'{op}' needs a string or a boolean, got {_kind(actual)}")
        return (actual == expected) is (op == "is")
    if op in ("=", "≠"):
        if actual is None:
            return False
        if isinstance(actual, bool):
            equal = actual == to_bool(expected)
        elif isinstance(actual, int | float):
            equal = actual == to_number(expected)
        else:
            raise NodeRunError(f"'{op}' needs a number or a boolean, got {_kind(actual)}")
        return equal is (op == "=")
    if op in (">", "<", "≥", "≤"):
        if actual is None:
            return False
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            raise NodeRunError(f"'{op}' needs a number, got {_kind(actual)}")
        number = to_number(expected)
        return {">": actual > number, "<": actual < number, "≥": actual >= number, "≤": actual <= number}[op]
    if op in ("in", "not in"):
        if not actual:
            return op == "not in"
        if not isinstance(expected, list):
            raise NodeRunError(f"'{op}' needs an array of values to compare with")
        return (actual in expected) is (op == "in")
    if op == "all of":
        if not actual:
            return False
        if not isinstance(expected, list):
            raise NodeRunError("'all of' needs an array of values to compare with")
        if not isinstance(actual, list | str):
            return False
        return all(
            _member(item, actual) if isinstance(actual, list) else _text(item) in actual for item in expected
        )
    if op in ("empty", "not empty"):
        return (not actual) is (op == "empty")
    if op in ("null", "not exists"):
        return actual is None
    if op in ("not null", "exists"):
        return actual is not None
    raise NodeRunError(f"unsupported comparison operator {operator!r}")


def filter_match(operator: str, item: Any, expected: Any) -> bool:
    """A list-operator filter on one element (Dify's filter semantics differ a little from if-else's)."""
    op = canonical(operator) or operator
    if isinstance(item, str):
        if op in ("in", "not in"):
            inside = item in (expected if isinstance(expected, list) else _text(expected))
            return inside is (op == "in")
        if op in ("contains", "not contains"):
            return (_text(expected) in item) is (op == "contains")
        if op in ("empty", "not empty"):
            return (item == "") is (op == "empty")
        if op == "start with":
            return item.startswith(_text(expected))
        if op == "end with":
            return item.endswith(_text(expected))
        if op in ("is", "is not"):
            return (item == _text(expected)) is (op == "is")
        raise NodeRunError(f"filter '{op}' does not apply to strings")
    if isinstance(item, bool):
        if op not in ("is", "is not"):
            raise NodeRunError(f"filter '{op}' does not apply to booleans")
        return compare(op, item, to_bool(expected))
    if isinstance(item, int | float):
        if op not in ("=", "≠", ">", "<", "≥", "≤"):
            raise NodeRunError(f"filter '{op}' does not apply to numbers")
        return compare(op, item, expected)
    raise NodeRunError(f"cannot filter {_kind(item)} elements with '{op}'")


def check_files(files: list[Any], conditions: Sequence[SubCondition], logical_operator: str | None) -> bool:
    """Sub-conditions on a file list: each holds for any file (for ``not ...`` operators: for every file)."""
    results: list[bool] = []
    for cond in conditions:
        values = [file_attr(f, cond.key) for f in files]
        expected = cond.value
        if cond.key == "extension":
            expected = _dotted(_text(expected))
            values = [_dotted(v) if isinstance(v, str) else v for v in values]
        per_file = [compare(cond.comparison_operator, v, expected) for v in values]
        results.append(all(per_file) if "not" in cond.comparison_operator else any(per_file))
    return all(results) if logical_operator != "or" else any(results)


def is_file(value: Any) -> bool:
    return isinstance(value, Mapping) and (
        value.get("dify_model_identity") == "__dify__file__"
        or ("transfer_method" in value and "type" in value)
    )


def file_attr(file: Any, key: str) -> Any:
    """A Dify file attribute (``name``, ``size``, ``type``, ``extension``...) of a file held as a mapping."""
    if not isinstance(file, Mapping):
        raise NodeRunError(f"expected a file, got {_kind(file)}")
    if key == "name":
        return file.get("filename", file.get("name"))
    if key == "url":
        return file.get("remote_url") or file.get("url")
    if key not in FILE_KEYS:
        raise NodeRunError(f"unknown file attribute {key!r}")
    return file.get(key)


def to_number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            return (
                int(number)
                if number.is_integer() and "." not in value and "e" not in value.lower()
                else number
            )
    raise NodeRunError(f"cannot compare with {value!r}: not a number")


def to_bool(value: Any) -> bool:
    """Dify reads a boolean condition value as JSON: ``true``/``false``/``1``/``0``."""
    if isinstance(value, bool | int):
        return bool(value)
    if isinstance(value, str):
        try:
            loaded = json.loads(value.strip().lower())
        except ValueError:
            loaded = None
        if isinstance(loaded, bool | int):
            return bool(loaded)
    raise NodeRunError(f"cannot compare with {value!r}: not a boolean")


def _is_file_list(value: Any, var_type: str | None) -> bool:
    return isinstance(value, list) and (
        var_type == "array[file]" or (bool(value) and all(map(is_file, value)))
    )


def _member(expected: Any, values: list[Any]) -> bool:
    if expected in values:
        return True
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and isinstance(expected, str):
        try:
            return to_number(expected) in numbers
        except NodeRunError:
            return False
    return False


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise NodeRunError(f"cannot compare with {value!r}: not a string")


def _dotted(value: str) -> str:
    return value if not value or value.startswith(".") else f".{value}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
