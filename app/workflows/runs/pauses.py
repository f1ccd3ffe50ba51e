"""Pause kinds: what a paused node waits for, plugged in from the feature that owns it.

A node pauses by returning ``NodeResult(pause={"kind": <name>, ...})``. The run lifecycle knows nothing else
about it: the kind registered under that name is asked to

* ``open`` the pauses in the transaction that records them (human input creates the form, its deliveries and
  tokens, and makes sure its deadline will fire), returning events to append (``human_input_required``);
* ``describe`` the open pauses of runs, for ``pause-details``, a paused blocking response and ``workflow_paused``;
* ``describe_events`` as they are sent to a client (links and tokens are never stored in events: the kind
  rebuilds them here);
* ``close`` the pauses of runs that stop, in the stopping transaction (forms expire, deadlines are dropped).

A kind resolves a pause through ``app.workflows.runs.transitions.resolve`` (one path for every kind). Human input
is the first kind; an approval API or a webhook wait would be a new class registered by the entry points
(``app/asgi.py``, ``jobs/worker.py``), with no change here.

End hooks are the other plug-in: a feature whose rows must change in the transaction that ends a run (chat: the
message and the conversation variables of a turn) registers one; it is called by every ending (finish, failure,
pause, stop), batch-first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.engine.state import RunState
from app.workflows.engine.statuses import RunStatus
from app.workflows.runs.pause_rows import Pause
from app.workflows.runs.store import Event, EventRow, RunRow


class PauseType(msgspec.Struct):
    """Dify's ``pause_type`` of a paused node; ``form_*`` are set by the human-input kind."""

    type: str
    form_id: uuid.UUID | None = None
    form_token: str | None = None
    form_url: str | None = None
    expiration_time: int | None = None


class PausedNode(msgspec.Struct):
    node_id: str
    node_title: str
    pause_type: PauseType | None


class PauseKind(Protocol):
    name: str

    async def open(
        self, session: AsyncSession, app_ids: Mapping[uuid.UUID, uuid.UUID], pauses: Sequence[Pause]
    ) -> dict[tuple[uuid.UUID, str], list[Event]]:
        """Set up ``pauses`` (``app_ids``: each run's app) in the transaction that records them; returns the
        events that follow each paused node's ``node_finished``, by (run, node)."""
        ...

    async def describe(
        self, session: AsyncSession, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PausedNode]]:
        """The open pauses of ``run_ids`` as clients see them (links rebuilt)."""
        ...

    async def describe_events(self, session: AsyncSession, rows: list[EventRow]) -> list[EventRow]:
        """Events as sent to a client: add what is never stored (tokens, links)."""
        ...

    async def close(self, session: AsyncSession, pauses: Sequence[Pause]) -> None:
        """The runs of ``pauses`` stopped: close what the kind keeps for them, in the stopping transaction."""
        ...


class UnknownPauseKind(RuntimeError):
    """A node paused with a kind no one registered."""


class PauseKinds:
    """The registry the entry points build: name -> kind."""

    def __init__(self, kinds: Sequence[PauseKind] = ()) -> None:
        self.kinds: dict[str, PauseKind] = {k.name: k for k in kinds}

    def get(self, name: str) -> PauseKind:
        kind = self.kinds.get(name)
        if kind is None:
            raise UnknownPauseKind(
                f"no pause kind {name!r} is registered (known: {', '.join(self.kinds) or 'none'})"
            )
        return kind

    async def open(
        self, session: AsyncSession, app_ids: Mapping[uuid.UUID, uuid.UUID], pauses: Sequence[Pause]
    ) -> dict[tuple[uuid.UUID, str], list[Event]]:
        events: dict[tuple[uuid.UUID, str], list[Event]] = {}
        for name, group in _by_kind(pauses).items():
            events.update(await self.get(name).open(session, app_ids, group))
        return events

    async def close(self, session: AsyncSession, pauses: Sequence[Pause]) -> None:
        for name, group in _by_kind(pauses).items():
            await self.get(name).close(session, group)

    async def describe(
        self, session: AsyncSession, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PausedNode]]:
        described: dict[uuid.UUID, list[PausedNode]] = {}
        for kind in self.kinds.values():
            for run_id, nodes in (await kind.describe(session, run_ids)).items():
                described.setdefault(run_id, []).extend(nodes)
        return described

    async def describe_events(self, session: AsyncSession, rows: list[EventRow]) -> list[EventRow]:
        for kind in self.kinds.values():
            rows = await kind.describe_events(session, rows)
        return rows


class RunEnd(msgspec.Struct, kw_only=True):
    """A run that finished, failed, stopped or paused, as end hooks see it (``state`` is None after a stop)."""

    run: RunRow
    status: RunStatus
    outputs: dict[str, Any]
    error: str | None
    state: RunState | None = None
    #: The app's mode as the engine ran it (``advanced-chat`` for chat and completion apps), when the caller
    #: knows it; None: hooks that care look it up.
    mode: str | None = None


class EndHook(Protocol):
    async def ended(self, session: AsyncSession, ends: Sequence[RunEnd]) -> None:
        """Called in the transaction that ends (or pauses) the runs, after their compare-and-set won: a
        feature's own rows that must change with the run's end (a chat message, conversation variables)."""
        ...


class Extensions:
    """What features plug into the run lifecycle, built by the entry points (``app/wiring.py``): pause kinds,
    and hooks called when runs end."""

    def __init__(self, kinds: Sequence[PauseKind] = (), end_hooks: Sequence[EndHook] = ()) -> None:
        self.kinds = PauseKinds(kinds)
        self.end_hooks = list(end_hooks)

    async def ended(self, session: AsyncSession, ends: Sequence[RunEnd]) -> None:
        if ends:
            for hook in self.end_hooks:
                await hook.ended(session, ends)


def _by_kind(pauses: Sequence[Pause]) -> dict[str, list[Pause]]:
    grouped: dict[str, list[Pause]] = {}
    for pause in pauses:
        grouped.setdefault(pause.kind, []).append(pause)
    return grouped
