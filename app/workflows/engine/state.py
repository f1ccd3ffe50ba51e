"""The engine's state and its contract with the runner: what a checkpoint stores (``RunState`` with its nodes'
``NodeState`` and containers' ``ContainerState``), how a node execution and a run's end are reported
(``NodeRun``, ``Outcome``), the ``Listener`` the engine reports to, and its ``Limits``. ``engine.core`` runs a
graph over them."""

from __future__ import annotations

from typing import Any, Final, Literal, Protocol

import msgspec

from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes.base import NodeResult
from app.workflows.engine.response import ResponseState
from app.workflows.engine.statuses import NodeStatus, RunStatus

#: Runs of this app mode stream their reply through Answer nodes (``engine/response.py``).
CHAT_MODE = "advanced-chat"
#: ``Outcome.status`` when only nodes that perform I/O are left and the engine was asked to stop before them
HANDOFF: Final = "handoff"


class Limits(msgspec.Struct, frozen=True):
    max_steps: int = 500
    max_seconds: float = 1200.0
    #: most items an iteration takes (0: no limit, as in Dify)
    iteration_max_items: int = 0
    #: most rounds of a parallel iteration at once (MAX_PARALLEL_LIMIT)
    max_parallel: int = 10
    #: most rounds of a loop (LOOP_NODE_MAX_COUNT; Dify only caps it in its editor)
    loop_max_count: int = 100


class ContainerState(msgspec.Struct, kw_only=True):
    """Progress of an iteration or loop node, kept in the run state so that a checkpoint (and a crash) keeps
    finished rounds and the state of rounds in progress."""

    #: iteration: the items, resolved once
    items: list[Any] | None = None
    #: iteration: each finished round's output, by index (None for a failed round)
    outputs: dict[int, Any] = msgspec.field(default_factory=dict)
    failed: list[int] = msgspec.field(default_factory=list)
    #: rounds in progress, each the state of its own child engine
    rounds: dict[int, RunState] = msgspec.field(default_factory=dict)
    next_round: int = 0
    durations: dict[int, float] = msgspec.field(default_factory=dict)
    #: loop: the loop variables after each round
    variables: dict[int, dict[str, Any]] = msgspec.field(default_factory=dict)
    reason: str | None = None
    tokens: int = 0
    #: the ``*_started`` event was recorded
    started: bool = False
    started_at: float | None = None


class NodeState(msgspec.Struct, kw_only=True):
    status: NodeStatus = NodeStatus.PENDING
    execution_id: str | None = None
    index: int = 0
    predecessor: str | None = None
    started_at: float | None = None
    retries: int = 0
    pause: dict[str, Any] | None = None
    container: ContainerState | None = None


class RunState(msgspec.Struct, kw_only=True):
    """Everything needed to continue a run: what the runner writes at each checkpoint. A round of an iteration
    or loop has a RunState of its own inside its container's ``ContainerState``."""

    pool: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    nodes: dict[str, NodeState] = msgspec.field(default_factory=dict)
    edges: dict[str, str] = msgspec.field(default_factory=dict)
    steps: int = 0
    tokens: int = 0
    exceptions: int = 0
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    answer: str = ""
    #: Files the Answer nodes output, in completion order (a chat run's ``outputs.files``).
    answer_files: list[dict[str, Any]] = msgspec.field(default_factory=list)
    elapsed: float = 0.0
    next_index: int = 1
    #: Where the Answer nodes' streaming stands (advanced-chat runs).
    response: ResponseState = msgspec.field(default_factory=ResponseState)


class NodeRun(msgspec.Struct, kw_only=True):
    """One node execution as the listener records it."""

    node: NodeSpec
    state: NodeState
    result: NodeResult | None = None
    error: str | None = None
    error_type: str | None = None
    finished_at: float | None = None
    #: The node waits on the outside world (a port); the runner checkpoints around it.
    performs_io: bool = False
    #: Started again after a crash: its ``node_started`` was recorded by the attempt that died.
    restarted: bool = False
    #: Inside an iteration or loop: ``iteration_id``/``iteration_index`` or ``loop_id``/``loop_index``.
    scope: dict[str, Any] = msgspec.field(default_factory=dict)
    #: No node events for it (iteration and loop nodes report through their own events; their start nodes
    #: report nothing), only its execution row (none for start nodes).
    silent: bool = False

    @property
    def elapsed(self) -> float:
        if self.finished_at is None or self.state.started_at is None:
            return 0.0
        return max(0.0, self.finished_at - self.state.started_at)


class Outcome(msgspec.Struct, kw_only=True):
    #: how the run ended or paused, or ``HANDOFF``: only nodes that perform I/O are left to run and the engine
    #: was asked to stop before them (``stop_before_io``).
    status: RunStatus | Literal["handoff"]
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    error: str | None = None
    paused_nodes: list[str] = msgspec.field(default_factory=list)


class Listener(Protocol):
    """The runner's side. Returning False from a hook means the run was stopped: the engine halts."""

    async def node_started(self, run: NodeRun, state: RunState) -> bool: ...

    async def node_finished(self, run: NodeRun, state: RunState) -> bool: ...

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None: ...

    async def checkpoint(self, state: RunState) -> bool:
        """Make everything so far durable: the run is about to wait on the outside world."""
        ...

    async def event(self, name: str, data: dict[str, Any]) -> None:
        """An event of its own (``iteration_started``, ``loop_next``...), in order with the node events."""
        ...
