"""The ``templates`` port: Jinja2 templates with logic render in a confined child of the worker's sandbox.

A template-transform node or an LLM Jinja2 prompt whose template is not trivial (``engine.templating``) is
rendered by ``templates.render`` (``app.workflows.template_rendering``) through ``Sandbox.call``: a fresh child
with no network, no writable file system and no secrets, killed after ``SLUICE_TEMPLATE_TIMEOUT_SECONDS`` or
when it needs more than ``SLUICE_TEMPLATE_MEMORY_MB``. The output cap (``TEMPLATE_TRANSFORM_MAX_LENGTH``,
``SLUICE_PROMPT_TEMPLATE_MAX_LENGTH``) applies in the child and on the in-process fast path alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.sandbox.client import Sandbox
from app.sandbox.errors import FunctionOutOfMemory, FunctionTimedOut, SandboxError
from app.settings import Settings
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.template_transform import Purpose
from app.workflows.template_rendering import RENDER


class SandboxTemplates:
    """``TemplatesPort`` on the worker's sandbox."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout_seconds: float,
        memory_mb: int,
        transform_max_length: int,
        prompt_max_length: int,
    ) -> None:
        self.sandbox = sandbox
        self.timeout_seconds, self.memory_mb = timeout_seconds, memory_mb
        self._max = {"transform": transform_max_length, "prompt": prompt_max_length}

    @classmethod
    def from_settings(cls, sandbox: Sandbox, settings: Settings) -> SandboxTemplates:
        return cls(
            sandbox,
            timeout_seconds=settings.template_timeout_seconds,
            memory_mb=settings.template_memory_mb,
            transform_max_length=settings.template_transform_max_length,
            prompt_max_length=settings.prompt_template_max_length,
        )

    def max_output(self, purpose: Purpose) -> int:
        return self._max[purpose]

    async def render(self, source: str, variables: Mapping[str, Any], *, purpose: Purpose) -> str:
        args = {
            "source": source,
            "variables": dict(variables),
            "purpose": purpose,
            "max_output": self._max[purpose],
        }
        try:
            result = await self.sandbox.call(
                RENDER, args, timeout=self.timeout_seconds, memory_mb=self.memory_mb
            )
        except FunctionTimedOut:
            raise NodeRunError(
                f"the template ran for more than {self.timeout_seconds:g} s and was stopped",
                "TemplateTimeout",
            ) from None
        except FunctionOutOfMemory:
            raise NodeRunError(
                f"the template needed more than {self.memory_mb} MiB of memory and was stopped",
                "TemplateTooLarge",
            ) from None
        except SandboxError as exc:
            raise NodeRunError(f"template rendering failed: {exc.message.strip()}", "TemplateError") from None
        if "error" in result:
            raise NodeRunError(str(result["error"]), str(result.get("error_type") or "TemplateError"))
        return str(result["text"])
