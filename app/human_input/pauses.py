"""Human input as a pause kind (``app/workflows/runs/pauses.py``): a paused ``human-input`` node gets a form."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.human_input import forms
from app.human_input.services import expire_forms
from app.settings import Settings
from app.workflows.engine.nodes.human_input import PAUSE_KIND
from app.workflows.runs.pause_rows import Pause
from app.workflows.runs.pauses import PausedNode
from app.workflows.runs.store import Event, EventRow


class HumanInputPauses:
    """Forms, deliveries and tokens for paused human-input nodes; links rebuilt wherever they are shown."""

    name = PAUSE_KIND

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def open(
        self, session: AsyncSession, app_ids: Mapping[uuid.UUID, uuid.UUID], pauses: Sequence[Pause]
    ) -> dict[tuple[uuid.UUID, str], list[Event]]:
        events = {}
        for pause in pauses:
            events[(pause.run_id, pause.node_id)] = await forms.create_form(
                session,
                self.settings,
                run_id=pause.run_id,
                app_id=app_ids[pause.run_id],
                node_id=pause.node_id,
                execution_id=pause.execution_id,
                request=pause.request,
            )
        return events

    async def describe(
        self, session: AsyncSession, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PausedNode]]:
        return await forms.paused_forms(session, self.settings, run_ids)

    async def describe_events(self, session: AsyncSession, rows: list[EventRow]) -> list[EventRow]:
        return await forms.with_form_links(session, self.settings, rows)

    async def close(self, session: AsyncSession, pauses: Sequence[Pause]) -> None:
        await expire_forms(session, sorted({p.run_id for p in pauses}), utcnow())
