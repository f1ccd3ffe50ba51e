"""The JSON shapes Dify clients expect in run events (Unix-second timestamps)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Protocol

from app.schemas import unix
from app.workflows.engine.state import NodeRun


class RunLike(Protocol):
    id: uuid.UUID
    workflow_id: uuid.UUID
    created_at: datetime.datetime


def _epoch(value: float | None) -> int | None:
    return None if value is None else int(value)


def run_started_data(run: RunLike, inputs: Any, reason: str = "initial") -> dict[str, Any]:
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "inputs": inputs,
        "created_at": unix(run.created_at),
        "reason": reason,
    }


def node_identity(node_run: NodeRun) -> dict[str, Any]:
    """Which node execution this is: its id, the node, its place in the run (events and execution rows)."""
    state = node_run.state
    return {
        "id": state.execution_id,
        "node_id": node_run.node.id,
        "node_type": node_run.node.type,
        "title": node_run.node.title,
        "index": state.index,
        "predecessor_node_id": state.predecessor,
    }


def node_started_data(node_run: NodeRun) -> dict[str, Any]:
    state = node_run.state
    data: dict[str, Any] = {
        **node_identity(node_run),
        "inputs": None,
        "created_at": _epoch(state.started_at),
        "extras": {},
    }
    scope = node_run.scope
    if "iteration_id" in scope:
        data["iteration_id"] = scope["iteration_id"]
    if "loop_id" in scope:
        data["loop_id"] = scope["loop_id"]
    return data


def scope_metadata(node_run: NodeRun) -> dict[str, Any]:
    """``iteration_id``/``iteration_index`` (or the loop's) of a node inside a container, for its metadata."""
    return dict(node_run.scope)


def node_finished_data(node_run: NodeRun) -> dict[str, Any]:
    result = node_run.result
    return {
        **node_started_data(node_run),
        "inputs": result.inputs if result else None,
        "process_data": result.process_data if result else None,
        "outputs": result.outputs if result else None,
        "status": node_run.state.status,
        "error": node_run.error,
        "elapsed_time": round(node_run.elapsed, 6),
        "execution_metadata": {
            "total_tokens": result.tokens if result else 0,
            "retries": node_run.state.retries,
            **scope_metadata(node_run),
        },
        "finished_at": _epoch(node_run.finished_at),
    }


def run_finished_data(
    run: RunLike,
    *,
    status: str,
    outputs: dict[str, Any] | None,
    error: str | None,
    elapsed: float,
    tokens: int,
    steps: int,
    exceptions: int,
    finished_at: datetime.datetime | None,
) -> dict[str, Any]:
    """``workflow_finished`` (and, with ``finished_at`` None, ``workflow_paused``): every ending, one shape."""
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "status": status,
        "outputs": outputs or {},
        "error": error,
        "elapsed_time": round(elapsed, 6),
        "total_tokens": tokens,
        "total_steps": steps,
        "exceptions_count": exceptions,
        "created_at": unix(run.created_at),
        "finished_at": unix(finished_at),
    }
