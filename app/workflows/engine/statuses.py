"""The statuses of a run and of its nodes: Dify's strings, named once.

A run's status is stored in ``workflow_runs.status`` and sent in ``workflow_finished``; a node's in the engine's
state snapshot, in ``workflow_node_executions.status`` and in ``node_finished``. The members are ``StrEnum``s:
each equals its string, so the JSON, the SQL and the comparisons with values read back are unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    #: waiting for the outside world (a human-input form); resumes when every pause is resolved
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    #: succeeded although some node failed and its error strategy carried on
    PARTIAL_SUCCEEDED = "partial-succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class NodeStatus(StrEnum):
    #: reachable, not started yet
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    #: failed, and its error strategy (default value or fail branch) carried the run on
    EXCEPTION = "exception"
    FAILED = "failed"
    #: on a branch the run did not take
    SKIPPED = "skipped"
    STOPPED = "stopped"


#: The marks of an edge once its source has finished (``RunState.edges``): the run went along it, or not.
TAKEN, SKIPPED = "taken", "skipped"
