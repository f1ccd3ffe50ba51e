"""Templates with logic render in a confined child through the real runner: time, memory and output limits."""

from __future__ import annotations

import resource
import time
from typing import Any

import pytest

from app.sandbox.client import Sandbox
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Ports
from app.workflows.llm import OpenAIChat
from app.workflows.templates import SandboxTemplates
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.workflows.engine.helpers import edge, graph, node, run_graph


def port(sandbox: Sandbox, **options: Any) -> SandboxTemplates:
    settings: dict[str, Any] = {
        "timeout_seconds": 1.0,
        "memory_mb": 128,
        "transform_max_length": 400_000,
        "prompt_max_length": 2_000_000,
    }
    return SandboxTemplates(sandbox, **{**settings, **options})


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_renders_in_a_child(sandbox: Sandbox) -> None:
    templates = port(sandbox)
    text = await templates.render(
        "{% for c in name %}{{ c|upper }}{% endfor %}!", {"name": "ada"}, purpose="transform"
    )
    assert text == "ADA!"
    trailing = await templates.render("{{ name|upper }}\n", {"name": "ada"}, purpose="prompt")
    assert trailing == "ADA\n"  # prompts keep the trailing newline (Dify's prompt environment)


async def test_a_template_that_runs_forever_is_stopped_at_its_time_limit(sandbox: Sandbox) -> None:
    busy = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    began = time.monotonic()
    with pytest.raises(NodeRunError, match="ran for more than 1 s") as failure:
        await port(sandbox).render(busy, {}, purpose="transform")
    assert failure.value.error_type == "TemplateTimeout"
    assert time.monotonic() - began < 5


async def test_a_template_that_escapes_the_bounds_is_stopped_at_its_memory_limit(sandbox: Sandbox) -> None:
    """900,000 distinct strings of 1 KB: each step is small, the whole is 900 MB; the child's limit stops it."""
    hog = "{% set l = [] %}{% for i in range(900000) %}{{ l.append(x ~ i) or '' }}{% endfor %}{{ l|length }}"
    before = own_peak_mb()
    with pytest.raises(NodeRunError, match="memory") as failure:
        await port(sandbox, timeout_seconds=20.0).render(hog, {"x": "a" * 1000}, purpose="transform")
    assert failure.value.error_type == "TemplateTooLarge"
    assert own_peak_mb() - before < 50  # the worker's side did not grow with it


async def test_the_output_cap_holds_in_the_child(sandbox: Sandbox) -> None:
    with pytest.raises(NodeRunError, match="Output length exceeds 1000 characters") as failure:
        await port(sandbox, transform_max_length=1000).render(
            "{% for i in range(2000) %}ab{% endfor %}", {}, purpose="transform"
        )
    assert failure.value.error_type == "TemplateTooLarge"


async def test_an_llm_jinja_prompt_bomb_fails_the_node_without_calling_the_model(
    sandbox: Sandbox, fake_openai: FakeOpenAI
) -> None:
    bomb = '{% set ns = namespace(s="ab") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}'
    prompt = [{"role": "user", "text": "", "edition_type": "jinja2", "jinja2_text": bomb}]
    model = {"provider": "openai", "name": "gpt-4o", "mode": "chat", "completion_params": {}}
    g = graph(
        [
            node("start", "start", variables=[]),
            node("llm", "llm", model=model, prompt_template=prompt),
            node("end", "end", outputs=[{"variable": "t", "value_selector": ["llm", "text"]}]),
        ],
        [edge("start", "llm"), edge("llm", "end")],
    )
    ports = Ports(llm=OpenAIChat(fake_openai.base_url), templates=port(sandbox))
    outcome, _, _ = await run_graph(g, {}, ports=ports)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "Jinja2 rendering failed" in outcome.error
    assert "concatenation" in outcome.error
    assert fake_openai.bodies("/v1/chat/completions") == []
