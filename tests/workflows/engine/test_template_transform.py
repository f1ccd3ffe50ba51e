"""template-transform: Jinja2 rendering in the sandbox, its limits and its errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.workflows.engine.errors import NodeConfigError, NodeRunError
from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes import NODE_TYPES, build_node
from app.workflows.engine.nodes.base import NodeContext, NodeResult, Ports
from app.workflows.engine.nodes.template_transform import MAX_OUTPUT
from app.workflows.engine.variables import VariablePool
from tests.support.templates import InProcessTemplates
from tests.workflows.engine.helpers import RUN, edge, graph, node, run_graph


def transform(template: str, **variables: list[str]) -> Any:
    data = {
        "type": "template-transform",
        "template": template,
        "variables": [{"variable": name, "value_selector": sel} for name, sel in variables.items()],
    }
    return build_node(NodeSpec(id="tt", type="template-transform", title="TT", data=data))


async def render(
    template: str, pool: dict[str, dict[str, Any]] | None = None, **variables: list[str]
) -> NodeResult:
    n = transform(template, **variables)

    async def no_stream(text: str, selector: list[str]) -> None:
        return None

    ports = Ports(templates=InProcessTemplates())
    return await n.run(NodeContext(n.spec, VariablePool(pool or {}), ports, RUN, no_stream))


def test_registered() -> None:
    assert "template-transform" in NODE_TYPES


async def test_renders_variables_without_escaping() -> None:
    result = await render(
        "<h1>{{ title }}</h1> {{ n + 1 }} {{ missing }}|{{ obj.k }}",
        {"a": {"title": "Tom & <Jerry>", "n": 41, "obj": {"k": "v"}}},
        title=["a", "title"],
        n=["a", "n"],
        missing=["a", "nothing"],
        obj=["a", "obj"],
    )
    # a missing variable is None, which Jinja prints as "None" (as in Dify)
    assert result.outputs == {"output": "<h1>Tom & <Jerry></h1> 42 None|v"}
    assert result.inputs == {"title": "Tom & <Jerry>", "n": 41, "missing": None, "obj": {"k": "v"}}


async def test_loops_filters_and_loop_variables() -> None:
    rows = [{"url": "https://a", "text": "A"}, {"url": "https://b", "text": "B"}]
    table = "|URL|Summary|\n{% for data in rows -%}\n|{{ data.url }}|{{ data.text }}|\n{% endfor -%}"
    result = await render(table, {"r": {"rows": rows}}, rows=["r", "rows"])
    assert result.outputs["output"] == "|URL|Summary|\n|https://a|A|\n|https://b|B|\n"

    docs = '{% for item in xs %}<doc id="{{ loop.index }}">{{ item | upper }}</doc>{% endfor %}'
    result = await render(docs, {"r": {"xs": ["x", "y"]}}, xs=["r", "xs"])
    assert result.outputs["output"] == '<doc id="1">X</doc><doc id="2">Y</doc>'

    joined = await render('{{ steps | join("\\n") }}', {"r": {"s": ["one", "two"]}}, steps=["r", "s"])
    assert joined.outputs["output"] == "one\ntwo"

    numbers = await render("{% for i in range(3) %}{{ i * 2 }},{% endfor %}")
    assert numbers.outputs["output"] == "0,2,4,"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ obj.items.__self__ }}",
        "{{ range.__globals__ }}",
        "{{ (1).__add__ }}",
    ],
)
async def test_sandbox_refuses_unsafe_attributes(template: str) -> None:
    with pytest.raises(NodeRunError, match="unsafe") as err:
        await render(template, {"a": {"o": {"k": 1}}}, obj=["a", "o"])
    assert err.value.error_type == "SecurityError"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ x.y.z }}", "'x' is undefined"),
        ("{{ 1 + 'a' }}", "TypeError"),
        ("{{ [1, 2] | first(3) }}", "TypeError"),
    ],
)
async def test_runtime_errors_are_readable(template: str, message: str) -> None:
    with pytest.raises(NodeRunError, match=message) as err:
        await render(template)
    assert str(err.value).startswith("template error:")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for x in xs %}", r"line 1: Unexpected end of template"),
        ("ok\n{{ a + }}", "line 2"),
        ("{% endif %}", "line 1"),
    ],
)
def test_syntax_errors_are_config_errors(template: str, message: str) -> None:
    with pytest.raises(NodeConfigError, match=message) as err:
        transform(template)
    assert err.value.node_id == "tt"
    assert "template syntax error" in str(err.value)


def test_variable_names_must_be_identifiers() -> None:
    with pytest.raises(NodeConfigError, match="not a valid template variable name"):
        transform("{{ x }}", **{"my-var": ["a", "b"]})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for i in range(100000) %}abcde{% endfor %}", f"Output length exceeds {MAX_OUTPUT} characters"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "iterations in total",
        ),
        ("{{ 'a' * 1000000000 }}", "repeating a sequence"),
        ("{{ [0] * 1000000000 }}", "repeating a sequence"),
        ("{{ 2 ** 100000 }}", "exponent 100000"),
        ("{{ ((9 ** 999) ** 999) ** 999 }}", "too large a number"),
    ],
)
async def test_runaway_templates_stop_quickly(template: str, message: str) -> None:
    began = time.monotonic()
    with pytest.raises(NodeRunError, match=message) as err:
        await render(template)
    assert err.value.error_type == "TemplateTooLarge"
    assert time.monotonic() - began < 5


async def test_output_just_under_the_cap_is_fine() -> None:
    result = await render("{% for i in range(79999) %}abcde{% endfor %}")
    assert len(result.outputs["output"]) == 399_995


async def test_in_a_run_output_feeds_the_next_node_and_errors_fail_the_run() -> None:
    g = graph(
        [
            node("start", "start", variables=[{"variable": "name", "type": "text-input"}]),
            node(
                "tt",
                "template-transform",
                title="Greeting",
                template="Hello {{ who }}{% if who == 'boom' %}{{ 1 / 0 }}{% endif %}!",
                variables=[{"variable": "who", "value_selector": ["start", "name"]}],
            ),
            node("end", "end", outputs=[{"variable": "text", "value_selector": ["tt", "output"]}]),
        ],
        [edge("start", "tt"), edge("tt", "end")],
    )
    ports = Ports(templates=InProcessTemplates())
    outcome, _, _ = await run_graph(g, {"name": "Ada"}, ports=ports)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"text": "Hello Ada!"}
    outcome, _, state = await run_graph(g, {"name": "boom"}, ports=ports)
    assert outcome.status == "failed"
    assert state.nodes["tt"].status == "failed"
    assert outcome.error == 'Node "Greeting" run failed: template error: ZeroDivisionError: division by zero'


def one_transform(template: str) -> Any:
    return graph(
        [
            node("start", "start", variables=[{"variable": "name", "type": "text-input"}]),
            node(
                "tt",
                "template-transform",
                template=template,
                variables=[{"variable": "name", "value_selector": ["start", "name"]}],
            ),
            node("end", "end", outputs=[{"variable": "text", "value_selector": ["tt", "output"]}]),
        ],
        [edge("start", "tt"), edge("tt", "end")],
    )


async def test_trivial_templates_render_in_process_as_pure_nodes() -> None:
    assert transform("Hello {{ name }}").performs_io is False
    templates = InProcessTemplates()
    outcome, recorder, _ = await run_graph(
        one_transform("Hello {{ name }}"), {"name": "Ada"}, ports=Ports(templates=templates)
    )
    assert outcome.outputs == {"text": "Hello Ada"}
    assert templates.rendered == []  # not through the port
    assert recorder.checkpoints == []  # a pure node: no commit around it
    assert [r.performs_io for r in recorder.finished if r.node.id == "tt"] == [False]
    # no port at all: still fine
    outcome, _, _ = await run_graph(one_transform("Hello {{ name }}"), {"name": "Ada"})
    assert outcome.outputs == {"text": "Hello Ada"}


async def test_templates_with_logic_go_through_the_port_as_io_nodes() -> None:
    source = "{% for c in name %}{{ c }}.{% endfor %}"
    assert transform(source).performs_io is True
    templates = InProcessTemplates()
    outcome, recorder, _ = await run_graph(
        one_transform(source), {"name": "Ada"}, ports=Ports(templates=templates)
    )
    assert outcome.outputs == {"text": "A.d.a."}
    assert templates.rendered == [source]
    assert ["tt"] in recorder.checkpoints  # the runner commits before the node waits on its child
    assert [r.performs_io for r in recorder.finished if r.node.id == "tt"] == [True]


async def test_templates_with_logic_need_the_port() -> None:
    outcome, _, _ = await run_graph(one_transform("{{ name|center(40) }}"), {"name": "Ada"})
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "sandbox" in outcome.error


async def test_the_output_cap_comes_from_the_port_on_both_paths() -> None:
    small = Ports(templates=InProcessTemplates(transform_max_length=5))
    for source in ("{{ name }}", "{{ name|center(40) }}"):
        outcome, _, _ = await run_graph(one_transform(source), {"name": "Ada Lovelace"}, ports=small)
        assert outcome.status == "failed"
        assert outcome.error is not None
        assert "Output length exceeds 5 characters" in outcome.error
