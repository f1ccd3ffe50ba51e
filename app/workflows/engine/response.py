"""How answers stream in advanced-chat runs (Dify's response coordinator, chatflow spec 7.4).

Each Answer node owns a *session*: its template split into literal text and ``{{#node.var#}}`` segments. A session
becomes *active* once its node is certain to run — some path from the start node reaches it on which every
*blocking* edge has been taken. Edges leaving a branching node (if-else, question classifier, human input), a node
whose errors take a fail-branch, another Answer node, or an assigner that writes a conversation variable the
template reads are blocking; other edges only need not be skipped. One session streams at a time, in the order
sessions became active (ties in the order of the DSL's ``graph.nodes``). Within it, segments go out strictly in
template order: literal text at once, a streamed source (an LLM's ``text``) chunk by chunk as it arrives, any
other variable as one chunk once its node has finished (rendered as Dify's ``segment.markdown``), and a variable of
a skipped node is dropped.

The coordinator is pure: it reads the engine's run state and pool and hands chunks to the listener
(``text_chunk``). What it must remember across checkpoints, pauses and crashes (the queue, the active session, how
far into it, how much of a streamed segment was sent) is :class:`ResponseState`, part of the run state. Text a
source streamed is kept only in memory: after a crash the source runs again and the characters already sent are
skipped, so the stream neither repeats nor loses text.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from app.workflows.engine import conditions
from app.workflows.engine.graph import Graph
from app.workflows.engine.statuses import SKIPPED, TAKEN, NodeStatus
from app.workflows.engine.variables import CONVERSATION, ENVIRONMENT, SYSTEM, TEMPLATE, VariablePool

DONE_STATUSES = {NodeStatus.SUCCEEDED, NodeStatus.EXCEPTION}
DROPPED_STATUSES = {NodeStatus.SKIPPED, NodeStatus.FAILED, NodeStatus.STOPPED}
#: Nodes whose outgoing edges decide which way a run goes (besides ``branching`` node classes).
CONTAINER_TYPES = {"iteration", "loop"}

Emit = Callable[[str, list[str]], Awaitable[None]]
#: A node's status in the run (None: not reached yet).
StatusOf = Callable[[str], "NodeStatus | None"]


class Segment(msgspec.Struct, frozen=True):
    text: str | None = None
    selector: tuple[str, ...] | None = None


def split_template(template: str) -> list[Segment]:
    """A template as literal and variable segments, in order (empty literals left out)."""
    segments: list[Segment] = []
    position = 0
    for match in TEMPLATE.finditer(template):
        if match.start() > position:
            segments.append(Segment(text=template[position : match.start()]))
        segments.append(Segment(selector=tuple(match.group(1).split("."))))
        position = match.end()
    if position < len(template):
        segments.append(Segment(text=template[position:]))
    return segments


def file_markdown(file: Mapping[str, Any]) -> str:
    name = str(file.get("filename") or "")
    url = str(file.get("url") or file.get("remote_url") or "")
    return f"![{name}]({url})" if file.get("type") == "image" else f"[{name}]({url})"


def markdown(value: Any) -> str:
    """A variable as an Answer node shows it (Dify's ``Segment.markdown``): strings as they are, numbers and
    booleans as Python prints them, objects as indented JSON, arrays as ``- item`` lines, files as links."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if conditions.is_file(value):
            return file_markdown(value)
        return json.dumps(value, ensure_ascii=False, indent=2)
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) and conditions.is_file(v) for v in value):
            return "\n".join(file_markdown(v) for v in value)
        return "\n".join(f"- {item}" for item in value)
    return str(value)


def render(pool: VariablePool, template: str) -> str:
    """A template with every variable shown as :func:`markdown` (what an Answer node outputs)."""
    return TEMPLATE.sub(lambda m: markdown(pool.get(m.group(1).split("."))), template)


def referenced_files(pool: VariablePool, segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """Every file a template's variables hold (an Answer node's ``files`` output)."""
    files: list[dict[str, Any]] = []
    for segment in segments:
        if segment.selector is None:
            continue
        value = pool.get(list(segment.selector))
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping) and conditions.is_file(item):
                files.append(dict(item))
    return files


class ResponseState(msgspec.Struct, kw_only=True):
    """The coordinator's part of the run state."""

    #: Answer nodes whose session became active, in activation order (never activated twice).
    activated: list[str] = msgspec.field(default_factory=list)
    #: Active sessions waiting for the current one to finish.
    queue: list[str] = msgspec.field(default_factory=list)
    current: str | None = None
    #: Segment of the current session to send next, and characters of it already sent (a streamed source).
    position: int = 0
    sent: int = 0


class Session(msgspec.Struct, frozen=True):
    node_id: str
    segments: list[Segment]
    #: Conversation variables the template reads (an assigner writing one blocks the session).
    conversation_reads: frozenset[str]


class ResponsePlan:
    """What the coordinator knows of a graph, built once per workflow version."""

    def __init__(self, graph: Graph, branching: Mapping[str, bool], writes: Mapping[str, set[str]]) -> None:
        """``branching``: per node, whether its outgoing edges decide the way (branch, container, fail-branch);
        ``writes``: per assigner node, the conversation variables it writes."""
        self.graph = graph
        self.start_id = graph.start_node().id
        self.sessions: dict[str, Session] = {}
        for node_id, spec in graph.nodes.items():  # DSL order: ties activate in this order
            if spec.type != "answer":
                continue
            template = spec.data.get("answer")
            segments = split_template(template if isinstance(template, str) else "")
            reads = frozenset(
                s.selector[1]
                for s in segments
                if s.selector and s.selector[0] == CONVERSATION and len(s.selector) > 1
            )
            self.sessions[node_id] = Session(node_id=node_id, segments=segments, conversation_reads=reads)
        self.branching = dict(branching)
        self.writes = {k: set(v) for k, v in writes.items()}
        #: Sources whose streamed text some template reads: (node, variable).
        self.streamed = {
            s.selector[:2]
            for session in self.sessions.values()
            for s in session.segments
            if s.selector and len(s.selector) == 2 and s.selector[0] in graph.nodes
        }

    def blocking(self, edge_source: str, session: Session) -> bool:
        spec = self.graph.nodes[edge_source]
        if spec.type == "answer" or self.branching.get(edge_source):
            return True
        return bool(session.conversation_reads & self.writes.get(edge_source, set()))

    def certain(self, session: Session, edges: Mapping[str, str]) -> bool:
        """Some path from the start reaches the session's node with every blocking edge taken."""
        seen = {self.start_id}
        todo = [self.start_id]
        while todo:
            node_id = todo.pop()
            for edge in self.graph.outgoing.get(node_id, []):
                mark = edges.get(edge.id)
                allowed = mark == TAKEN if self.blocking(node_id, session) else mark != SKIPPED
                if not allowed or edge.target in seen:
                    continue
                if edge.target == session.node_id:
                    return True
                seen.add(edge.target)
                todo.append(edge.target)
        return False


class ResponseCoordinator:
    """Sends the Answer nodes' text of one run, in Dify's order, through ``emit``."""

    def __init__(self, plan: ResponsePlan, state: ResponseState, pool: VariablePool) -> None:
        self.plan, self.state, self.pool = plan, state, pool
        #: Text each streamed source sent so far in this process (lost on a crash, see the module docstring).
        self.buffers: dict[tuple[str, ...], str] = {}

    def activate(self, node_id: str) -> None:
        if node_id in self.plan.sessions and node_id not in self.state.activated:
            self.state.activated.append(node_id)
            self.state.queue.append(node_id)

    def activate_certain(self, edges: Mapping[str, str], status_of: StatusOf) -> None:
        for node_id, session in self.plan.sessions.items():
            if node_id in self.state.activated or status_of(node_id) == NodeStatus.SKIPPED:
                continue
            if self.plan.certain(session, edges):
                self.activate(node_id)

    def wants(self, selector: Sequence[str]) -> bool:
        return tuple(selector[:2]) in self.plan.streamed

    async def chunk(self, selector: Sequence[str], text: str, status: StatusOf, emit: Emit) -> None:
        """A source streamed ``text``."""
        key = tuple(selector[:2])
        if key not in self.plan.streamed:
            return
        self.buffers[key] = self.buffers.get(key, "") + text
        await self.advance(status, emit)

    async def advance(self, status_of: StatusOf, emit: Emit, *, final: bool = False) -> None:
        """Send everything that can be sent now, in order. ``final``: the run has ended, so a variable of a node
        that never ran is dropped instead of waited for."""
        state = self.state
        while True:
            if state.current is None:
                if not state.queue:
                    return
                state.current, state.position, state.sent = state.queue.pop(0), 0, 0
            session = self.plan.sessions[state.current]
            if state.position >= len(session.segments):
                state.current = None
                continue
            segment = session.segments[state.position]
            if segment.text is not None:
                state.position += 1
                await emit(segment.text, [session.node_id, "answer"])
                continue
            selector = list(segment.selector or ())
            source = selector[0]
            status = status_of(source) if source in self.plan.graph.nodes else NodeStatus.SUCCEEDED
            if status is None and final:
                status = NodeStatus.SKIPPED
            if status in DONE_STATUSES:
                text = markdown(self.pool.get(selector))[state.sent :]
                state.position, state.sent = state.position + 1, 0
                if text:
                    await emit(text, self._attribution(session, selector))
                continue
            if status in DROPPED_STATUSES:
                state.position, state.sent = state.position + 1, 0
                continue
            streamed = self.buffers.get(tuple(selector[:2])) if len(selector) == 2 else None
            if streamed is not None and len(streamed) > state.sent:
                text, state.sent = streamed[state.sent :], len(streamed)
                await emit(text, selector[:2])
            return

    def _attribution(self, session: Session, selector: list[str]) -> list[str]:
        if selector[0] in (SYSTEM, ENVIRONMENT, CONVERSATION) or selector[0] not in self.plan.graph.nodes:
            return [session.node_id, "answer"]
        return selector[:2]
