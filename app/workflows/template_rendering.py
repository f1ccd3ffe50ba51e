"""Rendering a tenant's Jinja2 template in a confined child: the ``templates.render`` sandbox function.

Registered with :func:`app.sandbox.functions.sandboxed` and imported by the sandbox runner before it forks
(``app.sandbox.functions.MODULES``), so Jinja2 and the bounded environment are already in each child's memory.
The child compiles the source again (compiling evaluates nothing) and renders it with the bounds of
``engine.template_bounds``; the child's wall clock and memory limit stop whatever the bounds miss. Plain data in
and out: ``{"text": ...}`` or ``{"error": message, "error_type": name}``.
"""

from __future__ import annotations

from typing import Any

import jinja2

from app.sandbox.functions import sandboxed
from app.workflows.engine import templating

RENDER = "templates.render"


@sandboxed(RENDER)
def render_or_error(source: str, variables: dict[str, Any], purpose: str, max_output: int) -> dict[str, Any]:
    kind: templating.Kind = "prompt" if purpose == "prompt" else "transform"
    try:
        compiled, _ = templating.prepare(source, kind)
    except jinja2.TemplateSyntaxError as exc:
        return {
            "error": f"template syntax error at line {exc.lineno}: {exc.message}",
            "error_type": "TemplateSyntaxError",
        }
    try:
        return {"text": templating.render(compiled, variables, max_output=max_output)}
    except templating.TemplateFailure as exc:
        return {"error": exc.message, "error_type": exc.error_type}
