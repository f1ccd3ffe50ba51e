"""`start`: declares the run's inputs; its outputs are the validated inputs (plus ``sys.*`` in the pool).

File inputs are checked here for shape only (a mapping, a list of mappings); the API turns them into file dicts
(``app.files.run_inputs``) before the run is created, since that needs the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from app.workflows.engine.errors import InputError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert

TEXT_TYPES = {"text-input", "paragraph", "select"}
FILE_TYPES = {"file", "file-list"}


class StartVariable(msgspec.Struct, kw_only=True):
    variable: str
    label: str | dict[str, Any] = ""
    type: str = "text-input"
    required: bool = True
    max_length: int | None = None
    options: list[str] = msgspec.field(default_factory=list)
    default: Any = None
    #: ``file``/``file-list``: what files the variable accepts (checked by ``app.files`` before a run starts)
    allowed_file_types: list[str] | None = None
    allowed_file_extensions: list[str] | None = None
    allowed_file_upload_methods: list[str] | None = None


class StartConfig(msgspec.Struct, kw_only=True):
    variables: list[StartVariable] = msgspec.field(default_factory=list)


class StartNode(Node):
    type = "start"

    def configure(self, data: Mapping[str, Any]) -> None:
        self.config: StartConfig = convert(data, StartConfig, self)

    def validate_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Check the caller's inputs against the declared variables, Dify style; returns the values to use."""
        values: dict[str, Any] = {}
        for var in self.config.variables:
            value = inputs.get(var.variable)
            if value in (None, "") and var.default not in (None, ""):
                value = var.default
            if value == "" and var.type in FILE_TYPES and not var.required:
                value = None  # an empty placeholder for an optional file means "unset" (Dify)
            if value is None or (value == "" and var.type in TEXT_TYPES):
                if var.required:
                    raise InputError(var.variable, "is required in input form")
                values[var.variable] = None if value is None else value
                continue
            values[var.variable] = self._check(var, value)
        return values

    def _check(self, var: StartVariable, value: Any) -> Any:
        if var.type in TEXT_TYPES:
            if not isinstance(value, str):
                raise InputError(var.variable, "must be a string")
            if var.type == "select" and var.options and value not in var.options:
                raise InputError(var.variable, f"must be one of {', '.join(var.options)}")
            if var.max_length and len(value) > var.max_length:
                raise InputError(var.variable, f"must be at most {var.max_length} characters")
            return value
        if var.type == "number":
            if isinstance(value, bool):
                raise InputError(var.variable, "must be a number")
            if isinstance(value, int | float):
                return value
            if isinstance(value, str):
                try:
                    return int(value) if value.strip().lstrip("-").isdigit() else float(value)
                except ValueError:
                    pass
            raise InputError(var.variable, "must be a number")
        if var.type == "checkbox":
            if not isinstance(value, bool):
                raise InputError(var.variable, "must be a boolean")
            return value
        if var.type == "json_object":
            if not isinstance(value, dict):
                raise InputError(var.variable, "must be a JSON object")
            return value
        if var.type == "file" and not isinstance(value, dict):
            raise InputError(var.variable, "must be a file")
        if var.type == "file-list":
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                raise InputError(var.variable, "must be a list of files")
            if var.max_length and len(value) > var.max_length:
                raise InputError(var.variable, f"must be less than {var.max_length} files")
        return value

    async def run(self, ctx: NodeContext) -> NodeResult:
        inputs = ctx.pool.node(self.id)
        return NodeResult(inputs=inputs, outputs=inputs)
