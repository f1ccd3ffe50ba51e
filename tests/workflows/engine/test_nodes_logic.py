"""if-else (and the shared comparison operators), variable-aggregator, assigner and list-operator."""

from __future__ import annotations

from typing import Any

import pytest

from app.workflows.engine import conditions
from app.workflows.engine.errors import NodeConfigError, NodeRunError
from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes import NODE_TYPES, build_node
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, Ports
from app.workflows.engine.variables import VariablePool
from tests.support.templates import InProcessTemplates
from tests.workflows.engine.helpers import RUN, edge, graph, node, run_graph


def make(type_: str, **data: Any) -> Node:
    return build_node(NodeSpec(id="n1", type=type_, title="N1", data={"type": type_, **data}))


async def run_node(n: Node, pool: dict[str, dict[str, Any]]) -> tuple[NodeResult, VariablePool]:
    variables = VariablePool(pool)

    async def no_stream(text: str, selector: list[str]) -> None:
        return None

    return await n.run(NodeContext(n.spec, variables, Ports(), RUN, no_stream)), variables


def cond(selector: list[str], op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"variable_selector": selector, "comparison_operator": op, "value": value, **extra}


def test_node_types_are_registered() -> None:
    for name in ("if-else", "variable-aggregator", "variable-assigner", "assigner", "list-operator"):
        assert name in NODE_TYPES
    assert NODE_TYPES["if-else"].branching is True


# --- the operator table -------------------------------------------------------------------------

OPERATOR_TABLE = [
    ("contains", "hello world", "world", True),
    ("contains", "hello", "x", False),
    ("contains", "", "x", False),
    ("contains", None, "x", False),
    ("contains", ["a", "b"], "a", True),
    ("contains", ["a", "b"], "c", False),
    ("contains", [1, 2], "2", True),
    ("not contains", "hello", "x", True),
    ("not contains", "hello", "ell", False),
    ("not contains", "", "x", True),
    ("not contains", ["a"], "a", False),
    ("start with", "hello", "he", True),
    ("start with", "hello", "lo", False),
    ("start with", "", "x", False),
    ("end with", "hello", "lo", True),
    ("end with", "hello", "he", False),
    ("is", "a", "a", True),
    ("is", "a", "b", False),
    ("is", None, "a", False),
    ("is", True, True, True),
    ("is not", "a", "b", True),
    ("is not", "a", "a", False),
    ("is not", None, "a", False),
    ("empty", "", None, True),
    ("empty", [], None, True),
    ("empty", None, None, True),
    ("empty", "x", None, False),
    ("not empty", "x", None, True),
    ("not empty", {}, None, False),
    ("in", "image", ["image", "video"], True),
    ("in", "audio", ["image", "video"], False),
    ("in", "", ["a"], False),
    ("not in", "audio", ["image"], True),
    ("not in", "image", ["image"], False),
    ("not in", "", ["a"], True),
    ("all of", ["a", "b", "c"], ["a", "b"], True),
    ("all of", ["a"], ["a", "b"], False),
    ("all of", [], ["a"], False),
    ("=", 3, "3", True),
    ("=", 3, "3.0", True),
    ("=", 2.5, "2.5", True),
    ("=", 3, "4", False),
    ("=", None, "1", False),
    ("=", True, "true", True),
    ("=", False, "1", False),
    ("≠", 3, "4", True),
    ("≠", 3, "3", False),
    ("!=", 3, "4", True),
    ("≠", None, "1", False),
    (">", 5, "3", True),
    (">", 3, "3", False),
    (">", 1.1, "0", True),
    (">", None, "3", False),
    ("<", 0, "0.95", True),
    ("<", 3, "3", False),
    ("≥", 3, "3", True),
    ("≥", 1, "0.95", True),
    (">=", 2, "3", False),
    ("≤", 0, "0.95", True),
    ("≤", 4, "3", False),
    ("<=", 3, "3", True),
    ("null", None, None, True),
    ("null", 0, None, False),
    ("not null", 0, None, True),
    ("not null", None, None, False),
    ("exists", "", None, True),
    ("exists", None, None, False),
    ("not exists", None, None, True),
    ("not exists", [], None, False),
]


@pytest.mark.parametrize(("op", "actual", "expected", "result"), OPERATOR_TABLE)
def test_operator_table(op: str, actual: Any, expected: Any, result: bool) -> None:
    assert conditions.compare(op, actual, expected) is result


def test_every_operator_is_in_the_table() -> None:
    assert {conditions.canonical(op) for op, *_ in OPERATOR_TABLE} == conditions.OPERATORS


@pytest.mark.parametrize(
    ("op", "actual", "expected", "message"),
    [
        (">", "abc", "1", "needs a number"),
        ("=", 1, "abc", "not a number"),
        ("=", "1", "1", "needs a number or a boolean"),
        ("in", "a", "a", "needs an array"),
        ("start with", 5, "x", "needs a string"),
        ("contains", {"a": 1}, "a", "string or an array"),
        ("is", 3, "3", "string or a boolean"),
    ],
)
def test_operator_type_errors(op: str, actual: Any, expected: Any, message: str) -> None:
    with pytest.raises(NodeRunError, match=message):
        conditions.compare(op, actual, expected)


# --- if-else --------------------------------------------------------------------------------------


def branching_graph(if_data: dict[str, Any], handles: list[str]) -> Any:
    """start -> if-else -> one template per handle -> aggregator -> end (outputs which branch ran)."""
    branches = [node(f"b_{h}", "template-transform", template=h, variables=[]) for h in handles]
    return graph(
        [
            node(
                "start",
                "start",
                variables=[
                    {"variable": "q", "type": "text-input", "required": False},
                    {"variable": "n", "type": "number", "required": False},
                    {"variable": "limit", "type": "number", "required": False},
                    {"variable": "flag", "type": "checkbox", "required": False},
                ],
            ),
            node("if1", "if-else", **if_data),
            *branches,
            node(
                "agg",
                "variable-aggregator",
                output_type="string",
                variables=[[f"b_{h}", "output"] for h in handles],
            ),
            node("end", "end", outputs=[{"variable": "branch", "value_selector": ["agg", "output"]}]),
        ],
        [
            edge("start", "if1"),
            *[edge("if1", f"b_{h}", h) for h in handles],
            *[edge(f"b_{h}", "agg") for h in handles],
            edge("agg", "end"),
        ],
    )


CASES = {
    "cases": [
        {
            "case_id": "refund",
            "logical_operator": "and",
            "conditions": [cond(["start", "q"], "contains", "refund"), cond(["start", "n"], ">", "100")],
        },
        {
            "id": "greeting",  # old exports spell it `id`
            "logical_operator": "or",
            "conditions": [
                cond(["start", "q"], "start with", "hi"),
                cond(["start", "n"], "=", "{{#start.limit#}}", varType="number"),
            ],
        },
    ]
}


@pytest.mark.parametrize(
    ("inputs", "branch"),
    [
        ({"q": "I want a refund", "n": 150}, "refund"),
        ({"q": "I want a refund", "n": 50, "limit": 7}, "false"),  # and: the second condition fails
        ({"q": "hi there", "n": 1, "limit": 7}, "greeting"),  # or: the first condition holds
        ({"q": "hello", "n": 5, "limit": 5}, "greeting"),  # or: the templated value matches
        ({"q": "hello", "n": 5, "limit": 6}, "false"),
    ],
)
async def test_if_else_takes_the_first_matching_case(inputs: dict[str, Any], branch: str) -> None:
    g = branching_graph(CASES, ["refund", "greeting", "false"])
    outcome, rec, state = await run_graph(g, inputs)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"branch": branch}
    for h in ("refund", "greeting", "false"):
        assert state.nodes[f"b_{h}"].status == ("succeeded" if h == branch else "skipped")
    result = next(r.result for r in rec.finished if r.node.id == "if1")
    assert result is not None
    assert result.edge_source_handle == branch
    assert result.outputs == {
        "result": branch != "false",
        "selected_case_id": None if branch == "false" else branch,
    }


async def test_if_else_records_condition_results_and_short_circuits() -> None:
    n = make("if-else", **CASES)
    result, _ = await run_node(n, {"start": {"q": "nope", "n": 500, "limit": 1}})
    refund, greeting = result.process_data["condition_results"]
    assert refund["results"] == [False]
    assert refund["final_result"] is False  # `and` stopped at the first false
    assert refund["group"]["case_id"] == "refund"
    assert greeting["results"] == [False, False]
    assert greeting["group"]["case_id"] == "greeting"
    assert result.inputs["conditions"][1] == {
        "actual_value": 500,
        "expected_value": "1",
        "comparison_operator": "=",
    }


async def test_if_else_old_style_config() -> None:
    old = {
        "logical_operator": "or",
        "conditions": [cond(["start", "q"], "is", "yes"), cond(["start", "n"], "≥", "10")],
    }
    g = branching_graph(old, ["true", "false"])
    assert (await run_graph(g, {"q": "yes", "n": 0}))[0].outputs == {"branch": "true"}
    assert (await run_graph(g, {"q": "no", "n": 10}))[0].outputs == {"branch": "true"}
    outcome, rec, _ = await run_graph(g, {"q": "no", "n": 9})
    assert outcome.outputs == {"branch": "false"}
    result = next(r.result for r in rec.finished if r.node.id == "if1")
    assert result is not None
    assert result.outputs == {"result": False, "selected_case_id": "false"}
    assert result.process_data["condition_results"][0]["group"] == "default"


async def test_if_else_boolean_variables_read_values_as_json() -> None:
    data = {
        "cases": [
            {
                "case_id": "on",
                "logical_operator": "and",
                "conditions": [cond(["start", "flag"], "is", "true")],
            }
        ]
    }
    g = branching_graph(data, ["on", "false"])
    assert (await run_graph(g, {"flag": True}))[0].outputs == {"branch": "on"}
    assert (await run_graph(g, {"flag": False}))[0].outputs == {"branch": "false"}
    # operators that take no value ignore the (empty) value instead of reading it as a boolean
    set_ = {"case_id": "set", "logical_operator": "and", "conditions": [cond(["s", "b"], "not empty", "")]}
    assert (await run_node(make("if-else", cases=[set_]), {"s": {"b": True}}))[0].edge_source_handle == "set"
    with pytest.raises(NodeRunError, match="not a boolean"):
        bad = {"case_id": "x", "logical_operator": "and", "conditions": [cond(["s", "b"], "is", "maybe")]}
        await run_node(make("if-else", cases=[bad]), {"s": {"b": True}})


FILES = [
    {
        "type": "image",
        "transfer_method": "remote_url",
        "url": "https://x/a.PNG",
        "filename": "a.png",
        "extension": "png",
    },
    {
        "type": "document",
        "transfer_method": "local_file",
        "filename": "b.pdf",
        "extension": ".pdf",
        "size": 9,
    },
]


def file_case(case_id: str, op: str, sub: list[dict[str, Any]], logical: str = "and") -> dict[str, Any]:
    sub_condition = {"logical_operator": logical, "conditions": sub}
    return {
        "case_id": case_id,
        "logical_operator": "and",
        "conditions": [
            cond(["sys", "files"], op, "", varType="array[file]", sub_variable_condition=sub_condition)
        ],
    }


@pytest.mark.parametrize(
    ("case", "matches"),
    [
        (
            file_case("c", "contains", [{"key": "type", "comparison_operator": "in", "value": ["image"]}]),
            True,
        ),
        (
            file_case("c", "contains", [{"key": "type", "comparison_operator": "in", "value": ["video"]}]),
            False,
        ),
        (
            file_case("c", "contains", [{"key": "extension", "comparison_operator": "is", "value": "pdf"}]),
            True,
        ),
        (
            file_case("c", "contains", [{"key": "name", "comparison_operator": "end with", "value": ".png"}]),
            True,
        ),
        # `not ...` sub-operators must hold for every file
        (
            file_case(
                "c", "not contains", [{"key": "type", "comparison_operator": "not in", "value": ["video"]}]
            ),
            True,
        ),
        (
            file_case(
                "c", "not contains", [{"key": "type", "comparison_operator": "not in", "value": ["image"]}]
            ),
            False,
        ),
        (
            file_case(
                "c",
                "all of",
                [
                    {"key": "type", "comparison_operator": "is", "value": "audio"},
                    {"key": "size", "comparison_operator": ">", "value": "5"},
                ],
                logical="or",
            ),
            True,
        ),
    ],
)
async def test_if_else_file_lists_use_sub_conditions(case: dict[str, Any], matches: bool) -> None:
    result, _ = await run_node(make("if-else", cases=[case]), {"sys": {"files": FILES}})
    assert result.edge_source_handle == ("c" if matches else "false")


async def test_if_else_file_list_without_sub_condition_fails_and_empty_works() -> None:
    bare = {
        "case_id": "c",
        "logical_operator": "and",
        "conditions": [cond(["sys", "files"], "contains", "x")],
    }
    with pytest.raises(NodeRunError, match="needs a sub-condition"):
        await run_node(make("if-else", cases=[bare]), {"sys": {"files": FILES}})
    empty = {"case_id": "none", "logical_operator": "and", "conditions": [cond(["sys", "files"], "empty")]}
    assert (await run_node(make("if-else", cases=[empty]), {"sys": {"files": []}}))[
        0
    ].edge_source_handle == "none"


async def test_if_else_missing_variable_fails_but_not_exists_holds() -> None:
    case = {"case_id": "c", "logical_operator": "and", "conditions": [cond(["llm", "text"], "contains", "x")]}
    with pytest.raises(NodeRunError, match=r"Variable llm\.text not found"):
        await run_node(make("if-else", cases=[case]), {})
    absent = {"case_id": "c", "logical_operator": "and", "conditions": [cond(["llm", "text"], "not exists")]}
    assert (await run_node(make("if-else", cases=[absent]), {}))[0].edge_source_handle == "c"


async def test_if_else_type_error_fails_the_run_with_the_node_named() -> None:
    data = {
        "cases": [{"case_id": "x", "logical_operator": "and", "conditions": [cond(["start", "q"], ">", "1")]}]
    }
    outcome, _, _ = await run_graph(branching_graph(data, ["x", "false"]), {"q": "text"})
    assert outcome.status == "failed"
    assert 'Node "if1" run failed' in (outcome.error or "")
    assert "needs a number" in (outcome.error or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cases": [{"case_id": "a", "conditions": [cond(["start", "q"], "like", "x")]}]},
            "unknown comparison_operator 'like'",
        ),
        ({"cases": [{"conditions": []}]}, r"cases\[0\] has no case_id"),
        ({"cases": [{"case_id": "a", "logical_operator": "xor", "conditions": []}]}, "must be 'and' or 'or'"),
        (
            {"cases": [{"case_id": "a", "conditions": [cond(["q"], "is", "x")]}]},
            "needs a node and a variable",
        ),
        ({"cases": "nope"}, "Expected `array"),
        (
            {
                "cases": [
                    file_case("a", "contains", [{"key": "colour", "comparison_operator": "is", "value": "x"}])
                ]
            },
            "unknown file attribute 'colour'",
        ),
    ],
)
def test_if_else_config_errors_name_the_node(data: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message) as err:
        make("if-else", **data)
    assert err.value.node_id == "n1"
    assert str(err.value).startswith("node n1:")


# --- variable-aggregator -------------------------------------------------------------------------


async def test_aggregator_takes_the_first_variable_with_a_value() -> None:
    n = make(
        "variable-aggregator", output_type="string", variables=[["a", "text"], ["b", "text"], ["c", "text"]]
    )
    result, _ = await run_node(n, {"a": {"text": None}, "b": {"text": "from b"}, "c": {"text": "from c"}})
    assert result.outputs == {"output": "from b"}
    assert result.inputs == {"text": "from b"}
    assert (await run_node(n, {}))[0].outputs == {}


async def test_aggregator_groups_and_legacy_name() -> None:
    data = {
        "output_type": "string",
        "variables": [],
        "advanced_settings": {
            "group_enabled": True,
            "groups": [
                {
                    "group_name": "Text",
                    "output_type": "string",
                    "variables": [["a", "x"], ["b", "x"]],
                    "groupId": "g1",
                },
                {
                    "group_name": "Count",
                    "output_type": "number",
                    "variables": [["a", "n"], ["b", "n"]],
                    "groupId": "g2",
                },
                {"group_name": "None", "output_type": "string", "variables": [["z", "z"]], "groupId": "g3"},
            ],
        },
    }
    for type_ in ("variable-aggregator", "variable-assigner"):
        result, _ = await run_node(make(type_, **data), {"a": {"n": 0}, "b": {"x": "bee", "n": 2}})
        assert result.outputs == {"Text": {"output": "bee"}, "Count": {"output": 0}}
    g = graph(
        [
            node("start", "start", variables=[]),
            node("agg", "variable-aggregator", **data),
            node("end", "end", outputs=[{"variable": "t", "value_selector": ["agg", "Text", "output"]}]),
        ],
        [edge("start", "agg"), edge("agg", "end")],
    )
    outcome, _, _ = await run_graph(g, pools={"b": {"x": "pooled"}})
    assert outcome.outputs == {"t": "pooled"}


def test_aggregator_config_errors() -> None:
    with pytest.raises(NodeConfigError, match="used twice"):
        make(
            "variable-aggregator",
            variables=[],
            advanced_settings={
                "group_enabled": True,
                "groups": [{"group_name": "g", "variables": []}, {"group_name": "g", "variables": []}],
            },
        )
    with pytest.raises(NodeConfigError, match=r"variables\[0\] needs a node"):
        make("variable-aggregator", variables=[["only"]])
    with pytest.raises(NodeConfigError, match="n1"):
        make("variable-aggregator", variables="a.b")


# --- assigner --------------------------------------------------------------------------------------

CONVERSATION = {
    "name": "Ada",
    "count": 10,
    "ratio": 1.5,
    "tags": ["a", "b", "c"],
    "nums": [1, 2],
    "empty": [],
    "profile": {"k": 1},
    "on": True,
}


def item(name: str, op: str, value: Any = None, input_type: str = "constant") -> dict[str, Any]:
    return {
        "variable_selector": ["conversation", name],
        "operation": op,
        "input_type": input_type,
        "value": value,
    }


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([item("name", "over-write", ["src", "text"], "variable")], {"name": "from source"}),
        ([item("name", "over-write", "Bob")], {"name": "Bob"}),
        ([item("name", "clear")], {"name": ""}),
        ([item("count", "clear")], {"count": 0}),
        ([item("tags", "clear")], {"tags": []}),
        ([item("profile", "clear")], {"profile": {}}),
        ([item("on", "clear")], {"on": False}),
        ([item("tags", "append", ["src", "text"], "variable")], {"tags": ["a", "b", "c", "from source"]}),
        ([item("empty", "append", ["src", "obj"], "variable")], {"empty": [{"x": 1}]}),
        ([item("tags", "extend", ["src", "list"], "variable")], {"tags": ["a", "b", "c", "d", "e"]}),
        ([item("profile", "set", '{"k": 2, "new": true}')], {"profile": {"k": 2, "new": True}}),
        ([item("count", "set", 3)], {"count": 3}),
        ([item("on", "set", False)], {"on": False}),
        ([item("count", "+=", 5)], {"count": 15}),
        ([item("count", "-=", 2.5)], {"count": 7.5}),
        ([item("ratio", "*=", 2)], {"ratio": 3.0}),
        ([item("count", "/=", 4)], {"count": 2.5}),
        ([item("tags", "remove-first")], {"tags": ["b", "c"]}),
        ([item("tags", "remove-last")], {"tags": ["a", "b"]}),
        ([item("empty", "remove-last")], {"empty": []}),
        ([item("count", "+=", 1), item("count", "*=", 2)], {"count": 22}),  # items apply in order
        ([item("name", "over-write", ["src", "none"], "variable")], {}),  # an empty source is skipped
    ],
)
async def test_assigner_v2_operations(items: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    n = make("assigner", version="2", items=items)
    source = {"text": "from source", "list": ["d", "e"], "obj": {"x": 1}, "none": None}
    result, pool = await run_node(n, {"conversation": dict(CONVERSATION), "src": source})
    assert result.outputs == {}
    for name, value in {**CONVERSATION, **expected}.items():
        assert pool.get(["conversation", name]) == value
    updated = result.process_data.pop("__updated_variables")
    assert result.process_data == expected
    assert [(u["name"], u["new_value"]) for u in updated] == list(expected.items())
    assert all(u["selector"] == ["conversation", u["name"]] for u in updated)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([item("name", "+=", 1)], r"'\+=' is not supported for conversation.name \(string\)"),
        ([item("tags", "set", 1)], "'set' is not supported"),
        ([item("name", "append", ["src", "text"], "variable")], "'append' is not supported"),
        ([item("count", "/=", 0)], "invalid value 0"),
        ([item("count", "+=", "5")], "invalid value '5'"),
        ([item("name", "over-write", 5)], "invalid value 5"),
        ([item("nums", "extend", ["src", "text"], "variable")], "invalid value 'from source'"),
        ([item("nums", "append", ["src", "text"], "variable")], "invalid value 'from source'"),
        ([item("tags", "append", "x")], "cannot take a constant value"),
        ([item("profile", "set", "{not json")], "not a JSON object"),
        ([item("ghost", "over-write", "x")], "variable conversation.ghost not found"),
        ([item("name", "over-write", ["src", "ghost"], "variable")], "variable src.ghost not found"),
    ],
)
async def test_assigner_v2_refuses_invalid_operations(items: list[dict[str, Any]], message: str) -> None:
    n = make("assigner", version="2", items=items)
    with pytest.raises(NodeRunError, match=message):
        await run_node(n, {"conversation": dict(CONVERSATION), "src": {"text": "from source"}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": "2", "items": [item("name", "rename", "x")]}, "unknown operation 'rename'"),
        ({"version": "2", "items": [item("count", "+=", ["a", "b"], "variable")]}, "takes a constant"),
        (
            {"version": "2", "items": [item("name", "over-write", "a.b", "variable")]},
            "must be a variable selector",
        ),
        (
            {"version": "2", "items": [{**item("x", "clear"), "variable_selector": ["sys", "query"]}]},
            "sys.query is read-only",
        ),
        (
            {"version": "2", "items": [{**item("x", "clear"), "variable_selector": ["conversation"]}]},
            "needs a node",
        ),
        ({"version": "2", "items": [item("name", "over-write", "x", "literal")]}, "input_type must be"),
        (
            {"assigned_variable_selector": ["conversation", "a"], "write_mode": "replace"},
            "unknown write_mode",
        ),
        (
            {"assigned_variable_selector": ["conversation", "a"], "write_mode": "append"},
            "input_variable_selector",
        ),
    ],
)
def test_assigner_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        make("assigner", **data)


@pytest.mark.parametrize(
    ("write_mode", "target", "expected"),
    [("over-write", "name", "hello"), ("append", "tags", ["a", "b", "c", "hello"]), ("clear", "tags", [])],
)
async def test_assigner_v1_write_modes(write_mode: str, target: str, expected: Any) -> None:
    n = make(
        "assigner",
        assigned_variable_selector=["conversation", target],
        input_variable_selector=["src", "text"],
        write_mode=write_mode,
    )
    result, pool = await run_node(n, {"conversation": dict(CONVERSATION), "src": {"text": "hello"}})
    assert pool.get(["conversation", target]) == expected
    assert result.inputs == {"value": None if write_mode == "clear" else "hello"}
    assert result.process_data["__updated_variables"][0]["new_value"] == expected


async def test_assigner_v1_append_needs_an_array() -> None:
    n = make(
        "assigner",
        assigned_variable_selector=["conversation", "name"],
        input_variable_selector=["s", "t"],
        write_mode="append",
    )
    with pytest.raises(NodeRunError, match="'append' is not supported"):
        await run_node(n, {"conversation": dict(CONVERSATION), "s": {"t": "x"}})


async def test_assigner_in_a_run_updates_the_conversation_pool() -> None:
    g = graph(
        [
            node("start", "start", variables=[{"variable": "q", "type": "text-input"}]),
            node(
                "assign",
                "assigner",
                version="2",
                items=[
                    item("history", "append", ["start", "q"], "variable"),
                    item("turns", "+=", 1),
                    item("last", "over-write", ["start", "q"], "variable"),
                ],
            ),
            node(
                "tt",
                "template-transform",
                template="{{ h | join(',') }} #{{ n }}",
                variables=[
                    {"variable": "h", "value_selector": ["conversation", "history"]},
                    {"variable": "n", "value_selector": ["conversation", "turns"]},
                ],
            ),
            node("end", "end", outputs=[{"variable": "out", "value_selector": ["tt", "output"]}]),
        ],
        [edge("start", "assign"), edge("assign", "tt"), edge("tt", "end")],
    )
    pools = {"conversation": {"history": ["hi"], "turns": 1, "last": ""}}
    ports = Ports(templates=InProcessTemplates())
    outcome, _, state = await run_graph(g, {"q": "again"}, pools=pools, ports=ports)
    assert outcome.outputs == {"out": "hi,again #2"}
    assert state.pool["conversation"] == {"history": ["hi", "again"], "turns": 2, "last": "again"}


# --- list-operator ---------------------------------------------------------------------------------


def list_op(**data: Any) -> Node:
    return make("list-operator", variable=["src", "items"], **data)


def filt(*conds: tuple[str, str, Any]) -> dict[str, Any]:
    return {
        "enabled": True,
        "conditions": [{"key": k, "comparison_operator": op, "value": v} for k, op, v in conds],
    }


@pytest.mark.parametrize(
    ("items", "data", "result"),
    [
        (
            ["apple", "banana", "avocado", ""],
            {"filter_by": filt(("", "start with", "a"))},
            ["apple", "avocado"],
        ),
        (["apple", "banana", ""], {"filter_by": filt(("", "contains", "an"))}, ["banana"]),
        (["apple", "banana", ""], {"filter_by": filt(("", "not empty", ""))}, ["apple", "banana"]),
        (["apple", "banana", ""], {"filter_by": filt(("", "empty", ""))}, [""]),
        (["a", "b", "ab"], {"filter_by": filt(("", "in", "abc"))}, ["a", "b", "ab"]),  # substring, as Dify
        (["a", "b", "c"], {"filter_by": filt(("", "not in", ["a", "c"]))}, ["b"]),
        (["a", "b", "c"], {"filter_by": filt(("", "is not", "b"))}, ["a", "c"]),
        ([5, 1, 10, 3], {"filter_by": filt(("", ">", "{{#src.min#}}"))}, [5, 10]),
        ([5, 1, 10, 3], {"filter_by": filt(("", "≤", "3"), ("", "≠", "1"))}, [3]),
        ([True, False, True], {"filter_by": filt(("", "is", "true"))}, [True, True]),
        ([3, 1, 2], {"order_by": {"enabled": True, "key": "", "value": "desc"}}, [3, 2, 1]),
        (
            ["b", "c", "a"],
            {"order_by": {"enabled": True, "value": "asc"}, "limit": {"enabled": True, "size": 2}},
            ["a", "b"],
        ),
        ([3, 1, 2], {"limit": {"enabled": False, "size": 1}}, [3, 1, 2]),
        ([3, 1, 2], {"extract_by": {"enabled": True, "serial": "{{#src.k#}}"}}, [1]),
        # Dify's order: extract happens before ordering
        (
            [3, 1, 2],
            {"extract_by": {"enabled": True, "serial": "1"}, "order_by": {"enabled": True, "value": "asc"}},
            [3],
        ),
    ],
)
async def test_list_operator(items: list[Any], data: dict[str, Any], result: list[Any]) -> None:
    out, _ = await run_node(list_op(**data), {"src": {"items": items, "min": 4, "k": 2}})
    assert out.outputs == {"result": result, "first_record": result[0], "last_record": result[-1]}
    assert out.inputs == {"variable": items}


LIST_FILES = [
    {
        "type": "image",
        "transfer_method": "remote_url",
        "url": "https://x/b.png",
        "filename": "b.png",
        "extension": ".png",
        "size": 300,
    },
    {
        "type": "document",
        "transfer_method": "local_file",
        "filename": "a.pdf",
        "extension": ".pdf",
        "size": 100,
    },
    {"type": "image", "transfer_method": "local_file", "filename": "c.jpg", "extension": ".jpg", "size": 200},
]


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"filter_by": filt(("type", "in", ["image"]))}, ["b.png", "c.jpg"]),
        ({"filter_by": filt(("type", "not in", ["image"]))}, ["a.pdf"]),
        ({"filter_by": filt(("size", "<", "250"))}, ["a.pdf", "c.jpg"]),
        ({"filter_by": filt(("extension", "is", ".jpg"))}, ["c.jpg"]),
        ({"filter_by": filt(("name", "start with", "b"))}, ["b.png"]),
        ({"order_by": {"enabled": True, "key": "name", "value": "asc"}}, ["a.pdf", "b.png", "c.jpg"]),
        (
            {
                "order_by": {"enabled": True, "key": "size", "value": "desc"},
                "limit": {"enabled": True, "size": 2},
            },
            ["b.png", "c.jpg"],
        ),
    ],
)
async def test_list_operator_on_files(data: dict[str, Any], names: list[str]) -> None:
    out, _ = await run_node(list_op(**data), {"src": {"items": LIST_FILES}})
    assert [f["filename"] for f in out.outputs["result"]] == names
    assert out.outputs["first_record"]["filename"] == names[0]


async def test_list_operator_empty_and_errors() -> None:
    out, _ = await run_node(list_op(filter_by=filt(("", "contains", "x"))), {"src": {"items": []}})
    assert out.outputs == {"result": [], "first_record": None, "last_record": None}
    out, _ = await run_node(list_op(filter_by=filt(("", "is", "zzz"))), {"src": {"items": ["a"]}})
    assert out.outputs == {"result": [], "first_record": None, "last_record": None}
    with pytest.raises(NodeRunError, match="Variable not found"):
        await run_node(list_op(), {})
    with pytest.raises(NodeRunError, match="is not an array"):
        await run_node(list_op(), {"src": {"items": "text"}})
    for serial, message in (("4", "must be <= 3"), ("0", "must be >= 1"), ("x", "not a number")):
        with pytest.raises(NodeRunError, match=message):
            await run_node(
                list_op(extract_by={"enabled": True, "serial": serial}), {"src": {"items": [1, 2, 3]}}
            )
    with pytest.raises(NodeRunError, match="does not apply to numbers"):
        await run_node(list_op(filter_by=filt(("", "contains", "1"))), {"src": {"items": [1, 2]}})
    with pytest.raises(NodeRunError, match="not a number"):
        await run_node(list_op(filter_by=filt(("", ">", "many"))), {"src": {"items": [1, 2]}})


def test_list_operator_config_errors() -> None:
    with pytest.raises(NodeConfigError, match="variable needs a node"):
        make("list-operator", variable=[])
    with pytest.raises(NodeConfigError, match="unknown comparison_operator 'regex'"):
        list_op(filter_by=filt(("", "regex", ".*")))
    with pytest.raises(NodeConfigError, match=r"order_by\.value"):
        list_op(order_by={"enabled": True, "value": "random"})
    with pytest.raises(NodeConfigError, match="n1"):
        list_op(limit={"enabled": True, "size": "ten"})


async def test_list_operator_in_a_run() -> None:
    g = graph(
        [
            node("start", "start", variables=[{"variable": "n", "type": "number"}]),
            node(
                "lo",
                "list-operator",
                variable=["src", "items"],
                filter_by=filt(("", "≥", "{{#start.n#}}")),
                order_by={"enabled": True, "key": "", "value": "asc"},
            ),
            node(
                "end",
                "end",
                outputs=[
                    {"variable": "all", "value_selector": ["lo", "result"]},
                    {"variable": "first", "value_selector": ["lo", "first_record"]},
                    {"variable": "last", "value_selector": ["lo", "last_record"]},
                ],
            ),
        ],
        [edge("start", "lo"), edge("lo", "end")],
    )
    outcome, _, _ = await run_graph(g, {"n": 3}, pools={"src": {"items": [9, 1, 4, 3, 2]}})
    assert outcome.outputs == {"all": [3, 4, 9], "first": 3, "last": 9}
