"""What the entry points (``app/asgi.py``, ``jobs/worker.py``) plug into the run lifecycle: the pause kinds.

The workflows package defines the pause-kind protocol and never names a kind; the features that own a kind
are listed here, once, for both processes.
"""

from __future__ import annotations

from collections.abc import Callable

from app.human_input.pauses import HumanInputPauses
from app.settings import Settings
from app.workflows.runs.pauses import PauseKind, PauseKinds

#: Each pause kind, as the factory that builds it from the settings (tests add test-only kinds here).
KIND_FACTORIES: list[Callable[[Settings], PauseKind]] = [HumanInputPauses]


def pause_kinds(settings: Settings) -> PauseKinds:
    return PauseKinds([factory(settings) for factory in KIND_FACTORIES])
