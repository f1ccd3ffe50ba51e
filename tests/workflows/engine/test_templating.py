"""Jinja2 for tenants: compiling evaluates nothing, rendering is bounded, trivial templates are recognised.

Memory is measured with tracemalloc (peak of Python allocations during the call), time with a generous bound:
each hostile template below allocates hundreds of MB or runs for minutes in stock Jinja.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment

from app.workflows.engine import templating
from app.workflows.engine.templating import MAX_TEMPLATE_TOKENS, TemplateFailure, prepare, render

MB = 1024 * 1024


def peak_bytes(action: Callable[[], Any]) -> tuple[int, float]:
    """(peak bytes allocated, seconds) while ``action`` runs; exceptions are swallowed."""
    tracemalloc.start()
    began = time.perf_counter()
    try:
        action()
    except Exception:
        pass
    finally:
        seconds = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, seconds


FOLDABLE = [
    '{{ "a"|center(400000000) }}',
    '{{ "a" * 400000000 }}',
    '{{ "%0400000000d" % 1 }}',
    '{{ ("a" ~ "b")|center(400000000) }}',
    '{% set x = "a"|center(400000000) %}{{ x|length }}',
    '{% if "a"|center(400000000) %}y{% endif %}',
    '{% for c in "a"|center(400000000) %}{% endfor %}',
    '{{ "{:>400000000}".format(1) }}',
    '{{ "a"|indent(400000000) }}',
]


def test_the_measure_sees_stock_jinja_folding_constants() -> None:
    """Control: stock Jinja evaluates this at compile time (40 MB here), and the measure below sees it."""
    peak, _ = peak_bytes(lambda: SandboxedEnvironment().from_string('{{ "a"|center(40000000) }}'))
    assert peak > 30 * MB


@pytest.mark.parametrize("source", FOLDABLE)
@pytest.mark.parametrize("kind", ["transform", "prompt"])
def test_compiling_evaluates_nothing(source: str, kind: templating.Kind) -> None:
    peak, seconds = peak_bytes(lambda: prepare(source, kind))
    assert peak < 2 * MB
    assert seconds < 1


def test_autoescape_takes_only_a_literal() -> None:
    with pytest.raises(jinja2.TemplateSyntaxError, match="literal"):
        prepare('{% autoescape ("a"|center(400000000)) == "x" %}{% endautoescape %}', "transform")
    template, _ = prepare("{% autoescape false %}<{{ x }}>{% endautoescape %}", "transform")
    assert render(template, {"x": "&"}, max_output=100) == "<&>"


@pytest.mark.parametrize(
    "source",
    [
        "{{ x }}" * (MAX_TEMPLATE_TOKENS // 3),  # many outputs
        "{{ " + " ~ ".join(["x"] * MAX_TEMPLATE_TOKENS) + " }}",  # one long expression
        "{{ x" + "|upper" * MAX_TEMPLATE_TOKENS + " }}",
        "{% for a in x %}{{ a }}{% endfor %}" * 2000,
        "a" * (templating.MAX_TEMPLATE_LENGTH + 1),
    ],
)
def test_huge_templates_are_refused_quickly(source: str) -> None:
    with pytest.raises(jinja2.TemplateSyntaxError, match=r"(more|longer) than") as error:
        prepare(source, "transform")
    assert "tokens" in str(error.value) or "characters" in str(error.value)
    peak, seconds = peak_bytes(lambda: prepare(source, "transform"))
    assert peak < 40 * MB
    assert seconds < 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 3000 + "x" + ")" * 3000 + " }}",
        "{% if x %}" * 1500 + "{% endif %}" * 1500,
        "{{ " + "[" * 3000 + "]" * 3000 + " }}",
    ],
)
def test_deep_nesting_is_a_syntax_error_not_a_crash(source: str) -> None:
    with pytest.raises(jinja2.TemplateSyntaxError, match="cannot be compiled"):
        prepare(source, "transform")


HOSTILE = [
    ('{{ "a"|center(400000000) }}', "padded"),
    ('{{ "ab".ljust(400000000) }}', "padded"),
    ('{{ "%0400000000d" % 1 }}', "formatted"),
    ('{{ "%s" * 20 % ((x,) * 20) }}', "formatted"),
    ('{{ "%400000000s"|format(1) }}', "formatted"),
    ('{{ "{:>400000000}".format(1) }}', "formatted"),
    ('{{ ("{0}" * 20).format(x) }}', "formatted"),
    ('{{ x|replace("", "y" * 20) }}', "replaced"),
    ('{{ x.replace("a", x) }}', "replaced"),
    ("{{ [x, x, x, x, x, x, x, x, x]|join(x) }}", "joined"),
    ("{{ x.join([x] * 10) }}", "joined"),
    ('{{ "a"|indent(400000000) }}', "indented"),
    ('{{ ("a " * 1000)|wordwrap(1, wrapstring="x" * 100000) }}', "wrapped"),
    ('{{ [1]|batch(400000000, "x")|list }}', "batch"),
    ("{{ [1]|slice(400000000)|list }}", "slices"),
    ("{{ x * 1000 }}", "repeating"),
    ("{{ 2 ** 100000 }}", "exponent"),
    ("{{ ((9 ** 999) ** 999) ** 999 }}", "too large a number"),
    (
        "{% set n = 9 ** 900 %}{{ n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n }}",
        "too large a number",
    ),
    (
        '{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ f("ab", 40) }}',
        "concatenation",
    ),
    (
        '{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}',
        "sum",
    ),
    ("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) or '' }}{% endfor %}", "list"),
    ("{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}", "iterations"),
    ("{% for i in range(10**9) %}{% endfor %}", "iterations"),
    ("{% for i in range(400000) %}{{ x }}{% endfor %}", "Output length exceeds 400000"),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_hostile_templates_fail_fast_and_small(source: str, reason: str) -> None:
    template, trivial = prepare(source, "transform")
    assert not trivial
    variables = {"x": "a" * 100_000}
    with pytest.raises(TemplateFailure, match=reason) as failure:
        render(template, variables, max_output=400_000)
    assert failure.value.error_type == "TemplateTooLarge"
    assert len(failure.value.message) < 300
    peak, seconds = peak_bytes(lambda: render(template, variables, max_output=400_000))
    assert peak < 40 * MB
    assert seconds < 3


def test_lipsum_is_gone() -> None:
    template, _ = prepare("{{ lipsum(100000, html=false, min=1000, max=10000) }}", "transform")
    with pytest.raises(TemplateFailure, match="'lipsum' is undefined"):
        render(template, {}, max_output=400_000)


@pytest.mark.parametrize(
    ("source", "trivial"),
    [
        ("", True),
        ("plain text only", True),
        ("Hello {{ name }}", True),
        ("{{- name -}} and {{ user.profile.name }}", True),
        ('{{ rows[0].content }} {{ data["key"] }} {# a comment #}', True),
        ("{% raw %}{{ not a tag }}{% endraw %}", True),
        ("{{ name|upper }}", True),
        ('{{ name|length }} {{ items|join(", ") }} {{ x|default("-")|trim }} {{ row|tojson }}', True),
        ('{{ "a"|center(400000000) }}', False),
        ("{{ x|center(400000000) }}", False),
        ("{{ items|join(sep) }}", False),
        ("{{ x|replace('a', 'bb') }}", False),
        ("{{ x|default(y) }}", False),
        ("{{ x|indent(width=4) }}", False),
        ("{{ x|list }}", False),
        ("{{ name() }}", False),
        ("{{ a ~ b }}", False),
        ("{{ a + b }}", False),
        ("{{ 'literal' }}", False),
        ("{{ rows[i] }}", False),
        ("{{ rows[0:2] }}", False),
        ("{{ a if b else c }}", False),
        ("{% for x in xs %}{{ x }}{% endfor %}", False),
        ("{% set a = 1 %}{{ a }}", False),
        ("{% if a %}x{% endif %}", False),
        ("{{ a is defined }}", False),
    ],
)
def test_trivial_templates(source: str, trivial: bool) -> None:
    assert prepare(source, "transform")[1] is trivial


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
        (
            "{{ rows[0].content }}|{{ data['k'] }}|{{ missing }}",
            {"rows": [{"content": "c"}], "data": {"k": 1}},
            "c|1|",
        ),
        (
            "|URL|\n{% for d in rows -%}\n|{{ d.url }}|\n{% endfor -%}",
            {"rows": [{"url": "u1"}, {"url": "u2"}]},
            "|URL|\n|u1|\n|u2|\n",
        ),
        ('{{ steps | join("\\n") }}', {"steps": ["a", "b"]}, "a\nb"),
        ("{{ '%05.1f|%s' % (3.14159, 'x') }} {{ '{:>4}'.format(7) }}", {}, "003.1|x    7"),
        (
            "{{ 'ab'|center(6) }}|{{ 'a b'|replace(' ', '-') }}|{{ [1, 2]|batch(1)|list }}",
            {},
            "  ab  |a-b|[[1], [2]]",
        ),
        ("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 1 ~ 2 }}", {}, "1024 ababab [1, 2] 12"),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
            {},
            "10",
        ),
    ],
)
def test_ordinary_templates_render_as_in_jinja(source: str, variables: dict[str, Any], expected: str) -> None:
    template, _ = prepare(source, "transform")
    assert render(template, variables, max_output=400_000) == expected
    stock = SandboxedEnvironment(autoescape=False).from_string(source).render(**variables)
    assert stock == expected


def test_values_may_grow_with_big_inputs() -> None:
    """A template that transforms a big input and keeps a slice of it is not refused for the input's size."""
    template, _ = prepare("{{ (text|replace('a', 'b'))[:5] }}", "transform")
    assert render(template, {"text": "a" * 3_000_000}, max_output=400_000) == "bbbbb"


def test_prompt_templates_may_not_change_lists() -> None:
    template, _ = prepare("{{ xs.append(1) }}", "prompt")
    with pytest.raises(TemplateFailure, match="unsafe"):
        render(template, {"xs": []}, max_output=1000)
    template, _ = prepare("{{ xs.append(1) }}{{ xs }}", "transform")
    assert render(template, {"xs": []}, max_output=1000) == "None[1]"
