"""The JSON shapes Dify clients expect: run event payloads and run representations (Unix-second timestamps)."""

from __future__ import annotations

import datetime
from typing import Any

from app.schemas import unix
from app.workflows.engine.core import NodeRun, Outcome, RunState
from db.models import WorkflowRun


def _epoch(value: float | None) -> int | None:
    return None if value is None else int(value)


def run_started_data(run: WorkflowRun, reason: str = "initial") -> dict[str, Any]:
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "inputs": run.inputs,
        "created_at": unix(run.created_at),
        "reason": reason,
    }


def node_started_data(node_run: NodeRun) -> dict[str, Any]:
    state = node_run.state
    return {
        "id": state.execution_id,
        "node_id": node_run.node.id,
        "node_type": node_run.node.type,
        "title": node_run.node.title,
        "index": state.index,
        "predecessor_node_id": state.predecessor,
        "inputs": None,
        "created_at": _epoch(state.started_at),
        "extras": {},
    }


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
        },
        "finished_at": _epoch(node_run.finished_at),
    }


def run_finished_data(
    run: WorkflowRun, state: RunState, outcome: Outcome, finished_at: datetime.datetime | None
) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "status": run.status,
        "outputs": outcome.outputs,
        "error": outcome.error,
        "elapsed_time": round(state.elapsed, 6),
        "total_tokens": state.tokens,
        "total_steps": state.steps,
        "exceptions_count": state.exceptions,
        "created_at": unix(run.created_at),
        "finished_at": unix(finished_at),
    }


def run_detail(run: WorkflowRun) -> dict[str, Any]:
    """GET /v1/workflows/run/{id} and the ``data`` of a blocking run."""
    return {
        "id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "status": run.status,
        "inputs": run.inputs,
        "outputs": run.outputs or {},
        "error": run.error,
        "total_steps": run.total_steps,
        "total_tokens": run.total_tokens,
        "created_at": unix(run.created_at),
        "finished_at": unix(run.finished_at),
        "elapsed_time": round(run.elapsed_time, 6),
    }
