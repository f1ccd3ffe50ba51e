"""A ``templates`` port for engine tests: the sandbox's render function, called in a thread of this process.

Engine tests check what templates mean; ``tests/sandbox/test_templates.py`` checks that they render in a confined
child with the real runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.template_transform import MAX_OUTPUT, MAX_PROMPT_OUTPUT, Purpose
from app.workflows.template_rendering import render_or_error


class InProcessTemplates:
    def __init__(
        self, transform_max_length: int = MAX_OUTPUT, prompt_max_length: int = MAX_PROMPT_OUTPUT
    ) -> None:
        self._max = {"transform": transform_max_length, "prompt": prompt_max_length}
        self.rendered: list[str] = []

    def max_output(self, purpose: Purpose) -> int:
        return self._max[purpose]

    async def render(self, source: str, variables: Mapping[str, Any], *, purpose: Purpose) -> str:
        self.rendered.append(source)
        result = await asyncio.to_thread(
            render_or_error, source, dict(variables), purpose, self._max[purpose]
        )
        if "error" in result:
            raise NodeRunError(result["error"], result["error_type"])
        return str(result["text"])
