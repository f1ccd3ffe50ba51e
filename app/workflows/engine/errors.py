"""Errors of the engine. Config errors surface at DSL import as 400s; run errors fail nodes or runs."""

from typing import Any


class EngineError(Exception):
    """Something went wrong in the workflow engine."""


class GraphError(EngineError):
    """The workflow graph is invalid."""


class NodeConfigError(GraphError):
    """A node's configuration is invalid."""

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(f"node {node_id}: {message}")
        self.node_id = node_id


class NodeRunError(EngineError):
    """A node failed while running (the run follows its error strategy).

    ``result`` (a ``NodeResult``) is what the failed attempt produced, kept on the failed execution as Dify
    keeps it: an http-request that got a 404 fails with its ``status_code``/``body`` outputs and its
    ``process_data``; an error strategy then replaces the outputs but keeps inputs and process data.
    ``tokens``: model tokens the node used before failing (a classifier whose answer could not be read);
    they count into the run as Dify counts them.
    """

    def __init__(
        self, message: str, error_type: str = "NodeRunError", result: Any = None, *, tokens: int = 0
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.result = result
        self.tokens = tokens


class InputError(EngineError):
    """A start-node input is missing or invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RunStopped(EngineError):
    """The run was stopped from outside while a node was running (raised through the node's stream)."""
