"""The `code` node's contract and Dify's output validation, with a code port that returns canned results.

One test per CODE_MAX_* limit (Dify once swapped two of them: issue 7688), every rule of spec 1.4, the
scientific-notation quirk, error names, config errors and the engine's error strategies. The sandbox itself is
tested in tests/sandbox; a real run through it is in tests/workflows/test_code_node.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from app.workflows.engine.errors import GraphError, NodeConfigError, NodeRunError
from app.workflows.engine.nodes.base import NodeResult, Ports
from app.workflows.engine.nodes.code import CodeLimits, OutputValidator, convert_scientific_notation
from tests.workflows.engine.helpers import edge, graph, node, run_graph


class CannedCode:
    """A CodePort that returns what the test says and remembers what it was asked."""

    def __init__(
        self, result: Any = None, *, error: NodeRunError | None = None, limits: CodeLimits | None = None
    ):
        self.result, self.error = result, error
        self.limits = limits or CodeLimits()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def run(self, language: str, code: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append((language, code, dict(inputs)))
        if self.error is not None:
            raise self.error
        return self.result


def code_node(outputs: dict[str, Any], **data: Any) -> dict[str, Any]:
    return node(
        "code",
        "code",
        code_language=data.pop("code_language", "python3"),
        code=data.pop("code", "def main(a):\n    return {}\n"),
        variables=data.pop("variables", [{"variable": "a", "value_selector": ["start", "a"]}]),
        outputs=outputs,
        **data,
    )


def flow(code: dict[str, Any], *, fail_branch: bool = False) -> Any:
    nodes = [
        node("start", "start", variables=[{"variable": "a", "type": "text-input", "required": False}]),
        code,
        node("end", "end", outputs=[]),
    ]
    edges = [edge("start", "code"), edge("code", "end")]
    if fail_branch:
        nodes.append(
            node("sorry", "end", outputs=[{"variable": "e", "value_selector": ["code", "error_type"]}])
        )
        edges.append(edge("code", "sorry", "fail-branch"))
    return graph(nodes, edges)


async def run_code_node(
    outputs: dict[str, Any], result: Any, limits: CodeLimits | None = None, **data: Any
) -> tuple[NodeResult | None, str | None, str | None]:
    port = CannedCode(result, limits=limits)
    _, recorder, _ = await run_graph(flow(code_node(outputs, **data)), {"a": "x"}, ports=Ports(code=port))
    run = next(r for r in recorder.finished if r.node.id == "code")
    return run.result, run.error, run.error_type


def out(kind: str, children: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "children": children}


async def test_inputs_reach_the_port_and_outputs_the_pool() -> None:
    port = CannedCode({"result": "xy", "n": 2})
    outcome, recorder, _ = await run_graph(
        flow(
            code_node(
                {"result": out("string"), "n": out("number")},
                variables=[
                    {"variable": "a", "value_selector": ["start", "a"]},
                    {"variable": "missing", "value_selector": ["nope", "x"]},
                ],
            )
        ),
        {"a": "x"},
        ports=Ports(code=port),
    )
    assert outcome.status == "succeeded"
    assert port.calls == [("python3", "def main(a):\n    return {}\n", {"a": "x", "missing": None})]
    result = recorder.finished[1].result
    assert result is not None
    assert result.outputs == {"result": "xy", "n": 2}
    assert result.inputs == {"a": "x", "missing": None}


async def test_sandbox_failures_are_code_execution_errors_and_follow_the_error_strategy() -> None:
    failure = NodeRunError("process exited with code 1\nValueError: x\n", "CodeExecutionError")
    port = CannedCode(error=failure)
    outcome, recorder, _ = await run_graph(
        flow(code_node({"r": out("string")}, error_strategy="fail-branch"), fail_branch=True),
        {"a": "x"},
        ports=Ports(code=port),
    )
    assert outcome.status == "partial-succeeded"
    assert outcome.outputs == {"e": "CodeExecutionError"}
    assert recorder.status("code") == "exception"
    outcome, _, _ = await run_graph(flow(code_node({"r": out("string")})), {"a": "x"}, ports=Ports(code=port))
    assert outcome.status == "failed"
    assert "process exited with code 1" in (outcome.error or "")


async def test_retries_run_the_code_again() -> None:
    """Dify's DSL spells the switch ``retry_enabled``."""
    port = CannedCode(error=NodeRunError("boom", "CodeExecutionError"))
    retry = {"retry_enabled": True, "max_retries": 2, "retry_interval": 1}
    await run_graph(
        flow(code_node({"r": out("string")}, retry_config=retry)), {"a": "x"}, ports=Ports(code=port)
    )
    assert len(port.calls) == 3


async def test_without_a_port_the_node_fails_clearly() -> None:
    outcome, _, _ = await run_graph(flow(code_node({"r": out("string")})), {"a": "x"}, ports=Ports())
    assert outcome.status == "failed"
    assert "Code execution service is unavailable" in (outcome.error or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"code_language": "jinja2"}, "code_language 'jinja2' is not supported"),
        ({"outputs": {"f": out("file")}}, "invalid type for code output: 'file'"),
        ({"outputs": {"o": out("object", {"x": out("array[file]")})}}, "outputs.o.children.x"),
        ({"variables": "nope"}, "variables"),
    ],
)
async def test_bad_config_is_refused_at_import(data: dict[str, Any], message: str) -> None:
    outputs = data.pop("outputs", {"r": out("string")})
    with pytest.raises((NodeConfigError, GraphError), match=message):
        await run_graph(flow(code_node(outputs, **data)), ports=Ports(code=CannedCode({})))


# -- one test per limit name --------------------------------------------------------------------------------


async def test_code_max_string_length() -> None:
    limits = CodeLimits(max_string_length=5)
    ok, _, _ = await run_code_node({"s": out("string")}, {"s": "12345"}, limits)
    assert ok is not None
    assert ok.outputs == {"s": "12345"}
    _, error, kind = await run_code_node({"s": out("string")}, {"s": "123456"}, limits)
    assert error == "The length of output variable `s` must be less than 5 characters"
    assert kind == "OutputValidationError"


async def test_code_max_number_and_code_min_number() -> None:
    limits = CodeLimits(max_number=10, min_number=-10)
    _, error, kind = await run_code_node({"n": out("number")}, {"n": 11}, limits)
    assert error == "Output variable `n` is out of range, it must be between -10 and 10."
    assert kind == "OutputValidationError"
    _, error, _ = await run_code_node({"n": out("number")}, {"n": -10.5}, limits)
    assert error == "Output variable `n` is out of range, it must be between -10 and 10."
    ok, _, _ = await run_code_node({"n": out("number")}, {"n": -10}, limits)
    assert ok is not None
    assert ok.outputs == {"n": -10}


async def test_code_max_precision() -> None:
    limits = CodeLimits(max_precision=3)
    ok, _, _ = await run_code_node({"n": out("number")}, {"n": 1.125}, limits)
    assert ok is not None
    _, error, kind = await run_code_node({"n": out("number")}, {"n": 1.0625}, limits)
    assert error == "Output variable `n` has too high precision, it must be less than 3 digits."
    assert kind == "OutputValidationError"


async def test_code_max_depth() -> None:
    limits = CodeLimits(max_depth=3)
    ok, _, _ = await run_code_node({"o": out("object")}, {"o": {"a": {"b": 1}}}, limits)
    assert ok is not None
    assert ok.outputs == {"o": {"a": {"b": 1}}}
    _, error, kind = await run_code_node({"o": out("object")}, {"o": {"a": {"b": {"c": 1}}}}, limits)
    assert (error, kind) == ("Depth limit 3 reached, object too deep.", "DepthLimitError")


async def test_code_max_string_array_length() -> None:
    limits = CodeLimits(max_string_array_length=2)
    ok, _, _ = await run_code_node({"a": out("array[string]")}, {"a": ["x", None]}, limits)
    assert ok is not None
    assert ok.outputs == {"a": ["x", None]}
    _, error, kind = await run_code_node({"a": out("array[string]")}, {"a": ["x", "y", "z"]}, limits)
    assert error == "The length of output variable `a` must be less than 2 elements."
    assert kind == "OutputValidationError"


async def test_code_max_object_array_length() -> None:
    limits = CodeLimits(max_object_array_length=1)
    _, error, _ = await run_code_node({"a": out("array[object]")}, {"a": [{}, {}]}, limits)
    assert error == "The length of output variable `a` must be less than 1 elements."


async def test_code_max_number_array_length() -> None:
    limits = CodeLimits(max_number_array_length=2)
    _, error, _ = await run_code_node({"a": out("array[number]")}, {"a": [1, 2, 3]}, limits)
    assert error == "The length of output variable `a` must be less than 2 elements."


async def test_the_defaults_are_difys() -> None:
    limits = CodeLimits()
    assert (limits.max_string_length, limits.max_precision, limits.max_depth) == (400_000, 20, 5)
    assert (limits.max_number, limits.min_number) == (9223372036854775807, -9223372036854775807)
    assert (limits.max_string_array_length, limits.max_object_array_length) == (30, 30)
    assert limits.max_number_array_length == 1000
    # the 30-element default on array[string] is not the string length (Dify issue 7688)
    ok, _, _ = await run_code_node({"s": out("string")}, {"s": "x" * 31})
    assert ok is not None


# -- the rules of spec 1.4 ------------------------------------------------------------------------------------


def validate(schema: dict[str, Any] | None, result: dict[str, Any], limits: CodeLimits | None = None) -> Any:
    import msgspec

    from app.workflows.engine.nodes.code import OutputSpec

    spec = None if schema is None else msgspec.convert(schema, dict[str, OutputSpec])
    return OutputValidator(limits or CodeLimits()).transform(result, spec)


def test_missing_and_extra_keys() -> None:
    from app.workflows.engine.nodes.code import CodeNodeError, OutputValidationError

    with pytest.raises(OutputValidationError, match=r"^Output b is missing.$"):
        validate({"a": out("string"), "b": out("string")}, {"a": "x"})
    with pytest.raises(CodeNodeError, match=r"^Not all output parameters are validated.$"):
        validate({"a": out("string")}, {"a": "x", "extra": 1})
    with pytest.raises(OutputValidationError, match=r"^Output o.x is missing.$"):
        validate({"o": out("object", {"x": out("number")})}, {"o": {}})


def test_types_are_checked_with_difys_messages() -> None:
    from app.workflows.engine.nodes.code import OutputValidationError

    cases = [
        ({"s": out("string")}, {"s": 1}, "Output s must be a string, got int instead."),
        ({"n": out("number")}, {"n": "1"}, "Output n is not a number, got <class 'str'> instead."),
        ({"o": out("object")}, {"o": []}, "Output o is not an object, got <class 'list'> instead."),
        ({"a": out("array[number]")}, {"a": "x"}, "Output a is not an array, got <class 'str'> instead."),
        (
            {"a": out("array[number]")},
            {"a": [1, "2"]},
            "The element at index 1 of output variable `a` must be a number.",
        ),
        (
            {"a": out("array[number]")},
            {"a": [None]},
            "The element at index 0 of output variable `a` must be a number.",
        ),
        ({"a": out("array[string]")}, {"a": ["x", 2]}, "Output a[1] must be a string, got int instead."),
        (
            {"a": out("array[object]")},
            {"a": [{}, 1]},
            "Output a[1] is not an object, got <class 'int'> instead at index 1.",
        ),
        (
            {"a": out("array[boolean]")},
            {"a": [True, 1]},
            "Output a[1] is not a boolean, got <class 'int'> instead.",
        ),
        (
            {"o": out("object", {"x": out("string")})},
            {"o": {"x": 1}},
            "Output o.x must be a string, got int instead.",
        ),
        (
            {"a": out("array[object]", {"x": out("number")})},
            {"a": [{"x": "no"}]},
            "Output a[0].x is not a number, got <class 'str'> instead.",
        ),
    ]
    for schema, result, message in cases:
        with pytest.raises(OutputValidationError) as raised:
            validate(schema, result)
        assert str(raised.value) == message


def test_values_are_normalised_like_difys() -> None:
    schema = {
        "n": out("number"),
        "b": out("boolean"),
        "nums": out("array[number]"),
        "s": out("string"),
        "strs": out("array[string]"),
        "bools": out("array[boolean]"),
        "objs": out("array[object]"),
        "none": out("object"),
    }
    result = {
        "n": True,
        "b": "anything",
        "nums": [True, 2.5, 10**30],
        "s": "a\x00b",
        "strs": ["c\x00", None],
        "bools": [True, None],
        "objs": [None, {"k": 1}],
        "none": None,
    }
    assert validate(schema, result) == {
        "n": 1,
        "b": "anything",  # booleans pass unchecked
        "nums": [1, 2.5, 10**30],  # array[number] elements are not range checked (Dify's dead code)
        "s": "ab",
        "strs": ["c", None],
        "bools": [True, None],
        "objs": [None, {"k": 1}],
        "none": None,
    }


def test_objects_without_children_are_checked_generically_and_kept() -> None:
    from app.workflows.engine.nodes.code import OutputValidationError

    kept = {"x": "a\x00", "n": [1, None, 2.5], "l": [[1], [2]], "z": [None, "mixed", 1], "d": [{"a": 1}]}
    assert validate({"o": out("object")}, {"o": kept}) == {"o": kept}
    with pytest.raises(OutputValidationError, match=r"^Output o.m is not a valid array. make sure"):
        validate({"o": out("object")}, {"o": {"m": [1, "x"]}})
    with pytest.raises(OutputValidationError, match=r"^Output o.t is not a valid type.$"):
        validate({"o": out("object")}, {"o": {"t": (1,)}})
    with pytest.raises(OutputValidationError, match="out of range"):
        validate({"o": out("object")}, {"o": {"n": [1, 10**20]}})
    with pytest.raises(OutputValidationError, match="must be less than 3 characters"):
        validate({"o": out("object")}, {"o": {"s": ["abcd"]}}, CodeLimits(max_string_length=3))


def test_scientific_notation_strings_become_numbers() -> None:
    converted = convert_scientific_notation(
        {"a": "1e+5", "b": ["-2.5E-3", "1e5"], "c": {"d": "3.0e+2"}, "e": "1.5"}
    )
    assert converted == {"a": 100000.0, "b": [-0.0025, "1e5"], "c": {"d": 300.0}, "e": "1.5"}


async def test_scientific_notation_quirk_through_the_node() -> None:
    ok, _, _ = await run_code_node({"n": out("number")}, {"n": "1e+3"})
    assert ok is not None
    assert ok.outputs == {"n": 1000.0}
    _, error, _ = await run_code_node({"s": out("string")}, {"s": "1e+3"})
    assert error == "Output s must be a string, got float instead."


async def test_hostile_results_fail_readably() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]
    _, error, kind = await run_code_node({"o": out("object")}, {"o": deep})
    assert kind == "DepthLimitError"
    assert error == "Depth limit 5 reached, object too deep."
    nested: list[Any] = []
    for _ in range(10):
        nested = [nested]
    _, error, kind = await run_code_node({"o": out("object")}, {"o": {"l": nested}})
    assert kind == "DepthLimitError"
